"""An :class:`~ingestion.stream.aggregator.Aggregator`'s state as bytes, and back: what a buffered bridge commits with
each acknowledgement, so the next owner of a partition (or the same consumer after ``kill -9``) resumes from exactly
the state that matches the acknowledged entries.

orjson, not pickle: the bytes live in Redis, and loading them must never run code. Floats round-trip exactly (orjson
writes the shortest representation that reads back to the same double), so a resumed aggregator produces the same
rows, bit for bit, as one that never stopped. Minute-bar dicts keyed by int are stored as pairs.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import orjson

from ingestion.stream.aggregator import Aggregator, RefillWindow, SymbolState

_VERSION = 1


def _window(w: RefillWindow) -> list[Any]:
    symbols = None if w.symbols is None else sorted(w.symbols)
    return [w.id, w.start_ms, w.end_ms, w.reason, symbols, w.seed, w.streamed_volume]


def _symbol(st: SymbolState) -> dict[str, Any]:
    return {
        "symbol": st.symbol,
        "event_ms": st.event_ms,
        "last_trade_ms": st.last_trade_ms,
        "last_price": st.last_price,
        "quote_ms": st.quote_ms,
        "bid": st.bid,
        "ask": st.ask,
        "window": list(st.window),
        "volume_1m": st.volume_1m,
        "notional_1m": st.notional_1m,
        "trades_1m": st.trades_1m,
        "session_open_ms": st.session_open_ms,
        "session_next_ms": st.session_next_ms,
        "day_volume": st.day_volume,
        "open_price": st.open_price,
        "open_seeded": st.open_seeded,
        "bars": list(st.bars.items()),
        "dirty": st.dirty,
        "refilled": st.refilled,
    }


def dump(agg: Aggregator) -> bytes:
    """The aggregator's state. Call between flushes: rows, tick times and closed bars not yet taken are not kept."""
    next_id = next(agg._ids)
    agg._ids = itertools.count(next_id)  # reading the counter consumed a value: put it back
    # Sorted keys: the same state gives the same bytes (dicts filled from sets iterate in hash order).
    return orjson.dumps(
        {
            "v": _VERSION,
            "lateness_ms": agg.lateness_ms,
            "watermark_ms": agg.watermark_ms,
            "late_trades": agg.late_trades,
            "trades": agg.trades,
            "quotes": agg.quotes,
            "windows": [_window(w) for w in agg._windows],
            "next_id": next_id,
            "gap_before_ms": agg._gap_before_ms,
            "open_bars": sorted(agg._open_bars),
            "states": [_symbol(st) for st in agg.states.values()],
        },
        option=orjson.OPT_SORT_KEYS,
    )


def load(raw: bytes, lateness_ms: int) -> Aggregator:
    """An aggregator in the state ``raw`` holds (a fresh one for empty bytes)."""
    agg = Aggregator(lateness_ms=lateness_ms)
    if not raw:
        return agg
    d = orjson.loads(raw)
    if d.get("v") != _VERSION:
        raise ValueError(f"aggregator snapshot version {d.get('v')!r} is not {_VERSION}")
    if d["lateness_ms"] != lateness_ms:
        raise ValueError(f"the snapshot was taken with lateness {d['lateness_ms']} ms, not {lateness_ms} ms")
    agg.watermark_ms = d["watermark_ms"]
    agg.late_trades = d["late_trades"]
    agg.trades = d["trades"]
    agg.quotes = d["quotes"]
    agg._windows = [
        RefillWindow(i, s, e, reason, None if syms is None else frozenset(syms), seed, dict(vol))
        for i, s, e, reason, syms, seed, vol in d["windows"]
    ]
    agg._ids = itertools.count(d["next_id"])
    agg._gap_before_ms = d["gap_before_ms"]
    agg._open_bars = set(d["open_bars"])
    for s in d["states"]:
        st = SymbolState(s["symbol"])
        for name in ("event_ms", "last_trade_ms", "last_price", "quote_ms", "bid", "ask", "volume_1m", "notional_1m"):
            setattr(st, name, s[name])
        for name in ("trades_1m", "session_open_ms", "session_next_ms", "day_volume", "open_price", "open_seeded"):
            setattr(st, name, s[name])
        st.window = deque((t, size, notional) for t, size, notional in s["window"])
        st.bars = {int(m): list(bar) for m, bar in s["bars"]}
        st.dirty = s["dirty"]
        st.refilled = [list(r) for r in s.get("refilled", [])]  # absent from checkpoints written before it existed
        agg.states[st.symbol] = st
    return agg


__all__ = ["dump", "load"]
