"""One GET on the wire, bounded in every direction: the only place the HTTP core touches ``requests``.

Per attempt: proxies and CA bundle from the environment (:mod:`~ingestion.http.environ`), a total deadline
(:mod:`~ingestion.http.deadline`), the body streamed within byte limits (:mod:`~ingestion.http.body`), redirects not
followed (a redirect could carry the key's header to another host). Whatever goes wrong comes back as one of the
project's errors, with the library's text redacted and cut short:

* :class:`~ingestion.errors.TransportError`: no connection, a timeout, a reset or a body cut short, the deadline, a
  corrupt compressed stream (all retried);
* :class:`~ingestion.http.body.BodyTooLarge`: a 2xx body over a limit (not retried: the same request would get the
  same answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions

from ingestion.errors import TransportError
from ingestion.http.body import BodyEncodingError, BodyLimits, BodyTooLarge, read_bounded
from ingestion.http.deadline import AttemptDeadline
from ingestion.http.environ import ca_bundle, proxies_for
from ingestion.http.redaction import redact_exception, redact_text
from ingestion.http.session import Timeouts


@dataclass(frozen=True)
class Answer:
    """What the vendor sent: status, headers (lower-case names) and the decoded body, within the limits."""

    status: int
    headers: dict[str, str]
    body: bytes


def exchange(
    session: requests.Session,
    url: str,
    *,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    limits: BodyLimits,
    vendor: str,
    endpoint: str,
) -> Answer:
    """GET ``url`` and read the answer within ``timeouts`` (the total deadline included) and ``limits``."""

    def transport_error(what: str) -> TransportError:
        return TransportError(what, vendor=vendor, endpoint=endpoint)

    with AttemptDeadline(timeouts.total) as deadline:
        try:
            response = session.get(
                url,
                params=params,
                headers=dict(headers),
                timeout=timeouts.as_requests(),
                allow_redirects=False,
                stream=True,
                proxies=proxies_for(url),
                verify=ca_bundle(),
            )
        except requests.RequestException as exc:
            if deadline.expired:
                raise transport_error(f"no answer within the {timeouts.total:g} s deadline") from None
            # `from None`: the library's exception text repeats the URL, and we do not re-show it unredacted.
            raise transport_error(f"request failed: {redact_text(redact_exception(exc))}") from None
        deadline.watch_response(response)
        try:
            answer = Answer(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=_read(response, limits, vendor, endpoint),
            )
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, BodyEncodingError) as exc:
            if deadline.expired:
                raise transport_error(f"body not complete within the {timeouts.total:g} s deadline") from None
            raise transport_error(f"reading the body failed: {redact_text(redact_exception(exc))}") from None
        finally:
            # Fully read: the connection is already back in the pool. Otherwise this drops it instead of draining.
            response.close()
    if deadline.expired:
        # A body without a length ends at the connection's close, which is also what the deadline does.
        raise transport_error(f"body not complete within the {timeouts.total:g} s deadline")
    return answer


def _read(response: requests.Response, limits: BodyLimits, vendor: str, endpoint: str) -> bytes:
    cap, strict = limits.for_status(response.status_code)
    length = response.headers.get("content-length")

    def too_large(reason: str) -> BodyTooLarge:
        return BodyTooLarge(
            f"response body refused: {reason}", vendor=vendor, endpoint=endpoint, status=response.status_code
        )

    return read_bounded(
        lambda n: response.raw.read(n, decode_content=False),
        content_encoding=response.headers.get("content-encoding"),
        content_length=int(length) if length and length.isdigit() else None,
        max_raw=limits.max_raw,
        max_decoded=cap,
        strict=strict,
        describe=too_large,
    )
