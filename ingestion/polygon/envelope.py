"""The Polygon REST envelope: decoding a page, refusing a malformed one, and the fields a client pages with.

Every REST page is a JSON object ``{status, request_id, results?, next_url?, count?, ...}``. A page that is not
that shape raises :class:`~ingestion.errors.SchemaError` naming the endpoint, so a broken page can never pass for an
empty one. Row-level problems are not decided here: the parsers quarantine bad rows and keep the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestion import json_overflow
from ingestion.errors import SchemaError
from ingestion.http.redaction import redact_text

VENDOR = "polygon"
# Polygon says "OK"; a delayed-data plan answers "DELAYED" with the same body. Anything else is not data.
OK_STATUSES = frozenset({"OK", "DELAYED"})
# Envelope keys the docs describe for list endpoints; any other top-level key is reported as drift.
ENVELOPE_KEYS = frozenset(
    {"status", "request_id", "results", "next_url", "count", "ticker", "queryCount", "resultsCount", "adjusted"}
)


@dataclass(frozen=True)
class PageInfo:
    """What a client needs to page: ``next_url`` (None on the last page), status, request id and the row count."""

    next_url: str | None
    status: str
    request_id: str | None
    results_count: int


def schema_error(message: str, endpoint: str, request_id: str | None = None) -> SchemaError:
    return SchemaError(message, vendor=VENDOR, endpoint=endpoint, request_id=request_id)


def decode(body: bytes | str, endpoint: str) -> dict[str, Any]:
    """Decode a page and check its envelope: a JSON object whose ``status`` is OK or DELAYED.

    Raises :class:`SchemaError` for invalid JSON, a non-object body, a missing or error status. The message
    carries the vendor's own ``error``/``message`` text when there is one (it never contains the key).
    """
    try:
        # A number beyond float64 decodes as inf, so that the row checks quarantine its row and keep the page.
        doc = json_overflow.loads(body)
    except json_overflow.JSONError as exc:
        raise schema_error(f"page is not valid JSON ({exc.msg} at char {exc.pos})", endpoint) from None
    if not isinstance(doc, dict):
        raise schema_error(f"page is a JSON {type(doc).__name__}, expected an object", endpoint)
    request_id = doc.get("request_id") if isinstance(doc.get("request_id"), str) else None
    status = doc.get("status")
    if not isinstance(status, str) or status not in OK_STATUSES:  # a list or object status is unhashable
        detail = doc.get("error") or doc.get("message")
        said = f": {redact_text(detail)}" if isinstance(detail, str) else ""  # vendor text: short, no secrets
        raise schema_error(f"page status is {status!r}, expected OK or DELAYED{said}", endpoint, request_id)
    return doc


def results_list(doc: dict[str, Any], endpoint: str) -> list[Any]:
    """The ``results`` array of a decoded page; absent or null means no data (an empty list)."""
    results = doc.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise schema_error(f"results is a JSON {type(results).__name__}, expected an array", endpoint, _rid(doc))
    return results


def page_info(body: bytes | str | dict[str, Any], endpoint: str = "") -> PageInfo:
    """Paging fields of a page (raw bytes, or a dict already decoded by :func:`decode`).

    ``results_count`` is the number of rows actually present (``results`` length; 1 for a single-object result),
    not the vendor's ``resultsCount``, which some endpoints omit.
    """
    doc = body if isinstance(body, dict) else decode(body, endpoint)
    next_url = doc.get("next_url")
    if next_url is not None and not isinstance(next_url, str):
        raise schema_error(f"next_url is a JSON {type(next_url).__name__}, expected a string", endpoint, _rid(doc))
    results = doc.get("results")
    count = len(results) if isinstance(results, list) else (0 if results is None else 1)
    return PageInfo(next_url=next_url or None, status=str(doc["status"]), request_id=_rid(doc), results_count=count)


def _rid(doc: dict[str, Any]) -> str | None:
    rid = doc.get("request_id")
    return rid if isinstance(rid, str) else None
