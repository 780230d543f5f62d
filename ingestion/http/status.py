"""HTTP status to the project's typed errors (see :mod:`ingestion.errors`).

=========  ===================  =========
status     error                retried
=========  ===================  =========
401        AuthError            no
403        NotEntitled          no
429        RateLimited          yes (Retry-After honoured); a vendor hook may return QuotaExhausted instead: no
other 4xx  ClientError          no
5xx        ServerError          yes
network    TransportError       yes
=========  ===================  =========

Each error carries vendor, endpoint (the route name, never a URL), status and request id. The vendor's own message
is included, shortened and redacted, because "You are not entitled to this data" is the useful part.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from ingestion.errors import AuthError, ClientError, NotEntitled, RateLimited, ServerError, VendorError
from ingestion.http.redaction import redact_text

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id")
_MESSAGE_FIELDS = ("message", "error", "msg", "detail", "status")
MAX_MESSAGE = 300
MAX_REQUEST_ID = 128


def request_id_from(headers: Mapping[str, str], body: bytes = b"") -> str | None:
    """The vendor's request id from a header, else from a JSON body's ``request_id`` (Polygon puts it there)."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return redact_text(value, MAX_REQUEST_ID)
    payload = _json_object(body)
    rid = payload.get("request_id") if payload else None
    # The id is vendor text too: a hostile or broken vendor can make it as long as a header line, or echo a key.
    return redact_text(str(rid), MAX_REQUEST_ID) if rid else None


def vendor_message(body: bytes) -> str:
    """The human part of an error body (JSON ``message``/``error``/``msg`` or plain text), redacted and shortened."""
    payload = _json_object(body)
    text = ""
    if payload:
        for name in _MESSAGE_FIELDS:
            value = payload.get(name)
            if isinstance(value, str) and value:
                text = value
                break
    elif body:
        text = body[:MAX_MESSAGE].decode("utf-8", "replace").strip()
    return redact_text(" ".join(text.split()), MAX_MESSAGE)


def _json_object(body: bytes) -> dict[str, object] | None:
    if not body or body[:1] != b"{" or len(body) > 65536:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def error_for_status(
    *,
    vendor: str,
    endpoint: str,
    status: int,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    auth_hint: str | None = None,
) -> VendorError:
    """The typed error for a non-2xx response. ``retry_after`` (s) is already parsed by the caller.

    ``auth_hint`` (e.g. "set POLYGON_API_KEY") is appended to 401/403 messages so the fix is in the error itself.
    """
    if 200 <= status < 300:
        raise ValueError(f"status {status} is a success, not an error")
    headers = headers or {}
    said = vendor_message(body)
    detail = f": {said}" if said else ""
    hint = f" ({auth_hint})" if auth_hint else ""
    rid = request_id_from(headers, body)
    if status == 429:
        wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimited(
            f"rate limited{wait}{detail}",
            retry_after=retry_after,
            vendor=vendor,
            endpoint=endpoint,
            status=status,
            request_id=rid,
        )
    cls: type[VendorError]
    if status == 401:
        cls, text = AuthError, f"authentication failed: the API key was rejected or missing{hint}{detail}"
    elif status == 403:
        cls, text = NotEntitled, f"not entitled: the plan does not cover this request{hint}{detail}"
    elif 400 <= status < 500:
        cls, text = ClientError, f"request rejected{detail}"
    elif status >= 500:
        cls, text = ServerError, f"server error{detail}"
    else:
        # 1xx/3xx reaching here means a redirect was not followed: a request the client must fix.
        cls, text = ClientError, f"unexpected status{detail}"
    return cls(text, vendor=vendor, endpoint=endpoint, status=status, request_id=rid)
