"""The per-symbol aggregator against brute-force values computed from the simulator's replay (pure, no network)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from fixtures.stream import STREAM_DAY

from ingestion.datasets import OHLCV_MINUTE
from ingestion.publication import delay
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_ws import Replay, replay_events
from ingestion.stream.aggregator import MINUTE_MS, Aggregator, minute_of, session_bounds

SYMBOLS = ("AAPL", "MSFT")
START_MINUTE, MINUTES = 5, 3
NOW = pd.Timestamp("2024-03-05", tz="UTC")


@pytest.fixture(scope="module")
def events(market: Market) -> list[dict[str, Any]]:
    replay = Replay(day=STREAM_DAY, symbols=SYMBOLS, start_minute=START_MINUTE, minutes=MINUTES)
    return [e for e in replay_events(market, replay) if e["ev"] in ("T", "Q")]


def feed(agg: Aggregator, events: list[dict[str, Any]], frame: int = 100) -> None:
    """As the client delivers them: per frame, trades then quotes of that frame."""
    for i in range(0, len(events), frame):
        chunk = events[i : i + frame]
        agg.on_trades([e for e in chunk if e["ev"] == "T"])
        agg.on_quotes([e for e in chunk if e["ev"] == "Q"])


def test_rows_match_brute_force(events: list[dict[str, Any]], market: Market) -> None:
    agg = Aggregator()
    feed(agg, events)
    rows = agg.take_rows(NOW).set_index("symbol")
    assert sorted(rows.index) == list(SYMBOLS)
    for sym in SYMBOLS:
        trades = [e for e in events if e["ev"] == "T" and e["sym"] == sym]
        quotes = [e for e in events if e["ev"] == "Q" and e["sym"] == sym]
        latest = max(e["t"] for e in trades + quotes)
        window = [e for e in trades if latest - 60_000 < e["t"] <= latest]
        row = rows.loc[sym]
        assert row["event_timestamp"] == pd.Timestamp(latest, unit="ms", tz="UTC")
        assert row["last_price"] == trades[-1]["p"]
        assert (row["bid"], row["ask"]) == (quotes[-1]["bp"], quotes[-1]["ap"])
        assert row["mid"] == pytest.approx((quotes[-1]["bp"] + quotes[-1]["ap"]) / 2)
        assert row["spread"] == pytest.approx(quotes[-1]["ap"] - quotes[-1]["bp"])
        assert row["trade_count_1m"] == len(window)
        assert row["volume_1m"] == pytest.approx(sum(e["s"] for e in window))
        vwap = sum(e["p"] * e["s"] for e in window) / sum(e["s"] for e in window)
        assert row["vwap_1m"] == pytest.approx(vwap)
        # Before the REST seed, the day counts only what was streamed, from the first streamed price.
        assert row["day_volume"] == pytest.approx(sum(e["s"] for e in trades))
        assert row["return_since_open"] == pytest.approx(trades[-1]["p"] / trades[0]["p"] - 1)
    assert agg.take_rows(NOW).empty, "rows are only emitted for symbols that changed"


def test_seed_window_gives_the_true_day_volume_and_open(events: list[dict[str, Any]], market: Market) -> None:
    agg = Aggregator()
    feed(agg, events)
    agg.close_bars()
    ready = agg.ready_windows()
    truth = {s: market.minute_bars(s, STREAM_DAY, adjusted=False) for s in SYMBOLS}
    open_ms = session_bounds(events[0]["t"])[0]
    first_streamed = open_ms + START_MINUTE * MINUTE_MS
    assert sorted((w.reason, w.start_ms, w.end_ms, sorted(w.symbols or ())) for w in ready) == sorted(
        ("start", open_ms, first_streamed, [s]) for s in SYMBOLS
    )
    for window in ready:
        (sym,) = tuple(window.symbols or ())
        bars = truth[sym][truth[sym]["window_start_ms"] <= window.end_ms]
        agg.apply_refill(window, sym, float(bars["volume"].sum()), float(bars["open"].iloc[0]))
    rows = agg.take_rows(NOW).set_index("symbol")
    for sym in SYMBOLS:
        through = truth[sym][truth[sym]["window_start_ms"] < open_ms + (START_MINUTE + MINUTES) * MINUTE_MS]
        assert rows.loc[sym, "day_volume"] == pytest.approx(float(through["volume"].sum()))
        expected = through["close"].iloc[-1] / through["open"].iloc[0] - 1
        assert rows.loc[sym, "return_since_open"] == pytest.approx(expected)


def test_closed_minute_bars_equal_the_truth_and_gap_minutes_are_held_back(
    events: list[dict[str, Any]], market: Market
) -> None:
    agg = Aggregator()
    feed(agg, events)
    agg.close_bars()
    bars = agg.take_bars(NOW)
    open_ms = session_bounds(events[0]["t"])[0]
    # Minute 5 (where the stream joined) is held for the REST seed; minute 7 is still open (no later tick yet).
    expected_minute = open_ms + (START_MINUTE + 1) * MINUTE_MS
    assert sorted(bars["symbol"]) == list(SYMBOLS)
    for sym in SYMBOLS:
        got = bars[bars["symbol"] == sym].iloc[0]
        truth = market.minute_bars(sym, STREAM_DAY, adjusted=False)
        true = truth[truth["window_start_ms"] == expected_minute].iloc[0]
        assert got["window_start"] == pd.Timestamp(expected_minute, unit="ms", tz="UTC")
        # Published like a REST minute bar: the minute's end plus the dataset's publication delay.
        assert got["event_timestamp"] == got["window_start"] + pd.Timedelta(minutes=1) + delay(OHLCV_MINUTE)
        for col in ("open", "high", "low", "close", "volume", "transactions"):
            assert got[col] == true[col], col
        assert not got["adjusted"] and got["source"] == "polygon_ws"
    assert list(bars.columns) == [
        "symbol", "event_timestamp", "created_timestamp", "window_start", "open", "high", "low", "close",
        "volume", "vwap", "transactions", "otc", "adjusted", "source",
    ]  # fmt: skip


def test_late_trades_are_counted_not_folded_into_closed_bars(events: list[dict[str, Any]]) -> None:
    agg = Aggregator()
    feed(agg, events)
    agg.close_bars()
    agg.take_bars(NOW)
    old = dict(next(e for e in events if e["ev"] == "T"), i="late-1", s=1_000_000)
    agg.on_trades([old])
    agg.close_bars()
    assert agg.late_trades == 1
    assert agg.take_bars(NOW).empty


def test_a_gap_opens_a_window_for_every_symbol(events: list[dict[str, Any]]) -> None:
    agg = Aggregator()
    half = len(events) // 2
    feed(agg, events[:half])
    before = agg.watermark_ms
    agg.on_gap()
    later = dict(events[-1], t=events[-1]["t"] + 3 * MINUTE_MS)
    (agg.on_trades if later["ev"] == "T" else agg.on_quotes)([later])
    gap = [w for w in agg.pending_windows() if w.reason == "gap"]
    assert len(gap) == 1
    assert (gap[0].start_ms, gap[0].end_ms, gap[0].symbols) == (minute_of(before), minute_of(later["t"]), None)


def test_close_windows_cuts_pending_windows_to_the_last_closed_minute(events: list[dict[str, Any]]) -> None:
    agg = Aggregator()
    feed(agg, events[: len(events) // 2])
    before = agg.watermark_ms
    agg.on_gap()
    later = dict(events[-1], t=events[-1]["t"] + 3 * MINUTE_MS)
    (agg.on_trades if later["ev"] == "T" else agg.on_quotes)([later])
    pending = agg.pending_windows()
    assert {w.reason for w in pending} == {"start", "gap"}
    assert sorted(agg.symbols()) == sorted(SYMBOLS)

    closed = agg.close_windows()
    last_closed = minute_of(agg.watermark_ms - MINUTE_MS - agg.lateness_ms)
    assert agg.pending_windows() == [] and agg.close_windows() == [], "handed-out windows leave the pending list"
    assert [w.id for w in closed] == [w.id for w in pending]
    assert all(w.start_ms <= w.end_ms <= last_closed for w in closed)
    (gap,) = [w for w in closed if w.reason == "gap"]
    # The open minute (and the lateness before it) is not refilled at shutdown: the hole is cut before it.
    assert (gap.start_ms, gap.end_ms) == (minute_of(before), last_closed) and last_closed < minute_of(later["t"])
    assert next(w for w in pending if w.reason == "gap").end_ms == minute_of(later["t"]), "pending copies untouched"


def test_output_frames_are_typed_as_the_datasets(events: list[dict[str, Any]]) -> None:
    """The flush frames are built from typed arrays (not pandas conversions): the written columns keep the dtypes the
    writers and the Parquet schema expect, a quote-only symbol's missing trade fields are NaN, and a flush that
    closes no bar returns an empty frame of the minute dataset's columns."""
    from ingestion.datasets import REALTIME_QUOTES

    agg = Aggregator()
    agg.on_quotes([{**e, "sym": "ZZZZ"} for e in events if e["ev"] == "Q"][:3])  # quotes, never a trade
    feed(agg, events)
    created = pd.Timestamp(1_709_650_000_123_456_789, unit="ns", tz="UTC")
    rows = agg.take_rows(created)
    assert list(rows.columns) == REALTIME_QUOTES.column_names
    assert str(rows["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert (rows["created_timestamp"] == created).all()
    assert rows["trade_count_1m"].dtype == "int64"
    for column in ("last_price", "bid", "ask", "mid", "spread", "volume_1m", "vwap_1m", "return_since_open"):
        assert rows[column].dtype == "float64", column
    quote_only = rows.set_index("symbol").loc["ZZZZ"]
    assert pd.isna(quote_only["last_price"]) and pd.isna(quote_only["vwap_1m"]) and quote_only["bid"] > 0
    agg.close_bars()
    agg.take_bars(NOW)
    for _ in range(3):  # later empty flushes answer from the cached empty frame, which a caller cannot change
        empty = agg.take_bars(NOW)
        assert empty.empty and list(empty.columns) == OHLCV_MINUTE.column_names
        empty["changed_by_a_caller"] = 1


def test_a_refill_correction_is_published_after_the_watermark(events: list[dict[str, Any]], market: Market) -> None:
    """A refill that changes a symbol's day volume or open is stamped 1 ms after the stream's watermark when it was
    applied, strictly after every row already written: never at an instant already published (where the online
    compare-and-set would refuse it and offline it would rewrite the past). A refill that changes nothing moves no
    time."""
    agg = Aggregator()
    feed(agg, events)
    agg.close_bars()
    rows_before = agg.take_rows(NOW).set_index("symbol")
    watermark = agg.watermark_ms
    truth = {s: market.minute_bars(s, STREAM_DAY, adjusted=False) for s in SYMBOLS}
    windows = {next(iter(w.symbols or ())): w for w in agg.ready_windows()}
    changed, unchanged = SYMBOLS
    bars = truth[changed][truth[changed]["window_start_ms"] <= windows[changed].end_ms]
    agg.apply_refill(windows[changed], changed, float(bars["volume"].sum()), float(bars["open"].iloc[0]))
    same = agg.states[unchanged]
    agg.apply_refill(windows[unchanged], unchanged, windows[unchanged].streamed_volume.get(unchanged, 0.0), None)
    rows = agg.take_rows(NOW).set_index("symbol")
    assert rows.loc[changed, "event_timestamp"] == pd.Timestamp(watermark + 1, unit="ms", tz="UTC")
    assert rows.loc[changed, "event_timestamp"] > rows_before.loc[changed, "event_timestamp"]
    assert rows.loc[changed, "day_volume"] != rows_before.loc[changed, "day_volume"]
    assert rows.loc[unchanged, "event_timestamp"] == rows_before.loc[unchanged, "event_timestamp"]
    assert same.day_volume == rows_before.loc[unchanged, "day_volume"]
