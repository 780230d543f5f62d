"""Bounded inputs: body size caps (raw and decompressed), a total deadline per attempt, and short, redacted error text.

Each case runs against a real loopback server that misbehaves on purpose (``fixtures.hostile``). Memory is measured
with tracemalloc (the bodies are Python bytes); time is bounded by pytest-timeout, never asserted.
"""

from __future__ import annotations

import gzip
import random
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from fixtures.hostile import MB, HostileServer, gzip_bomb
from fixtures.http import Script, ServerFactory

from ingestion.errors import SchemaError, ServerError, TransportError
from ingestion.http import BearerAuth, BodyLimits, BodyTooLarge, RetryPolicy, Timeouts, VendorHTTP, redact_text
from ingestion.http.body import BodyEncodingError, read_bounded
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.http import Response

MEMORY_BOUND = 100 * MB


@pytest.fixture
def hostile(test_key: str) -> Iterator[HostileServer]:
    server = HostileServer(echo=test_key, trickle_interval=0.2).start()
    yield server
    server.stop()


def core(server: HostileServer, key: str, **kwargs: object) -> VendorHTTP:
    return core_at(server.url, key, **kwargs)


def core_at(url: str, key: str, **kwargs: object) -> VendorHTTP:
    return VendorHTTP(
        "polygon",
        url,
        auth=BearerAuth(key),
        retry=RetryPolicy(max_attempts=1, rng=random.Random(0)),
        **kwargs,  # type: ignore[arg-type]
    )


def peak_growth(action: Callable[[], object]) -> int:
    """Bytes of Python memory the action needed at its peak, above what was in use before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def refused(http: VendorHTTP, path: str, error: type[Exception]) -> Exception:
    with pytest.raises(error) as info:
        http.get("x", path)
    return info.value


@pytest.mark.timeout(60)
def test_a_gzip_bomb_fails_with_a_clear_error_in_bounded_memory(hostile: HostileServer, test_key: str) -> None:
    assert len(gzip_bomb()) < 400 * 1024  # ~200 KB on the wire, 200 MB inflated
    with core(hostile, test_key) as http:
        errors: list[Exception] = []
        growth = peak_growth(lambda: errors.append(refused(http, "/bomb", BodyTooLarge)))
    assert "decompressed" in str(errors[0]) and "[polygon x]" in str(errors[0])
    assert growth < MEMORY_BOUND


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/huge", "/huge-announced"])
def test_a_huge_body_is_refused_in_bounded_memory(hostile: HostileServer, test_key: str, path: str) -> None:
    with core(hostile, test_key) as http:
        errors: list[Exception] = []
        growth = peak_growth(lambda: errors.append(refused(http, path, BodyTooLarge)))
    assert "response body refused" in str(errors[0])
    assert growth < MEMORY_BOUND


@pytest.mark.timeout(60)
def test_smaller_limits_are_honoured_and_a_body_within_them_is_read(hostile: HostileServer, test_key: str) -> None:
    with core(hostile, test_key, limits=BodyLimits(max_raw=512 * 1024, max_decoded=256 * 1024)) as http:
        assert "more than 262144 bytes decompressed" in str(refused(http, "/bomb", BodyTooLarge))
        assert "more than 262144 bytes of body" in str(refused(http, "/huge", BodyTooLarge))
        assert "the limit is 524288" in str(refused(http, "/huge-announced", BodyTooLarge))
        assert http.get("x", "/ok").json() == {"status": "OK", "results": []}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_server_trickling_bytes_cannot_hold_an_attempt_past_the_deadline(
    hostile: HostileServer, test_key: str, path: str
) -> None:
    # Each byte comes well within the read timeout; only the total deadline can end the attempt.
    with core(hostile, test_key, timeouts=Timeouts(connect=2.0, read=5.0, total=1.0)) as http:
        error = refused(http, path, TransportError)
    assert "1 s deadline" in str(error)


@pytest.mark.timeout(60)
def test_vendor_error_text_is_cut_short_and_redacted(hostile: HostileServer, test_key: str) -> None:
    with core(hostile, test_key) as http:
        errors: list[Exception] = []
        growth = peak_growth(lambda: errors.append(refused(http, "/error-text", ServerError)))
    text = str(errors[0])
    assert "upstream failure for ***" in text and test_key not in text
    assert len(text) < 600
    assert growth < MEMORY_BOUND


def test_redact_text_masks_then_cuts(test_key: str) -> None:
    long = f"echo {test_key} " * 1000
    short = redact_text(long)
    assert test_key not in short and len(short) == 500 and short.endswith("…")
    assert redact_text(long, limit=None) == long.replace(test_key, "***")
    assert redact_text("Authorization: Bearer abcdefgh123") == "Authorization: Bearer ***"


def reader(data: bytes) -> Callable[[int], bytes]:
    view = memoryview(data)
    position = 0

    def read(n: int) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + n])
        position += len(chunk)
        return chunk

    return read


def never_too_large(reason: str) -> BodyTooLarge:
    raise AssertionError(f"unexpected refusal: {reason}")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", None])
def test_bounded_reader_decodes_what_requests_would(encoding: str | None) -> None:
    body = b'{"status":"OK","results":[' + b",".join(b'{"c":%d}' % i for i in range(20_000)) + b"]}"
    if encoding == "gzip":
        wire = gzip.compress(body[:1000]) + gzip.compress(body[1000:])  # two members, as some servers send
    elif encoding == "deflate":
        wire = __import__("zlib").compress(body)
    elif encoding == "raw-deflate":
        import zlib

        squeeze = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire = squeeze.compress(body) + squeeze.flush()
    else:
        wire = body
    header = "deflate" if encoding == "raw-deflate" else encoding
    got = read_bounded(
        reader(wire),
        content_encoding=header,
        content_length=len(wire),
        max_raw=len(wire),
        max_decoded=len(body),
        strict=True,
        describe=never_too_large,
    )
    assert got == body


def test_bounded_reader_refuses_unasked_encodings_and_cuts_error_bodies() -> None:
    with pytest.raises(BodyEncodingError, match="unsupported Content-Encoding"):
        read_bounded(
            reader(b"x"), content_encoding="br", content_length=1, max_raw=10, max_decoded=10, strict=True,
            describe=never_too_large,
        )  # fmt: skip
    cut = read_bounded(
        reader(gzip.compress(b"e" * 100_000)), content_encoding="gzip", content_length=None, max_raw=1 << 20,
        max_decoded=1000, strict=False, describe=never_too_large,
    )  # fmt: skip
    assert cut == b"e" * 1000


def test_a_200_page_with_megabytes_of_error_text_gives_a_short_redacted_schema_error(
    serve: ServerFactory, test_key: str
) -> None:
    path = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05"
    said = f"bad request for {test_key} " * 100_000  # about 5 MB, the key echoed all through
    server = serve({path: Script([Response.json({"status": "ERROR", "error": said})])})
    client = PolygonRESTClient(http=core_at(server.url, test_key))
    with pytest.raises(SchemaError) as info:
        client.get_aggregates("AAPL", 1, "day", "2024-01-02", "2024-01-05")
    client.close()
    text = str(info.value)
    assert "bad request for ***" in text and test_key not in text and len(text) < 700
