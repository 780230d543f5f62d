"""The project's error tree. Every error carries the vendor, the endpoint and the HTTP status, never a key.

::

    IngestionError
    ├── ConfigError                 bad settings or arguments; the message says how to fix them
    ├── TransportError              the vendor could not be reached (connect/read timeout, reset)
    ├── VendorError                 the vendor answered with an error status
    │   ├── AuthError               401: bad or missing key
    │   ├── NotEntitled             403: the plan does not cover this data
    │   ├── RateLimited             429: slow down (``retry_after`` seconds)
    │   │   └── QuotaExhausted      429 with the daily budget spent: holds until ``resets_at``
    │   ├── ClientError             other 4xx (bad request, 404, 422): never retried
    │   └── ServerError             5xx
    ├── CircuitOpen                 the breaker for this vendor/endpoint is open; no request was sent
    └── SchemaError                 a payload did not have the documented shape
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class IngestionError(Exception):
    """Root of every error the project raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.vendor = vendor
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(p for p in (self.vendor, self.endpoint) if p)
        extra = [f"status={self.status}"] if self.status is not None else []
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        head = f"[{where}] " if where else ""
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{head}{self.message}{tail}"


class ConfigError(IngestionError):
    """Bad configuration or command-line input."""


class TransportError(IngestionError):
    """The vendor could not be reached or the connection broke."""


class VendorError(IngestionError):
    """The vendor answered with an error status."""


class AuthError(VendorError):
    """The key was rejected or missing (401)."""


class NotEntitled(VendorError):
    """The plan does not include this data (403)."""


class RateLimited(VendorError):
    """Too many requests (429). ``retry_after`` is in seconds when the vendor said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class QuotaExhausted(RateLimited):
    """The daily request budget is spent; retrying before ``resets_at`` only wastes requests."""

    def __init__(self, message: str, *, resets_at: datetime | None = None, **kw: Any) -> None:
        self.resets_at = resets_at
        super().__init__(message, **kw)


class ClientError(VendorError):
    """Another 4xx: the request itself is wrong and is never retried."""


class ServerError(VendorError):
    """A 5xx from the vendor."""


class CircuitOpen(IngestionError):
    """The circuit breaker is open; the call was refused without a request."""

    def __init__(self, message: str, *, retry_at: float | None = None, **kw: Any) -> None:
        self.retry_at = retry_at
        super().__init__(message, **kw)


class SchemaError(IngestionError):
    """A vendor payload did not have the documented shape."""
