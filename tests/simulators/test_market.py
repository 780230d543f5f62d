"""Ground truth: deterministic, consistent across granularities, splits and trades."""

import numpy as np

from ingestion.simulators.market import Market, minute_trades


def test_same_seed_same_market_whatever_is_asked_first() -> None:
    a = Market(seed=3).daily_bars("MSFT", "2023-03-01", "2023-03-10")
    b_market = Market(seed=3)
    b_market.minute_bars("MSFT", "2024-05-01")
    b = b_market.daily_bars("MSFT", "2023-03-01", "2023-03-10")
    assert a.equals(b)
    assert not a.equals(Market(seed=4).daily_bars("MSFT", "2023-03-01", "2023-03-10"))


def test_daily_bars_aggregate_minute_bars() -> None:
    m = Market()
    for day in ("2024-11-29", "2023-06-15"):
        minutes = m.minute_bars("AAPL", day)
        daily = m.daily_bars("AAPL", day, day).iloc[0]
        assert daily["open"] == minutes["open"].iloc[0]
        assert daily["close"] == minutes["close"].iloc[-1]
        assert daily["high"] == minutes["high"].max()
        assert daily["low"] == minutes["low"].min()
        assert daily["volume"] == minutes["volume"].sum()
        assert daily["transactions"] == minutes["transactions"].sum()
    assert len(m.minute_bars("AAPL", "2024-11-29")) <= 210  # half day
    assert m.minute_bars("AAPL", "2024-11-28").empty  # Thanksgiving


def test_ohlc_invariants_hold_everywhere() -> None:
    bars = Market().daily_bars("NFLX", "2020-01-01", "2021-12-31")
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["volume"] > 0).all()
    assert bars["window_start_ms"].is_monotonic_increasing


def test_split_adjustment() -> None:
    m = Market()
    raw = m.daily_bars("AAPL", "2020-08-28", "2020-08-31", adjusted=False)
    adj = m.daily_bars("AAPL", "2020-08-28", "2020-08-31", adjusted=True)
    assert raw["close"].iloc[0] / raw["close"].iloc[1] > 3  # the 4:1 split shows in raw prices
    assert np.isclose(adj["close"].iloc[0], raw["close"].iloc[0] / 4, atol=1e-4)
    assert adj["volume"].iloc[0] == raw["volume"].iloc[0] * 4
    assert adj["close"].iloc[1] == raw["close"].iloc[1]


def test_trades_reproduce_their_minute_bar() -> None:
    m = Market()
    raw = m.minute_bars("TSLA", "2024-03-05", adjusted=False)
    for _, bar in raw.head(60).iterrows():
        trades = minute_trades(m, "TSLA", bar)
        assert len(trades) == bar["transactions"]
        assert trades.price[0] == bar["open"] and trades.price[-1] == bar["close"]
        assert trades.price.max() == bar["high"] and trades.price.min() == bar["low"]
        assert trades.size.sum() == bar["volume"] and (trades.size > 0).all()
        assert (np.diff(trades.sip_ns) > 0).all()
        assert trades.sip_ns[0] // 1_000_000 >= bar["window_start_ms"]
        assert trades.sip_ns[-1] // 1_000_000 < bar["window_start_ms"] + 60_000
