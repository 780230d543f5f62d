"""What a request through the HTTP core returns: the raw body plus the facts about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestion.errors import SchemaError


@dataclass(eq=False)
class HTTPResult:
    """One response (2xx when returned by :meth:`VendorHTTP.get`; any status when passed to response hooks).

    ``body`` is the raw, already-decompressed bytes, so a vendor parser can go straight to columns with orjson.
    ``query`` is the query actually sent, with no credential in it (the key travels in a header); ``path`` has no
    query. ``elapsed`` is seconds for the final attempt (0 for a cache hit); ``attempts`` counts tries made.
    ``headers`` keys are lower case.
    """

    vendor: str
    endpoint: str
    path: str
    query: Mapping[str, Any]
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    from_cache: bool = False
    stale: bool = False
    """True when served from the last-good copy because the vendor was unavailable (breaker open, 5xx, network)."""
    age: float | None = None
    """Seconds since a stale copy was fetched from the vendor (None for fresh responses)."""
    request_id: str | None = None
    attempts: int = 1
    elapsed: float = 0.0
    _parsed: Any = field(default=None, init=False, repr=False)
    _has_parsed: bool = field(default=False, init=False, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed with orjson (once; later calls return the same object).

        Raises :class:`SchemaError` naming the vendor and endpoint when the body is not JSON.
        """
        if not self._has_parsed:
            try:
                self._parsed = orjson.loads(self.body)
            except orjson.JSONDecodeError as exc:
                raise SchemaError(
                    f"response is not valid JSON ({exc.msg} at byte {exc.pos})",
                    vendor=self.vendor,
                    endpoint=self.endpoint,
                    status=self.status,
                    request_id=self.request_id,
                ) from None
            self._has_parsed = True
        return self._parsed
