"""OHLCV backfill end to end on the Polygon simulator, real Redis and real Feast.

Backfill -> Parquet equals the simulator's ground truth; re-runs add nothing; a backfill killed with SIGKILL and
run again ends with exactly the rows of an uninterrupted run; stock ``get_online_features`` serves the latest
values; ``get_historical_features`` gives a 10:00 New York row the previous session's close, never the same day's.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import redis

from ingestion import calendar, publication
from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.runs import latest_online
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, frames_equal_ignoring_write_time, read_dataset

NOW = pd.Timestamp("2024-07-01 12:00", tz="UTC")
D = dt.date


def _client(url: str) -> PolygonRESTClient:
    return PolygonRESTClient(POLYGON_SIM_KEY, url, use_cache=False)


def test_daily_backfill_equals_truth_is_idempotent_and_served(
    polygon_rest: object, market: Market, make_applied_repo: Callable[[], Settings], redis_client: redis.Redis
) -> None:
    s = make_applied_repo()
    sinks = Sinks.for_settings(s)
    client = _client(polygon_rest.url)  # type: ignore[attr-defined]
    symbols = ["AAPL", "MSFT"]
    first = backfill_ohlcv(client, sinks, symbols, D(2023, 11, 1), D(2024, 3, 28), "day", now=NOW)
    assert first.ok and first.rows_written["ohlcv_daily"] > 0
    stored = read_dataset(s.data_dir, "ohlcv_daily")
    for sym in symbols:
        truth = market.daily_bars(sym, "2023-11-01", "2024-03-28", adjusted=False)  # stored as traded
        mine = stored[stored["symbol"] == sym]
        assert len(mine) == len(truth)
        np.testing.assert_array_equal(mine["close"].to_numpy(), truth["close"].to_numpy())
        np.testing.assert_array_equal(mine["volume"].to_numpy(), truth["volume"].to_numpy())
        published = publication.published_days(OHLCV_DAILY, truth["day"])
        assert list(mine["event_timestamp"]) == list(published)
        assert not mine["adjusted"].any()
        # Derived features are present from the first row: the warm-up came from before the range.
        assert mine["return_20d"].notna().all()

    again = backfill_ohlcv(client, sinks, symbols, D(2023, 11, 1), D(2024, 3, 28), "day", now=NOW)
    assert again.api_calls == 0 and sum(again.rows_written.values()) == 0
    wider = backfill_ohlcv(client, sinks, symbols, D(2023, 10, 1), D(2024, 4, 30), "day", now=NOW)
    assert wider.rows_written["ohlcv_daily"] == sum(
        len(market.daily_bars(sym, "2023-10-01", "2023-10-31"))
        + len(market.daily_bars(sym, "2024-03-29", "2024-04-30"))
        for sym in symbols
    )
    stored = read_dataset(s.data_dir, "ohlcv_daily")
    assert count_duplicates(stored, "ohlcv_daily") == 0

    assert s.redis_url
    summary = JobSummary("online")
    latest_online(s, s.redis_url, [OHLCV_DAILY], summary)
    assert summary.online_keys["ohlcv_daily"] == 2
    store = open_store(s, s.redis_url)
    # Read the morning after the last backfilled session, inside the view's ttl (2024 data, read today: null).
    store.config.online_store.read_at = pd.Timestamp("2024-05-01 10:00", tz="America/New_York").to_pydatetime()
    online = store.get_online_features(
        features=store.get_feature_service("daily_model"), entity_rows=[{"symbol": x} for x in symbols]
    ).to_df()
    for sym in symbols:
        last = market.daily_bars(sym, "2024-04-30", "2024-04-30", adjusted=False).iloc[0]
        row = online[online["symbol"] == sym].iloc[0]
        assert row["close"] == last["close"] and row["volume"] == last["volume"]

    # Point in time: at 10:00 New York on day D a model may know D-1's close, never D's.
    days = [d.date() for d in calendar.sessions("2024-02-01", "2024-02-29")]
    entity = pd.DataFrame(
        {
            "symbol": "MSFT",
            "event_timestamp": [pd.Timestamp(f"{d} 10:00", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days],
        }
    )
    hist = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    hist = hist.sort_values("event_timestamp").reset_index(drop=True)
    truth = market.daily_bars("MSFT", "2024-01-25", "2024-02-29", adjusted=False).set_index("day")["close"]
    for d, got in zip(days, hist["close"], strict=True):
        prev = calendar.previous_session(d).date()
        assert got == truth[prev], f"{d}: expected {prev}'s close"
        assert got != truth[d] or truth[prev] == truth[d]


def test_minute_backfill_reports_gaps_and_serves_intraday(
    polygon_rest: object, market: Market, make_applied_repo: Callable[[], Settings], redis_client: redis.Redis
) -> None:
    s = make_applied_repo()
    sinks = Sinks.for_settings(s)
    summary = backfill_ohlcv(
        _client(polygon_rest.url), sinks, ["NVDA"], D(2024, 3, 4), D(2024, 3, 6), "minute", now=NOW
    )  # type: ignore[attr-defined]
    stored = read_dataset(s.data_dir, "ohlcv_minute")
    truth = pd.concat(
        [market.minute_bars("NVDA", d, adjusted=False) for d in ("2024-03-04", "2024-03-05", "2024-03-06")]
    )
    assert len(stored) == len(truth)
    np.testing.assert_array_equal(stored["open"].to_numpy(), truth["open"].to_numpy())
    # The minutes without a trade are reported, not invented.
    assert summary.missing_minutes == 3 * 390 - len(truth)
    span = pd.Timedelta(minutes=1) + publication.delay(OHLCV_MINUTE)  # the window's end plus the late-report delay
    assert (stored["event_timestamp"] - stored["window_start"] == span).all()


def _cli_env(s: Settings, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "POLYGON_API_KEY": POLYGON_SIM_KEY,
            "POLYGON_BASE_URL": url,
            "UW_API_TOKEN": UW_SIM_TOKEN,
            "UW_BASE_URL": "http://127.0.0.1:9",
            "FEAST_DATA_DIR": str(s.data_dir),
            "FEAST_REPO_PATH": str(s.repo_path),
            "REDIS_URL": s.redis_url or "",
        }
    )
    return env


BACKFILL_ARGS = ["backfill", "ohlcv", "--symbols", "AAPL,TSLA", "--from", "2024-01-01", "--to", "2024-03-31",
                 "--timespan", "minute", "--workers", "1", "--no-online"]  # fmt: skip


# One seed in the default suite; more kill points run with the chaos suite (-m slow).
@pytest.mark.parametrize(
    "seed", [11, pytest.param(12, marks=pytest.mark.slow), pytest.param(13, marks=pytest.mark.slow)]
)
def test_killed_backfill_resumes_to_the_same_rows(
    polygon_rest: object, make_applied_repo: Callable[[], Settings], seed: int
) -> None:
    url = polygon_rest.url  # type: ignore[attr-defined]
    reference = make_applied_repo()
    done = subprocess.run(
        [sys.executable, "-m", "ingestion", *BACKFILL_ARGS],
        env=_cli_env(reference, url),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    expected = read_dataset(reference.data_dir, "ohlcv_minute")

    victim = make_applied_repo()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestion", *BACKFILL_ARGS],
        env=_cli_env(victim, url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill at a random point once it has started writing (or finished: then the rerun must add nothing).
    rng = random.Random(seed)
    offline = victim.data_dir / "offline" / "ohlcv_minute"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(offline.rglob("*.parquet")):
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(
        [sys.executable, "-m", "ingestion", *BACKFILL_ARGS], env=_cli_env(victim, url), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    got = read_dataset(victim.data_dir, "ohlcv_minute")
    assert count_duplicates(got, "ohlcv_minute") == 0
    assert len(got) == len(expected)
    assert frames_equal_ignoring_write_time(got, expected, "ohlcv_minute")
