"""When Polygon is unavailable, OHLCV bars come from Unusual Whales candles, marked with their source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.uw_simulator import MakeUW

from ingestion import publication
from ingestion.config import Settings, settings
from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE
from ingestion.errors import NotEntitled
from ingestion.http import CircuitBreaker, RetryPolicy
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.fallback import uw_bars
from ingestion.jobs.runs import uw_fallback
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.runtime import Runtime
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.store.offline import read_dataset
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.vendor_http import HTTPOptions

D = dt.date


def _uw_client(make_uw: MakeUW, market: Market | None = None) -> tuple[EnhancedUnusualWhalesClient, Market]:
    sim = make_uw(market=market)
    client = EnhancedUnusualWhalesClient(UW_SIM_TOKEN, sim.url, use_cache=False, clock=sim.clock.now)
    return client, sim.truth.market


def test_daily_and_minute_candles_become_standard_bars(make_uw: MakeUW) -> None:
    client, market = _uw_client(make_uw)
    daily = uw_bars(client, "MSFT", "day", D(2024, 2, 1), D(2024, 2, 29)).frame
    truth = market.daily_bars("MSFT", "2024-02-01", "2024-02-29", adjusted=False)
    assert len(daily) == len(truth)
    np.testing.assert_array_equal(daily["close"].to_numpy(), truth["close"].to_numpy())
    # Published when Polygon's daily bar would be: the dataset's rule, not the session close.
    assert list(daily["event_timestamp"]) == list(publication.published_days(OHLCV_DAILY, truth["day"]))
    assert (daily["source"] == "unusual_whales").all() and not daily["adjusted"].any()
    assert daily["vwap"].isna().all() and daily["transactions"].isna().all()
    minute = uw_bars(client, "MSFT", "minute", D(2024, 2, 6), D(2024, 2, 6)).frame
    bars = market.minute_bars("MSFT", "2024-02-06", adjusted=False)
    assert len(minute) == len(bars)
    np.testing.assert_array_equal(minute["open"].to_numpy(), bars["open"].to_numpy())
    published = pd.Timedelta(minutes=1) + publication.delay(OHLCV_MINUTE)
    assert (minute["event_timestamp"] - minute["window_start"] == published).all()


def test_backfill_falls_back_when_polygon_is_down_or_not_entitled(
    make_polygon_rest: Callable[..., object], make_uw: MakeUW, make_applied_repo: Callable[[], Settings]
) -> None:
    # A market from 2020, so that the not-entitled history below exists at the fallback vendor.
    uw, market = _uw_client(make_uw, Market(end=dt.date(2024, 3, 28)))
    polygon = make_polygon_rest()
    polygon.faults.add(Fault.status(503, routes="aggs"))  # type: ignore[attr-defined]
    options = HTTPOptions(
        use_cache=False,
        retry=RetryPolicy(max_attempts=2, sleep=lambda s: None),
        breaker=CircuitBreaker(failure_threshold=2, recovery_timeout=600.0, name="fallback-test"),
    )
    client = PolygonRESTClient(POLYGON_SIM_KEY, polygon.url, options=options)  # type: ignore[attr-defined]
    s = make_applied_repo()
    sinks = Sinks.for_settings(s)
    now = pd.Timestamp("2024-03-20", tz="UTC")

    def fallback(symbol: str, timespan: str, start: dt.date, end: dt.date):  # type: ignore[no-untyped-def]
        return uw_bars(uw, symbol, timespan, start, end)

    summary = backfill_ohlcv(client, sinks, ["AAPL"], D(2024, 2, 1), D(2024, 2, 29), "day", now=now, fallback=fallback)
    assert summary.ok and summary.fallback_rows["ohlcv_daily"] == summary.rows_written["ohlcv_daily"] > 0
    stored = read_dataset(s.data_dir, "ohlcv_daily")
    truth = market.daily_bars("AAPL", "2024-02-01", "2024-02-29", adjusted=False)
    np.testing.assert_array_equal(stored["close"].to_numpy(), truth["close"].to_numpy())
    assert (stored["source"] == "unusual_whales").all()
    assert stored["return_1d"].notna().all()  # the warm-up came from the fallback too
    # Without a fallback the symbol fails cleanly, its error reported, nothing half-written.
    s2 = make_applied_repo()
    failed = backfill_ohlcv(client, Sinks.for_settings(s2), ["AAPL"], D(2024, 2, 1), D(2024, 2, 29), "day", now=now)
    assert "AAPL" in failed.errors and read_dataset(s2.data_dir, "ohlcv_daily").empty

    # A plan without this history (403 NotEntitled) is "unavailable" too: the free key is limited to two years.
    free = PolygonRESTClient("free-key", polygon.url, options=HTTPOptions(use_cache=False))  # type: ignore[attr-defined]
    polygon.faults.clear()  # type: ignore[attr-defined]
    with pytest.raises(NotEntitled):
        free.get_daily_bars("AAPL", "2020-03-02", "2020-03-31")
    s3 = make_applied_repo()
    old = backfill_ohlcv(
        free, Sinks.for_settings(s3), ["AAPL"], D(2020, 3, 2), D(2020, 3, 31), "day", fallback=fallback
    )
    assert old.ok and old.fallback_rows["ohlcv_daily"] == len(market.daily_bars("AAPL", "2020-03-02", "2020-03-31"))


def test_the_fallback_client_is_closed_when_the_run_ends(make_uw: MakeUW, redis_url: str, tmp_path: Path) -> None:
    sim = make_uw()
    s = replace(settings({"FEAST_DATA_DIR": str(tmp_path)}), uw_base_url=sim.url, redis_url=redis_url)
    rt = Runtime(
        settings=s, polygon_key=POLYGON_SIM_KEY, uw_token=UW_SIM_TOKEN, simulated_polygon=True, simulated_uw=False
    )
    with uw_fallback(rt) as fetch:
        assert len(fetch("MSFT", "day", D(2024, 2, 1), D(2024, 2, 29)).frame) > 0
        client = fetch.args[0]  # type: ignore[attr-defined]  # partial(uw_bars, client)
        pools = client.http.session.get_adapter(sim.url).poolmanager.pools
        assert len(pools) == 1  # the connection the candles came through, kept for the next unit
    assert len(pools) == 0
