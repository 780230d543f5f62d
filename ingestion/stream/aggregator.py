"""Per-symbol tick aggregation: ``realtime_quotes`` rows and closed one-minute bars from trades and quotes.

Everything here runs on the bridge's consumer thread, once per tick, so the per-tick path is plain attribute and
list arithmetic; pandas only appears when rows leave (at most once per micro-batch).

Times are Polygon SIP times in epoch **milliseconds** UTC. A row's ``event_timestamp`` is the SIP time of the latest
tick (trade or quote) included in it, per the dataset's rule.

Definitions (the columns' descriptions in :data:`ingestion.datasets.REALTIME_QUOTES`, made precise):

* ``volume_1m`` / ``vwap_1m`` / ``trade_count_1m``: trades with SIP time in ``(T - 60 s, T]``, T = the row's event time.
* ``day_volume``: shares traded at or after the session's open (regular-hours open, NYSE calendar) of T's day.
* ``return_since_open``: ``last_price / open - 1``, ``open`` = the session's first trade price. When the stream
  starts after the open, the first streamed price stands in until the REST seed (see :class:`RefillWindow`)
  supplies the real open and the volume traded before the stream started.

Minute bars (dataset ``ohlcv_minute``, ``adjusted=False`` since the feed is as traded) close when the stream's
watermark (the largest SIP time seen on any symbol) passes the minute's end plus ``lateness_ms``. A trade for a
minute already closed is counted as late and left out of the bar. Minutes that a gap made incomplete are held back
(their bar is never written from the stream) and refilled from REST instead.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import CREATED_TS, EVENT_TS, OHLCV_MINUTE, REALTIME_QUOTES
from ingestion.stream import minute_ranges

MINUTE_MS = 60_000
WINDOW_MS = 60_000
_HOUR_MS = 3_600_000

Event = dict[str, Any]


def minute_of(t_ms: int) -> int:
    """Start (epoch ms) of the minute holding ``t_ms``."""
    return t_ms - t_ms % MINUTE_MS


_session_cache: dict[int, tuple[int, int]] = {}


def session_bounds(t_ms: int) -> tuple[int, int]:
    """``(open_ms, next_open_ms)`` of the session whose day (New York) holds ``t_ms``; cached per hour.

    On a day without a session both values are the next session's open, so no trade of that day counts.
    """
    hour = t_ms // _HOUR_MS
    cached = _session_cache.get(hour)
    if cached is None:
        day = pd.Timestamp(t_ms, unit="ms", tz="UTC").tz_convert(calendar.NEW_YORK).date()
        upcoming = calendar.sessions(day + dt.timedelta(days=1), day + dt.timedelta(days=14))
        next_open = calendar.session_open(upcoming[0].date()).value // 1_000_000
        open_ms = calendar.session_open(day).value // 1_000_000 if calendar.is_session(day) else next_open
        cached = (open_ms, next_open)
        _session_cache[hour] = cached
    return cached


@dataclass
class RefillWindow:
    """Minutes ``[start_ms, end_ms]`` (minute starts, inclusive) whose streamed record is incomplete.

    ``symbols`` None means every symbol (a connection-wide gap); ``seed`` marks the start-of-stream window, from
    the session open to the first streamed minute, whose REST bars also give the session's open price.
    ``streamed_volume`` collects, per symbol, the volume of the held-back stream bars, so the REST volume can
    replace it in ``day_volume`` without counting a share twice.
    """

    id: int
    start_ms: int
    end_ms: int
    reason: str
    symbols: frozenset[str] | None = None
    seed: bool = False
    streamed_volume: dict[str, float] = field(default_factory=dict)

    def covers(self, symbol: str, minute_ms: int) -> bool:
        return self.start_ms <= minute_ms <= self.end_ms and (self.symbols is None or symbol in self.symbols)


class SymbolState:
    """Everything known about one symbol. Attributes are public for the bridge and tests; units are ms and shares."""

    __slots__ = (
        "ask",
        "bars",
        "bid",
        "day_volume",
        "dirty",
        "event_ms",
        "last_price",
        "last_trade_ms",
        "notional_1m",
        "open_price",
        "open_seeded",
        "quote_ms",
        "refilled",
        "session_next_ms",
        "session_open_ms",
        "symbol",
        "trades_1m",
        "volume_1m",
        "window",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.event_ms = 0
        self.last_trade_ms = 0
        self.last_price: float | None = None
        self.quote_ms = 0
        self.bid: float | None = None
        self.ask: float | None = None
        self.window: deque[tuple[int, float, float]] = deque()
        self.volume_1m = 0.0
        self.notional_1m = 0.0
        self.trades_1m = 0
        self.session_open_ms = 0
        self.session_next_ms = 0
        self.day_volume = 0.0
        self.open_price: float | None = None
        self.open_seeded = False
        # Minutes of this session whose REST volume is already in day_volume (ranges, see minute_ranges): a later
        # window sharing one of them must not count it again. Kept here, not in the refiller, so a buffered
        # bridge checkpoints it with the volume it explains.
        self.refilled: minute_ranges.Ranges = []
        # Open minute bars: minute start -> [open, high, low, close, volume, count, notional, first_t, last_t]
        self.bars: dict[int, list[Any]] = {}
        self.dirty = False


class Aggregator:
    """Folds validated trade and quote events into per-symbol state.

    ``lateness_ms`` is how long (in SIP time) a minute bar waits for out-of-order trades before it closes.
    """

    def __init__(self, lateness_ms: int = 2_000) -> None:
        self.lateness_ms = lateness_ms
        self.states: dict[str, SymbolState] = {}
        self.watermark_ms = 0
        self.late_trades = 0
        self.trades = 0
        self.quotes = 0
        self._windows: list[RefillWindow] = []
        self._ids = itertools.count(1)
        self._gap_before_ms: int | None = None
        self._open_bars: set[str] = set()
        self.tick_times: list[int] = []
        self._closed: list[list[Any]] = []
        self._no_bars: pd.DataFrame | None = None

    # -- ticks -------------------------------------------------------------------------------------------------

    def _state(self, symbol: str, t: int) -> SymbolState:
        st = SymbolState(symbol)
        self.states[symbol] = st
        self._roll_session(st, t)
        # The stream starts mid-session: the session's minutes up to the first streamed one come from REST.
        if t >= st.session_open_ms:
            self._add_window(st.session_open_ms, minute_of(t), "start", frozenset((symbol,)), seed=True)
        return st

    def _roll_session(self, st: SymbolState, t: int) -> None:
        st.session_open_ms, st.session_next_ms = session_bounds(t)
        st.day_volume = 0.0
        st.open_price = None
        st.open_seeded = False
        st.refilled = []

    def _gap_check(self, t: int) -> None:
        before = self._gap_before_ms
        self._gap_before_ms = None
        if before is None or before == 0:
            return
        self._add_window(minute_of(before), minute_of(max(t, before)), "gap", None, seed=False)

    def on_trades(self, events: Iterable[Event]) -> None:
        """Fold trade (``T``) events, already validated and de-duplicated."""
        states = self.states
        times = self.tick_times
        lateness = self.lateness_ms
        n = 0
        for e in events:
            sym = e["sym"]
            t = e["t"]
            p = e["p"]
            s = e["s"]
            n += 1
            if self._gap_before_ms is not None:
                self._gap_check(t)
            st = states.get(sym)
            if st is None:
                st = self._state(sym, t)
            elif not st.session_open_ms <= t < st.session_next_ms and t > st.event_ms:
                self._roll_session(st, t)
            times.append(t)
            if t >= st.last_trade_ms:
                st.last_trade_ms = t
                st.last_price = p
            if t > st.event_ms:
                st.event_ms = t
            if t > self.watermark_ms:
                self.watermark_ms = t
            if t >= st.session_open_ms:
                st.day_volume += s
                if st.open_price is None:
                    st.open_price = p
            if t > st.event_ms - WINDOW_MS:
                notional = p * s
                st.window.append((t, s, notional))
                st.volume_1m += s
                st.notional_1m += notional
                st.trades_1m += 1
            m = t - t % MINUTE_MS
            bar = st.bars.get(m)
            if bar is None:
                if m + MINUTE_MS + lateness <= self.watermark_ms:
                    self.late_trades += 1
                else:
                    st.bars[m] = [p, p, p, p, s, 1, p * s, t, t]
                    self._open_bars.add(sym)
            else:
                if p > bar[1]:
                    bar[1] = p
                if p < bar[2]:
                    bar[2] = p
                if t >= bar[8]:
                    bar[3] = p
                    bar[8] = t
                if t < bar[7]:
                    bar[0] = p
                    bar[7] = t
                bar[4] += s
                bar[5] += 1
                bar[6] += p * s
            st.dirty = True
        self.trades += n

    def on_quotes(self, events: Iterable[Event]) -> None:
        """Fold quote (``Q``) events: the latest quote by SIP time sets bid and ask."""
        states = self.states
        times = self.tick_times
        n = 0
        for e in events:
            sym = e["sym"]
            t = e["t"]
            n += 1
            if self._gap_before_ms is not None:
                self._gap_check(t)
            st = states.get(sym)
            if st is None:
                st = self._state(sym, t)
            times.append(t)
            if t >= st.quote_ms:
                st.quote_ms = t
                st.bid = e["bp"]
                st.ask = e["ap"]
            if t > st.event_ms:
                st.event_ms = t
            if t > self.watermark_ms:
                self.watermark_ms = t
            st.dirty = True
        self.quotes += n

    def on_gap(self) -> None:
        """The stream had a hole: the minutes from the watermark to the next tick are refilled for every symbol."""
        if self._gap_before_ms is None:
            self._gap_before_ms = self.watermark_ms

    def close_gap(self, until_ms: int) -> None:
        """Close a pending gap that no event followed, as if the next event came at ``until_ms`` (shutdown)."""
        if self._gap_before_ms is not None and until_ms >= self._gap_before_ms:
            self._gap_check(until_ms)

    def _add_window(self, start_ms: int, end_ms: int, reason: str, symbols: frozenset[str] | None, seed: bool) -> None:
        if end_ms < start_ms:
            return
        self._windows.append(RefillWindow(next(self._ids), start_ms, end_ms, reason, symbols, seed))

    # -- output ------------------------------------------------------------------------------------------------

    def take_rows(self, created: pd.Timestamp) -> pd.DataFrame:
        """``realtime_quotes`` rows (dataset columns, in order) for every symbol changed since the last call."""
        cols: dict[str, list[Any]] = {c: [] for c in REALTIME_QUOTES.column_names if c != CREATED_TS}
        for st in self.states.values():
            if not st.dirty:
                continue
            st.dirty = False
            horizon = st.event_ms - WINDOW_MS
            window = st.window
            while window and window[0][0] <= horizon:
                _, s, notional = window.popleft()
                st.volume_1m -= s
                st.notional_1m -= notional
                st.trades_1m -= 1
            if not window:
                # Re-zero so rounding from many add/subtract pairs cannot leave a residue.
                st.volume_1m = st.notional_1m = 0.0
            bid, ask, last = st.bid, st.ask, st.last_price
            both = bid is not None and ask is not None
            cols["symbol"].append(st.symbol)
            cols[EVENT_TS].append(st.event_ms)
            cols["last_price"].append(last)
            cols["bid"].append(bid)
            cols["ask"].append(ask)
            cols["mid"].append((bid + ask) / 2 if both else None)  # type: ignore[operator]
            cols["spread"].append(ask - bid if both else None)  # type: ignore[operator]
            cols["volume_1m"].append(st.volume_1m)
            cols["vwap_1m"].append(st.notional_1m / st.volume_1m if st.volume_1m > 0 else None)
            cols["trade_count_1m"].append(st.trades_1m)
            cols["day_volume"].append(st.day_volume)
            opened = st.open_price
            cols["return_since_open"].append(last / opened - 1 if last is not None and opened else None)
        # Typed arrays first, one DataFrame after: this runs every flush (10 times a second), where pandas' per-column
        # setitem and astype passes cost more than the rows (None becomes NaN in a float64 array).
        n = len(cols["symbol"])
        stamp = created.tz_convert("UTC").tz_localize(None).asm8  # its own unit kept, as a column insert keeps it
        typed: dict[str, Any] = {
            "symbol": np.array(cols["symbol"], dtype=object),
            EVENT_TS: _utc_ns(np.array(cols[EVENT_TS], dtype=np.int64) * 1_000_000),
            CREATED_TS: pd.DatetimeIndex(np.full(n, stamp)).tz_localize("UTC"),
        }
        for c in cols:
            if c not in typed:
                typed[c] = np.array(cols[c], dtype=np.int64 if c == "trade_count_1m" else np.float64)
        return pd.DataFrame({c: typed[c] for c in REALTIME_QUOTES.column_names})

    def close_bars(self, final: bool = False) -> None:
        """Close the minute bars the watermark has passed (all of them when ``final``... except incomplete ones).

        On the final call (shutdown), bars still open are incomplete minutes and are dropped, not written.
        """
        limit = self._closed_limit_ms()
        done: list[str] = []
        for sym in self._open_bars:
            st = self.states[sym]
            for m in [m for m in st.bars if m <= limit]:
                bar = st.bars.pop(m)
                held = next((w for w in self._windows if w.covers(sym, m)), None)
                if held is not None:
                    if m >= st.session_open_ms:
                        held.streamed_volume[sym] = held.streamed_volume.get(sym, 0.0) + bar[4]
                    continue
                self._closed.append([sym, m, *bar[:7]])
            if final:
                st.bars.clear()
            if not st.bars:
                done.append(sym)
        self._open_bars.difference_update(done)

    def take_bars(self, created: pd.Timestamp) -> pd.DataFrame:
        """Closed minute bars since the last call, as ``ohlcv_minute`` rows (raw prices, ``adjusted=False``)."""
        closed, self._closed = self._closed, []
        if not closed and self._no_bars is not None:
            # Most flushes close no bar: an empty frame of the same columns, without pandas' conversions.
            return self._no_bars.iloc[0:0]
        names = ["symbol", "window_start", "open", "high", "low", "close", "volume", "transactions", "_notional"]
        frame = pd.DataFrame(closed, columns=names)
        start_ms = np.asarray(frame["window_start"], dtype=np.int64)
        frame["window_start"] = pd.to_datetime(start_ms, unit="ms", utc=True)
        # Knowledge time as for a REST minute bar (the dataset's publication rule), so both sources agree.
        ends_us = (start_ms + MINUTE_MS) * 1000
        frame[EVENT_TS] = pd.to_datetime(publication.published_at(OHLCV_MINUTE, ends_us), unit="us", utc=True)
        frame[CREATED_TS] = created
        volume = frame["volume"].astype("float64")
        frame["volume"] = volume
        frame["vwap"] = (frame["_notional"].astype("float64") / volume.where(volume > 0)).round(4)
        frame["transactions"] = frame["transactions"].astype("int64")
        frame["otc"] = False
        frame["adjusted"] = False
        frame["source"] = "polygon_ws"
        for c in ("open", "high", "low", "close"):
            frame[c] = frame[c].astype("float64")
        frame = frame.loc[:, OHLCV_MINUTE.column_names]
        if not closed:
            self._no_bars = frame  # kept, and only slices of it handed out: a caller's change cannot reach it
            return frame.iloc[0:0]
        return frame

    def _closed_limit_ms(self) -> int:
        """Minutes starting at or before this (epoch ms) are closed: the watermark has passed them by the lateness."""
        return self.watermark_ms - MINUTE_MS - self.lateness_ms

    def symbols(self) -> list[str]:
        """Every symbol seen so far, in first-seen order."""
        return list(self.states)

    def pending_windows(self) -> list[RefillWindow]:
        """Windows not yet handed out for refill (by :meth:`ready_windows` or :meth:`close_windows`), oldest first."""
        return list(self._windows)

    def ready_windows(self) -> list[RefillWindow]:
        """Windows whose minutes have all closed: they can be refilled now. They leave the pending list."""
        limit = self._closed_limit_ms()
        ready = [w for w in self._windows if w.end_ms <= limit]
        if ready:
            self._windows = [w for w in self._windows if w.end_ms > limit]
        return ready

    def requeue_windows(self, windows: list[RefillWindow]) -> None:
        """Put windows handed out but not refilled back in front of the pending list (a buffered bridge's
        checkpoint keeps them there, so the partition's next owner refills them)."""
        self._windows[:0] = windows

    def close_windows(self) -> list[RefillWindow]:
        """At shutdown: every pending window cut to the last closed minute (the open minute is incomplete), a hole
        still open (no event came after it) included. Windows with no closed minute are dropped; all leave the
        pending list."""
        limit = self._closed_limit_ms()
        self.close_gap(limit)
        last_closed = minute_of(limit)
        out = [replace(w, end_ms=min(w.end_ms, last_closed)) for w in self._windows]
        self._windows = []
        return [w for w in out if w.end_ms >= w.start_ms]

    def apply_refill(
        self,
        window: RefillWindow,
        symbol: str,
        rest_volume: float,
        rest_open: float | None,
        minutes: Iterable[int] = (),
    ) -> None:
        """Replace the streamed volume of a refilled window by the REST volume; a seed also sets the open price.
        ``minutes`` are the minute starts whose volume ``rest_volume`` counts (see :meth:`refilled_minutes`)."""
        st = self.states.get(symbol)
        if st is None or window.end_ms < st.session_open_ms:
            return
        before = (st.day_volume, st.open_price)
        st.day_volume += rest_volume - window.streamed_volume.get(symbol, 0.0)
        st.refilled = minute_ranges.add(st.refilled, (m for m in minutes if m >= st.session_open_ms))
        if window.seed and rest_open is not None and window.start_ms <= st.session_open_ms:
            st.open_price = rest_open
            st.open_seeded = True
        if (st.day_volume, st.open_price) != before:
            # The correction was learned from REST once the stream had passed its watermark, so the row carrying it
            # is published after that, strictly after every row already written for the symbol. At the last tick's
            # time it would rewrite the value of an instant already published (lookahead offline) and be refused
            # online as not newer (online and offline then disagreed until the symbol's next tick).
            st.event_ms = max(st.event_ms, self.watermark_ms) + 1
        st.dirty = True

    def refilled_minutes(self, symbol: str) -> minute_ranges.Ranges:
        """Minutes of ``symbol``'s session already counted from REST by :meth:`apply_refill` (what a refiller skips)."""
        st = self.states.get(symbol)
        return [] if st is None else st.refilled

    def take_tick_times(self) -> list[int]:
        times, self.tick_times = self.tick_times, []
        return times


def _utc_ns(epoch_ns: np.ndarray) -> pd.DatetimeIndex:
    """Epoch nanoseconds as ``datetime64[ns, UTC]`` without pandas' parsing path."""
    return pd.DatetimeIndex(epoch_ns.view("datetime64[ns]")).tz_localize("UTC")


__all__ = ["MINUTE_MS", "WINDOW_MS", "Aggregator", "RefillWindow", "SymbolState", "minute_of", "session_bounds"]
