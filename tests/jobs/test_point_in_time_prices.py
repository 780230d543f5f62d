"""Point-in-time prices across a split, end to end: simulators with a clock on loopback, real Redis, real Feast.

NVDA splits 10:1 with ex-date 2024-06-10. A daily backfill runs with the market's clock on 2024-06-07, the clock moves
to 2024-06-28 and the backfill runs again. The stored closes are as traded, the return at the split is the true one,
and the training frame of every row before the split is the same before and after the second run. The same holds
when the bars come from the Unusual Whales candle fallback (a Polygon key whose plan has no history). Dividends move
``total_return_1d`` only; bad vendor records of corporate actions go to quarantine with their reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.uw_simulator import MakeUW

from ingestion import calendar
from ingestion.config import Settings, settings
from ingestion.datasets import CORPORATE_ACTIONS, OHLCV_DAILY
from ingestion.jobs.backfill import Fallback, Sinks, backfill_ohlcv
from ingestion.jobs.fallback import uw_bars
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.market import Market, SplitRecord
from ingestion.simulators.polygon_rest import Plan, polygon_rest_server
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.store.quarantine import Quarantine
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

D = dt.date
BEFORE, AFTER = D(2024, 6, 7), D(2024, 6, 28)
SPLIT_DAY = D(2024, 6, 10)
START = D(2024, 4, 1)
FEATURES = [f"ohlcv_daily:{c.name}" for c in OHLCV_DAILY.features]
NO_HISTORY = Plan("no-history", history_years=0)
"""A plan that refuses every range before the market's clock: each daily unit comes from the fallback."""


def _after_close(day: dt.date) -> pd.Timestamp:
    """The next morning: the day's bar is final and published by then, whatever its publication delay."""
    return pd.Timestamp(day + dt.timedelta(days=1)).tz_localize("UTC") + pd.Timedelta(hours=12)


def _market(**kw: object) -> Market:
    # A small universe from 2024: fast to generate, and its warm-up for April is inside the market.
    return Market(symbols=("NVDA", "AAPL"), start=D(2024, 1, 2), as_of=BEFORE, **kw)  # type: ignore[arg-type]


