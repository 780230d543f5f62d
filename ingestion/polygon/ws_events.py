"""Polygon WebSocket frames to columnar batches, one per event type (pure; no socket, no store).

A server frame is a JSON array of events. :func:`parse_ws_frame` sorts a frame's events by ``ev`` into column lists
(a :class:`TradeBatch`, :class:`QuoteBatch`, :class:`AggBatch` for ``A`` second and ``AM`` minute aggregates) and
:class:`StatusEvent` records. Columns rather than one object per tick: the bridge consumes ticks in bulk and building
an object per event would cost more than decoding it.

It never raises on vendor input: a frame that is not a JSON array of objects, and an event with a missing or
mistyped field or an impossible value, come back in :attr:`WsFrame.rejected` with a reason; event types this module
does not parse are counted in :attr:`WsFrame.skipped`. Nothing is dropped silently. What a valid field is lives in
:mod:`ingestion.polygon.ws_rules`, shared with the WebSocket client's hot path, so the two judge every event alike.

Times are as sent: ``t`` (trade/quote SIP time) and ``s``/``e`` (aggregate window start/end) are epoch
**milliseconds** UTC. Quote sizes are round lots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestion.polygon.ws_rules import AGGREGATE, QUOTE, TRADE, EventRules
from ingestion.rejects import Rejected

__all__ = ["AggBatch", "QuoteBatch", "StatusEvent", "TradeBatch", "WsFrame", "parse_ws_frame"]

SOURCE = "polygon websocket"


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
    # Every check runs before the first append, so a bad event never leaves the columns out of step.
    _require(TRADE, e)
    b = out.trades
    b.symbol.append(e["sym"])
    b.exchange.append(e["x"])
    b.trade_id.append(e.get("i"))
    b.tape.append(e.get("z"))
    b.price.append(e["p"])
    b.size.append(e["s"])
    b.conditions.append(e.get("c"))
    b.sip_ms.append(e["t"])
    b.sequence.append(e.get("q"))


def _quote(out: WsFrame, e: dict[str, Any]) -> None:
    _require(QUOTE, e)
    b = out.quotes
    b.symbol.append(e["sym"])
    b.bid_exchange.append(e.get("bx"))
    b.bid_price.append(e["bp"])
    b.bid_size.append(e["bs"])
    b.ask_exchange.append(e.get("ax"))
    b.ask_price.append(e["ap"])
    b.ask_size.append(e["as"])
    b.sip_ms.append(e["t"])
    b.sequence.append(e.get("q"))
    b.tape.append(e.get("z"))


def _agg(target: Callable[[WsFrame], AggBatch]) -> Callable[[WsFrame, dict[str, Any]], None]:
    def add(out: WsFrame, e: dict[str, Any]) -> None:
        _require(AGGREGATE, e)
        o, h, lo, c, s, end, volume = e["o"], e["h"], e["l"], e["c"], e["s"], e["e"], e.get("v")
        if lo > min(o, c) or h < max(o, c):
            raise _Bad("high/low do not bound open and close")
        if end < s:
            raise _Bad("window end e before start s")
        if volume is not None and volume < 0:
            raise _Bad("negative volume")
        b = target(out)
        b.symbol.append(e["sym"])
        b.open.append(o)
        b.high.append(h)
        b.low.append(lo)
        b.close.append(c)
        b.volume.append(volume)
        b.vwap.append(e.get("vw"))
        b.day_volume.append(e.get("av"))
        b.day_open.append(e.get("op"))
        b.day_vwap.append(e.get("a"))
        b.start_ms.append(s)
        b.end_ms.append(end)
        b.otc.append(e.get("otc") or False)

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


def _require(rules: EventRules, e: dict[str, Any]) -> None:
    reason = rules.problem(e)
    if reason is not None:
        raise _Bad(reason)


def _reject(ev: str, reason: str, payload: Any) -> Rejected:
    return Rejected(dataset=f"polygon_ws_{ev}", source=SOURCE, reason=reason, payload=payload)


def _text(frame: bytes | str) -> str:
    return frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
