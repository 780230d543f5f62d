"""Decoding vendor JSON in which a number may overflow float64 (``1e309``), without losing the rest of the page.

orjson refuses such a number for the whole document. One overflowing value must cost its own row, not the page:
the standard library reads it as ``inf``, which the parsers' finiteness checks then quarantine with a reason. The
non-JSON tokens ``NaN`` and ``Infinity`` stay refused, as orjson refuses them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONError(ValueError):
    """The body is not JSON. ``msg`` and ``pos`` say where, as in :class:`json.JSONDecodeError`."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg} at char {pos}")
        self.msg = msg
        self.pos = pos


def loads(body: bytes | bytearray | memoryview | str) -> Any:
    """Decode ``body`` as orjson does, except that a number beyond float64 becomes ``inf`` (or ``-inf``)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in exc.msg:
            raise JSONError(exc.msg, exc.pos) from None
    text = bytes(body).decode("utf-8", "replace") if not isinstance(body, str) else body
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:  # orjson stops at its first error: another may follow the overflow
        raise JSONError(exc.msg, exc.pos) from None


def _parse_int(text: str) -> int | float:
    # As orjson does: an integer beyond 64 bits becomes a float (here possibly inf). float() also spares int() its
    # 4300-digit limit.
    if len(text.lstrip("-")) > 20:
        return float(text)
    number = int(text)
    return number if -(2**63) <= number < 2**64 else float(number)


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)
