"""Helpers of the tick-buffer tests: condition waits, and the checks of online values and offline rows against the
simulator's ground truth (what every buffered run must end with)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from ingestion import calendar
from ingestion.datasets import REALTIME_QUOTES
from ingestion.simulators.market import Market
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.stream.aggregator import MINUTE_MS, session_bounds
from ingestion.stream.buffer import TickBuffer

FEATURES = [f"realtime_quotes:{c.name}" for c in REALTIME_QUOTES.features]
BAR_COLUMNS = ["open", "high", "low", "close", "volume", "transactions"]


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str] | str) -> None:
    """Poll ``condition`` every 50 ms until true; fail with ``what`` (a message, or a function giving the state)
    after ``timeout`` seconds. Nothing is timed: the timeout only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"not reached in {timeout:.0f} s: {what() if callable(what) else what}")
        time.sleep(0.05)


def online_frame(store: Any, symbols: Iterable[str], day: str) -> pd.DataFrame:
    rows = [{"symbol": s} for s in symbols]
    # The replayed session is in the past: read at its close, so the view's ttl judges the ticks as of that day.
    store.config.online_store.read_at = calendar.session_close(pd.Timestamp(day).date()).to_pydatetime()
    return store.get_online_features(features=FEATURES, entity_rows=rows).to_df().set_index("symbol")


def expected_values(
    market: Market, sent: Callable[..., list[dict[str, Any]]], symbol: str, day: str
) -> tuple[float, tuple[float, float], float]:
    """What the ticks sent say ``symbol`` ends with: last trade price, last (bid, ask), and the day's volume (REST
    seed for the minutes before the stream plus every streamed trade after them, each counted once)."""
    trades, quotes = sent(ev="T", symbol=symbol), sent(ev="Q", symbol=symbol)
    last = max(trades, key=lambda e: e["t"])
    open_ms = session_bounds(last["t"])[0]
    first_minute = min(e["t"] for e in trades) // MINUTE_MS * MINUTE_MS
    truth = market.minute_bars(symbol, day, adjusted=False)
    seed = truth[(truth["window_start_ms"] >= open_ms) & (truth["window_start_ms"] <= first_minute)]
    streamed_after = [e["s"] for e in trades if e["t"] >= first_minute + MINUTE_MS]
    return last["p"], (quotes[-1]["bp"], quotes[-1]["ap"]), float(seed["volume"].sum()) + float(sum(streamed_after))


def assert_online_is_the_truth(
    store: Any, market: Market, sent: Callable[..., list[dict[str, Any]]], symbols: Iterable[str], day: str
) -> None:
    """Online values equal what the ticks sent say (:func:`expected_values`)."""
    symbols = list(symbols)
    online = online_frame(store, symbols, day)
    for sym in symbols:
        price, quote, volume = expected_values(market, sent, sym, day)
        assert online.loc[sym, "last_price"] == price, sym
        assert (online.loc[sym, "bid"], online.loc[sym, "ask"]) == quote, sym
        assert online.loc[sym, "day_volume"] == pytest.approx(volume), sym


def assert_bars_are_the_truth(data_dir: Path, market: Market, symbols: Iterable[str], day: str, through_ms: int) -> int:
    """Offline minute bars (streamed and refilled) are exactly the truth's from the session open through
    ``through_ms``: none missing, none extra, none twice, same values. Returns the number of bars checked."""
    bars = read_dataset(data_dir, "ohlcv_minute")
    assert count_duplicates(bars, "ohlcv_minute") == 0, "a minute bar was written twice"
    checked = 0
    for sym in symbols:
        truth = market.minute_bars(sym, day, adjusted=False)
        truth = truth[truth["window_start_ms"] <= through_ms].set_index("window_start_ms")
        got = bars[bars["symbol"] == sym].copy()
        got.index = got["window_start"].astype("int64") // 1_000
        got = got[got.index <= through_ms]
        missing = sorted(set(truth.index) - set(got.index))
        extra = sorted(set(got.index) - set(truth.index))
        assert missing == [] and extra == [], (sym, missing, extra)
        pd.testing.assert_frame_equal(
            got.loc[truth.index, BAR_COLUMNS], truth.loc[:, BAR_COLUMNS], check_dtype=False, check_names=False
        )
        checked += len(truth)
    return checked


def assert_quotes_unique(data_dir: Path) -> pd.DataFrame:
    """Offline ``realtime_quotes`` rows: no (symbol, event_timestamp) stored twice."""
    quotes = read_dataset(data_dir, "realtime_quotes")
    assert len(quotes) > 0, "no realtime_quotes row landed"
    assert count_duplicates(quotes, "realtime_quotes") == 0, "a realtime_quotes row was written twice"
    return quotes


def committed_ticks(buffer: TickBuffer) -> int:
    """Ticks folded into the checkpointed state of every partition (the snapshot counts trades and quotes)."""
    total = 0
    for p in range(buffer.partitions):
        state = buffer.checkpoint(p).state
        if state:
            d = orjson.loads(state)
            total += d["trades"] + d["quotes"]
    return total