def _training_frame(s: Settings, symbol: str, days: list[dt.date]) -> pd.DataFrame:
    """What a model sees at 10:00 New York on each day, through stock ``get_historical_features``."""
    assert s.redis_url
    store = open_store(s, s.redis_url)
    times = [pd.Timestamp(f"{d} 10:00", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days]
    entity = pd.DataFrame({"symbol": symbol, "event_timestamp": times})
    frame = store.get_historical_features(entity_df=entity, features=FEATURES).to_df()
    return frame.sort_values("event_timestamp").reset_index(drop=True)


@contextmanager
def _polygon(market: Market, key: str, plan: Plan | str) -> Iterator[PolygonRESTClient]:
    with polygon_rest_server(market, keys={key: plan}) as server:
        client = PolygonRESTClient(key, server.url, use_cache=False)
        try:
            yield client
        finally:
            client.close()


def _plain_settings(data_dir: Path) -> Settings:
    """A data dir without a Feast repo, for tests that read the stored rows only (no ``feast apply`` to wait for)."""
    return replace(settings({}), data_dir=data_dir)


def _sessions(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return [d.date() for d in calendar.sessions(lo, hi)]


def _run_across_the_split(
    s: Settings, market: Market, client: PolygonRESTClient, fallback: Fallback | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backfill before the split, move the clock past it, backfill again: the training frames of the days up to the
    split, as built after each run."""
    sinks = Sinks.for_settings(s)
    first = backfill_ohlcv(client, sinks, ["NVDA"], START, BEFORE, "day", now=_after_close(BEFORE), fallback=fallback)
    assert first.ok, first.errors
    days = _sessions(START + dt.timedelta(days=1), SPLIT_DAY)  # 10:00 on the split day still sees June 7's close
    before = _training_frame(s, "NVDA", days)
    market.set_as_of(AFTER)
    second = backfill_ohlcv(client, sinks, ["NVDA"], START, AFTER, "day", now=_after_close(AFTER), fallback=fallback)
    assert second.ok, second.errors
    assert second.rows_written["ohlcv_daily"] == len(_sessions(D(2024, 6, 8), AFTER))
    return before, _training_frame(s, "NVDA", days)


def _check_as_traded_and_continuous(s: Settings, market: Market, source: str) -> pd.DataFrame:
    stored = read_dataset(s.data_dir, OHLCV_DAILY).sort_values("window_start").reset_index(drop=True)
    assert count_duplicates(stored, "ohlcv_daily") == 0
    assert not stored["adjusted"].any() and (stored["source"] == source).all()
    raw = market.daily_bars("NVDA", START, AFTER, adjusted=False).reset_index(drop=True)
    # As traded: 10x apart across the split, each as the tape printed it.
    np.testing.assert_array_equal(stored["close"].to_numpy(), raw["close"].to_numpy())
    day = stored["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date
    at = int(np.flatnonzero(day == SPLIT_DAY)[0])
    prev_close, close = raw["close"].iloc[at - 1], raw["close"].iloc[at]
    assert close < prev_close / 5  # the raw series really does drop by the ratio
    # The true return: the holder of one share now holds ten.
    assert stored["return_1d"].iloc[at] == pytest.approx(close * 10 / prev_close - 1)
    assert abs(stored["return_1d"].iloc[at]) < 0.2
    assert abs(stored["gap_pct"].iloc[at]) < 0.2
    assert abs(stored["volume_zscore_20d"].iloc[at]) < 5  # raw volume jumps 10x; split-continuous volume does not
    assert stored["realized_vol_20d"].iloc[at : at + 5].lt(2.0).all()
    factor = stored["split_factor"].to_numpy()
    assert (factor[at:] == factor[at - 1] * 10).all() and (factor[:at] == factor[0]).all()
    return stored


def test_split_between_two_runs_keeps_history_and_returns_true(
    make_applied_repo: Callable[[], Settings],
) -> None:
    market = _market()
    s = make_applied_repo()
    with _polygon(market, POLYGON_SIM_KEY, "unlimited") as client:
        before, after = _run_across_the_split(s, market, client, None)
    pd.testing.assert_frame_equal(before, after)
    assert before["close"].notna().all() and before["return_1d"].notna().all()
    stored = _check_as_traded_and_continuous(s, market, "polygon")

    # The split is stored once, known at 04:00 New York on its ex-date (Polygon gives no declaration date).
    actions = read_dataset(s.data_dir, CORPORATE_ACTIONS)
    split = actions[(actions["kind"] == "split") & (actions["ex_date"] == SPLIT_DAY)]
    assert len(split) == 1 and split["ratio"].iloc[0] == 10.0
    assert split["event_timestamp"].iloc[0] == pd.Timestamp("2024-06-10 04:00", tz=calendar.NEW_YORK)
    assert count_duplicates(actions, CORPORATE_ACTIONS.name) == 0

    # Any adjustment can be rebuilt from the served factor: as of day T, close x factor / factor(T) is what the
    # vendor's adjusted=true series said on T (here T is the last day; the vendor knew the split by then).
    adjusted = stored["close"] * stored["split_factor"] / stored["split_factor"].iloc[-1]
    vendor = market.daily_bars("NVDA", START, AFTER, adjusted=True)["close"].to_numpy()
    np.testing.assert_allclose(adjusted.to_numpy(), vendor, rtol=0, atol=0.006)


def test_split_between_two_runs_with_the_fallback_source(
    make_applied_repo: Callable[[], Settings], make_uw: MakeUW
) -> None:
    market = _market()
    uw = make_uw(market=market, now=_after_close(AFTER).value / 1e9)
    uw_client = EnhancedUnusualWhalesClient(UW_SIM_TOKEN, uw.url, use_cache=False, clock=uw.clock.now)

    def fallback(symbol: str, timespan: str, start: dt.date, end: dt.date):  # type: ignore[no-untyped-def]
        return uw_bars(uw_client, symbol, timespan, start, end)

    s = make_applied_repo()
    # The limited plan refuses the bars (the fallback serves them) but still answers the reference endpoints.
    with _polygon(market, "limited-key", NO_HISTORY) as client:
        before, after = _run_across_the_split(s, market, client, fallback)
    pd.testing.assert_frame_equal(before, after)
    _check_as_traded_and_continuous(s, market, "unusual_whales")


def test_a_dividend_moves_total_return_only(tmp_path: Path) -> None:
    market = _market()
    market.set_as_of(AFTER)
    dividend = next(r for r in market.dividend_records("AAPL") if START < r.ex_dividend_date <= AFTER)
    s = _plain_settings(tmp_path)
    with _polygon(market, POLYGON_SIM_KEY, "unlimited") as client:
        summary = backfill_ohlcv(client, Sinks.for_settings(s), ["AAPL"], START, AFTER, "day", now=_after_close(AFTER))
    assert summary.ok
    stored = read_dataset(s.data_dir, OHLCV_DAILY).sort_values("window_start").reset_index(drop=True)
    day = stored["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date
    ex = day == dividend.ex_dividend_date
    prev = stored["close"].shift(1)
    expected = (stored["close"] + dividend.cash_amount) / prev - 1
    assert stored.loc[ex, "total_return_1d"].iloc[0] == pytest.approx(expected[ex].iloc[0])
    assert stored.loc[ex, "total_return_1d"].iloc[0] > stored.loc[ex, "return_1d"].iloc[0]
    # On every other day, and for every other feature, the dividend changes nothing.
    rest = ~ex & stored["return_1d"].notna()
    np.testing.assert_array_equal(stored.loc[rest, "total_return_1d"], stored.loc[rest, "return_1d"])
    assert (stored["split_factor"] == stored["split_factor"].iloc[0]).all()
    np.testing.assert_allclose(stored.loc[ex, "return_1d"], stored["close"][ex] / prev[ex] - 1)


def test_bad_corporate_action_records_are_quarantined_with_a_reason(tmp_path: Path) -> None:
    bad = [
        # The vendor's duplicate: the same 10:1 split again under another id, a few days off.
        SplitRecord("dup-nvda", "NVDA", D(2024, 6, 12), 1.0, 10.0, D(2024, 5, 22)),
        SplitRecord("zero-ratio", "NVDA", D(2024, 5, 1), 0.0, 2.0, D(2024, 4, 10)),
        SplitRecord("weekend", "NVDA", D(2024, 5, 4), 1.0, 3.0, D(2024, 4, 10)),  # a Saturday
    ]
    market = _market(extra_split_records=bad)
    market.set_as_of(AFTER)
    s = _plain_settings(tmp_path)
    with _polygon(market, POLYGON_SIM_KEY, "unlimited") as client:
        summary = backfill_ohlcv(client, Sinks.for_settings(s), ["NVDA"], START, AFTER, "day", now=_after_close(AFTER))
        again = backfill_ohlcv(client, Sinks.for_settings(s), ["NVDA"], START, AFTER, "day", now=_after_close(AFTER))
    assert summary.ok and summary.quarantined[CORPORATE_ACTIONS.name] == 3
    assert again.api_calls == 0  # covered: nothing fetched again, nothing quarantined twice
    reasons = Quarantine(s.data_dir).rows(dataset=CORPORATE_ACTIONS.name)["reason"].tolist()
    assert len(reasons) == 3
    assert any(r.startswith("duplicate split: same ratio 10:1") for r in reasons)
    assert any("must be finite and above zero" in r for r in reasons)
    assert any("2024-05-04 is a Saturday, not an NYSE session" in r for r in reasons)
    actions = read_dataset(s.data_dir, CORPORATE_ACTIONS)
    assert set(actions["ex_date"]) == {r.execution_date for r in market.split_records("NVDA")}
    stored = read_dataset(s.data_dir, OHLCV_DAILY).sort_values("window_start").reset_index(drop=True)
    assert stored["return_1d"].abs().max() < 0.2  # no bad record moved a feature
