"""Reading a response body within limits: raw bytes on the wire and bytes after decompression are both capped.

``requests`` would read a body whole (``response.content``) and let urllib3 inflate it whole, so a 100 MB page or a
200 KB gzip stream that inflates to 200 MB would land in memory before anything could object. Here the body is read
from the socket in chunks, inflated here with an output bound per step (``zlib``'s ``max_length``), and counted as it
goes; the first byte over a limit stops the read with :class:`BodyTooLarge`, so memory stays near the limit whatever
the server sends.

An error response needs only its first few KB (the vendor's message): :meth:`BodyLimits.for_status` gives it a small
cap, and the rest is dropped with the connection rather than read.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ingestion.errors import SchemaError

MiB: Final = 1024 * 1024
CHUNK: Final = 64 * 1024
"""Raw bytes asked of the socket per read, and decompressed bytes produced per inflate step."""


class BodyTooLarge(SchemaError):
    """A response body went over the raw or the decompressed size limit (a huge page or a compression bomb)."""


class BodyEncodingError(ValueError):
    """A body's ``Content-Encoding`` is one we did not ask for, or its compressed stream is corrupt."""


@dataclass(frozen=True)
class BodyLimits:
    """Byte limits for one response body.

    ``max_raw``: bytes read from the wire (compressed size). ``max_decoded``: bytes after decompression; the largest
    vendor pages (50,000 v3 trades) are about 12 MB of JSON, so the default leaves room without letting a hostile
    server fill memory. ``max_error``: decoded bytes kept of a non-2xx body, whose message is all we use.
    """

    max_raw: int = 32 * MiB
    max_decoded: int = 32 * MiB
    max_error: int = 64 * 1024

    def __post_init__(self) -> None:
        if min(self.max_raw, self.max_decoded, self.max_error) < 1:
            raise ValueError("body limits are byte counts and must be at least 1")

    def for_status(self, status: int) -> tuple[int, bool]:
        """(decoded byte cap, whether reaching it is an error) for a response with ``status``.

        A 2xx body over its cap is refused; an error body is simply cut at :attr:`max_error`.
        """
        if 200 <= status < 300:
            return self.max_decoded, True
        return min(self.max_error, self.max_decoded), False


class _Inflater:
    """Incremental gzip/deflate decoding with bounded output per step (multi-member gzip included)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._first_deflate = not self._gzip
        self._d = self._new()
        self._pending = b""

    def _new(self) -> zlib._Decompress:
        # gzip: header auto-detected (32 + MAX_WBITS); deflate: zlib-wrapped, with a raw-deflate retry below,
        # because servers send both under the one name.
        return zlib.decompressobj(32 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        self._pending += data

    def take(self, max_out: int) -> bytes:
        """Up to ``max_out`` (> 0) bytes of output from the input fed so far; b"" when it needs more input."""
        while self._pending:
            data, self._pending = self._pending, b""
            try:
                out = self._d.decompress(data, max_out)
            except zlib.error as exc:
                if self._first_deflate:
                    self._first_deflate = False
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._pending = data
                    continue
                raise BodyEncodingError(f"corrupt compressed body ({exc})") from None
            self._first_deflate = False
            self._pending = self._d.unconsumed_tail
            if self._d.eof and self._d.unused_data:
                self._pending += self._d.unused_data  # the next gzip member
                self._d = self._new()
            if out:
                return out
        return b""


def decoder(content_encoding: str | None) -> _Inflater | None:
    """The inflater for a ``Content-Encoding`` header value, None for an identity body.

    Raises :class:`BodyEncodingError` for an encoding we never ask for (we send ``Accept-Encoding: gzip, deflate``).
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(encoding)
    raise BodyEncodingError(f"unsupported Content-Encoding {encoding[:40]!r}")


def read_bounded(
    read: Callable[[int], bytes],
    *,
    content_encoding: str | None,
    content_length: int | None,
    max_raw: int,
    max_decoded: int,
    strict: bool,
    describe: Callable[[str], BodyTooLarge],
) -> bytes:
    """Read a body through ``read(n)`` (raw bytes, b"" at the end), decompressing and counting as it goes.

    With ``strict`` a body over a limit raises ``describe(reason)``; without it the body is cut at the limit and the
    rest left unread (the caller closes the connection). ``content_length`` (raw) fails fast before any read.
    """
    if strict and content_length is not None and content_length > max_raw:
        raise describe(f"the vendor announced {content_length} bytes; the limit is {max_raw}")
    inflate = decoder(content_encoding)
    out = bytearray()
    raw_total = 0
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        raw_total += len(chunk)
        if raw_total > max_raw:
            if strict:
                raise describe(f"more than {max_raw} bytes on the wire")
            break
        if inflate is None:
            out += chunk
        else:
            inflate.feed(chunk)
            while piece := inflate.take(min(CHUNK, max_decoded + 1 - len(out))):
                out += piece
                if len(out) > max_decoded:
                    break
        if len(out) > max_decoded:
            if strict:
                what = "decompressed" if inflate is not None else "of body"
                raise describe(f"more than {max_decoded} bytes {what} (after {raw_total} bytes on the wire)")
            del out[max_decoded:]
            break
    return bytes(out)
