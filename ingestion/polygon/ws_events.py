"""Polygon WebSocket frames to columnar batches, one per event type (pure; no socket, no store).

A server frame is a JSON array of events. :func:`parse_ws_frame` sorts a frame's events by ``ev`` into column lists
(a :class:`TradeBatch`, :class:`QuoteBatch`, :class:`AggBatch` for ``A`` second and ``AM`` minute aggregates) and
:class:`StatusEvent` records. Columns rather than one object per tick: the bridge consumes ticks in bulk and building
an object per event would cost more than decoding it.

It never raises on vendor input: a frame that is not a JSON array of objects, and an event with a missing or
mistyped field or an impossible value, come back in :attr:`WsFrame.rejected` with a reason; event types this module
does not parse are counted in :attr:`WsFrame.skipped`. Nothing is dropped silently.

Times are as sent: ``t`` (trade/quote SIP time) and ``s``/``e`` (aggregate window start/end) are epoch
**milliseconds** UTC. Quote sizes are round lots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestion.rejects import Rejected

__all__ = ["AggBatch", "QuoteBatch", "StatusEvent", "TradeBatch", "WsFrame", "parse_ws_frame"]

SOURCE = "polygon websocket"
_NUM = (int, float)
_MAX = 1e300  # below float inf: a price or size this large is a corrupt value, not a market


@dataclass(frozen=True)
class StatusEvent:
    """A ``status`` event: ``connected``, ``auth_success``, ``auth_failed``, ``success``, ``max_connections``..."""

    status: str
    message: str


@dataclass
class TradeBatch:
    """``T`` events as columns. ``sip_ms`` = ``t`` (ms UTC); ``trade_id`` is None where the feed omits ``i``
    (options); ``conditions`` may be None."""

    symbol: list[str] = field(default_factory=list)
    exchange: list[int] = field(default_factory=list)
    trade_id: list[str | None] = field(default_factory=list)
    tape: list[int | None] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    size: list[float] = field(default_factory=list)
    conditions: list[list[int] | None] = field(default_factory=list)
    sip_ms: list[int] = field(default_factory=list)
    sequence: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass
class QuoteBatch:
    """``Q`` events as columns: bid/ask exchange, price, size (round lots); ``sip_ms`` = ``t`` (ms UTC)."""

    symbol: list[str] = field(default_factory=list)
    bid_exchange: list[int | None] = field(default_factory=list)
    bid_price: list[float] = field(default_factory=list)
    bid_size: list[float] = field(default_factory=list)
    ask_exchange: list[int | None] = field(default_factory=list)
    ask_price: list[float] = field(default_factory=list)
    ask_size: list[float] = field(default_factory=list)
    sip_ms: list[int] = field(default_factory=list)
    sequence: list[int | None] = field(default_factory=list)
    tape: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass
class AggBatch:
    """``A`` (second) or ``AM`` (minute) aggregates as columns. ``start_ms``/``end_ms`` = ``s``/``e`` (ms UTC);
    ``day_volume`` = ``av``, ``day_open`` = ``op``, ``day_vwap`` = ``a``; volume and vwaps are None for indices."""

    symbol: list[str] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float | None] = field(default_factory=list)
    vwap: list[float | None] = field(default_factory=list)
    day_volume: list[float | None] = field(default_factory=list)
    day_open: list[float | None] = field(default_factory=list)
    day_vwap: list[float | None] = field(default_factory=list)
    start_ms: list[int] = field(default_factory=list)
    end_ms: list[int] = field(default_factory=list)
    otc: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass
class WsFrame:
    """Everything one frame held, by kind; ``rejected`` and ``skipped`` account for every event not in a batch."""

    trades: TradeBatch = field(default_factory=TradeBatch)
    quotes: QuoteBatch = field(default_factory=QuoteBatch)
    second_aggs: AggBatch = field(default_factory=AggBatch)
    minute_aggs: AggBatch = field(default_factory=AggBatch)
    statuses: list[StatusEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def event_count(self) -> int:
        """Events accounted for: parsed + rejected + skipped (equals the frame's length for a valid array)."""
        parsed = len(self.trades) + len(self.quotes) + len(self.second_aggs) + len(self.minute_aggs)
        return parsed + len(self.statuses) + len(self.rejected) + sum(self.skipped.values())


class _Bad(Exception):
    """An event value that is present but wrong; the message is the reason."""


def parse_ws_frame(frame: bytes | str) -> WsFrame:
    """Parse one server frame (a JSON array of events). Never raises on vendor input; see the module docstring."""
    out = WsFrame()
    try:
        events = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        out.rejected.append(_reject("frame", f"frame is not valid JSON ({exc.msg})", _text(frame)))
        return out
    if isinstance(events, dict):  # the docs promise arrays; a lone object is still one readable event
        events = [events]
    if not isinstance(events, list):
        out.rejected.append(_reject("frame", f"frame is a JSON {type(events).__name__}, expected an array", events))
        return out
    for event in events:
        ev = event.get("ev") if isinstance(event, dict) else None
        if not isinstance(ev, str):
            out.rejected.append(_reject("event", "event is not an object with a string 'ev'", event))
            continue
        handler = _HANDLERS.get(ev)
        if handler is None:
            out.skipped[ev] = out.skipped.get(ev, 0) + 1
            continue
        try:
            handler(out, event)
        except KeyError as exc:
            out.rejected.append(_reject(ev, f"missing field {exc.args[0]!r}", event))
        except _Bad as exc:
            out.rejected.append(_reject(ev, str(exc), event))
    return out


def _trade(out: WsFrame, e: dict[str, Any]) -> None:
    sym, price, size, t, x = e["sym"], e["p"], e["s"], e["t"], e["x"]
    trade_id, tape, conditions, sequence = e.get("i"), e.get("z"), e.get("c"), e.get("q")
    # One combined test on the hot path; only a failing event pays for the step-by-step reason. Every check runs
    # before the first append, so a bad event never leaves the columns out of step. `type(v) is int` also keeps
    # booleans out (bool is an int subclass).
    if not (
        type(sym) is str
        and sym
        and type(price) in _NUM
        and 0 <= price < _MAX
        and type(size) in _NUM
        and 0 <= size < _MAX
        and type(t) is int
        and t > 0
        and type(x) is int
        and (trade_id is None or type(trade_id) is str)
        and (tape is None or type(tape) is int)
        and (conditions is None or type(conditions) is list)
        and (sequence is None or type(sequence) is int)
    ):
        _explain(e, (("sym", _sym), ("p", _price), ("s", _price), ("t", _time), ("x", _int)), _TRADE_OPTIONAL)
    b = out.trades
    b.symbol.append(sym)
    b.exchange.append(x)
    b.trade_id.append(trade_id)
    b.tape.append(tape)
    b.price.append(price)
    b.size.append(size)
    b.conditions.append(conditions)
    b.sip_ms.append(t)
    b.sequence.append(sequence)


def _quote(out: WsFrame, e: dict[str, Any]) -> None:
    sym, bp, bs, ap, asz, t = e["sym"], e["bp"], e["bs"], e["ap"], e["as"], e["t"]
    bx, ax, sequence, tape = e.get("bx"), e.get("ax"), e.get("q"), e.get("z")
    if not (
        type(sym) is str
        and sym
        and type(bp) in _NUM
        and 0 <= bp < _MAX
        and type(bs) in _NUM
        and 0 <= bs < _MAX
        and type(ap) in _NUM
        and 0 <= ap < _MAX
        and type(asz) in _NUM
        and 0 <= asz < _MAX
        and type(t) is int
        and t > 0
        and (bx is None or type(bx) is int)
        and (ax is None or type(ax) is int)
        and (sequence is None or type(sequence) is int)
        and (tape is None or type(tape) is int)
    ):
        checks = (("sym", _sym), ("bp", _price), ("bs", _price), ("ap", _price), ("as", _price), ("t", _time))
        _explain(e, checks, _QUOTE_OPTIONAL)
    b = out.quotes
    b.symbol.append(sym)
    b.bid_exchange.append(bx)
    b.bid_price.append(bp)
    b.bid_size.append(bs)
    b.ask_exchange.append(ax)
    b.ask_price.append(ap)
    b.ask_size.append(asz)
    b.sip_ms.append(t)
    b.sequence.append(sequence)
    b.tape.append(tape)


_TRADE_OPTIONAL: tuple[tuple[str, type], ...] = (("i", str), ("z", int), ("c", list), ("q", int))
_QUOTE_OPTIONAL: tuple[tuple[str, type], ...] = (("bx", int), ("ax", int), ("q", int), ("z", int))


def _explain(
    e: dict[str, Any],
    required: tuple[tuple[str, Callable[[str, Any], None]], ...],
    optional: tuple[tuple[str, type], ...],
) -> None:
    """Raise :class:`_Bad` with the first problem of an event that failed the combined test."""
    for name, check in required:
        check(name, e[name])
    for name, kind in optional:
        _opt(e, name, kind)
    raise _Bad("event failed validation")  # pragma: no cover - the checks above mirror the combined test


def _agg(target: Callable[[WsFrame], AggBatch]) -> Callable[[WsFrame, dict[str, Any]], None]:
    def add(out: WsFrame, e: dict[str, Any]) -> None:
        sym, o, h, lo, c, s, end = e["sym"], e["o"], e["h"], e["l"], e["c"], e["s"], e["e"]
        _sym("sym", sym)
        for name, value in (("o", o), ("h", h), ("l", lo), ("c", c)):
            _price(name, value)
        _time("s", s)
        _time("e", end)
        if lo > min(o, c) or h < max(o, c):
            raise _Bad("high/low do not bound open and close")
        if end < s:
            raise _Bad("window end e before start s")
        volume = _opt(e, "v", _NUM)
        if volume is not None and volume < 0:
            raise _Bad("negative volume")
        vwap, day_volume, day_open, day_vwap = (_opt(e, k, _NUM) for k in ("vw", "av", "op", "a"))
        otc = _opt(e, "otc", bool) or False
        b = target(out)
        b.symbol.append(sym)
        b.open.append(o)
        b.high.append(h)
        b.low.append(lo)
        b.close.append(c)
        b.volume.append(volume)
        b.vwap.append(vwap)
        b.day_volume.append(day_volume)
        b.day_open.append(day_open)
        b.day_vwap.append(day_vwap)
        b.start_ms.append(s)
        b.end_ms.append(end)
        b.otc.append(otc)

    return add


def _status(out: WsFrame, e: dict[str, Any]) -> None:
    status, message = e["status"], e.get("message", "")
    if type(status) is not str or type(message) is not str:
        raise _Bad("status and message must be strings")
    out.statuses.append(StatusEvent(status, message))


_HANDLERS: dict[str, Callable[[WsFrame, dict[str, Any]], None]] = {
    "T": _trade,
    "Q": _quote,
    "A": _agg(lambda out: out.second_aggs),
    "AM": _agg(lambda out: out.minute_aggs),
    "status": _status,
}


def _sym(name: str, value: Any) -> None:
    if type(value) is not str or not value:
        raise _Bad(f"{name} is not a non-empty string")


def _price(name: str, value: Any) -> None:
    # orjson never yields NaN; a float inf (from an overflowing literal) fails the upper bound.
    if type(value) not in _NUM or not 0 <= value < _MAX:
        raise _Bad(f"{name} is {value!r:.30}, expected a non-negative finite number")


def _int(name: str, value: Any) -> None:
    if type(value) is not int:
        raise _Bad(f"{name} is {value!r:.30}, expected an integer")


def _time(name: str, value: Any) -> None:
    if type(value) is not int or value <= 0:
        raise _Bad(f"{name} is {value!r:.30}, expected epoch milliseconds")


def _opt(e: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = e.get(name)
    if value is None:
        return None
    if type(value) is bool and kind is not bool:  # bool is an int subclass; True is never a count or a price
        raise _Bad(f"{name} is {value!r}, expected {_kind_name(kind)}")
    if not isinstance(value, kind):
        raise _Bad(f"{name} is {value!r:.30}, expected {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "a number" if isinstance(kind, tuple) else kind.__name__


def _reject(ev: str, reason: str, payload: Any) -> Rejected:
    return Rejected(dataset=f"polygon_ws_{ev}", source=SOURCE, reason=reason, payload=payload)


def _text(frame: bytes | str) -> str:
    return frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
