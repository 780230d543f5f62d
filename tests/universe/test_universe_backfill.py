"""``backfill ohlcv --universe all`` through the real simulator, the real offline store and a real Redis."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion import publication
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, OHLCV_DAILY
from ingestion.jobs.backfill import backfill_ohlcv
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.landing import Sinks
from ingestion.jobs.runs import latest_online
from ingestion.jobs.summary import JobSummary
from ingestion.jobs.universe import MARKET, backfill_universe, planned_sessions
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server
from ingestion.store.feast_repo import open_store
from ingestion.store.jsonstate import read_json
from ingestion.store.offline import count_duplicates, read_dataset

END = dt.date(2024, 12, 31)
NOW = pd.Timestamp("2025-01-06 12:00", tz="UTC")
D = dt.date


@pytest.fixture(scope="module")
def universe() -> Market:
    # Two real tickers (their minute-level truth is what costs time to generate), then synthetic ones up to 50.
    return Market(symbols=("NVDA", "AAPL"), universe_size=50, end=END)


@pytest.fixture(scope="module")
def server(universe: Market) -> Iterator[PolygonRestServer]:
    with polygon_rest_server(universe) as srv:
        yield srv


def _client(server: PolygonRestServer) -> PolygonRESTClient:
    return PolygonRESTClient(POLYGON_SIM_KEY, server.url, use_cache=False)


def _parts(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "offline" / OHLCV_DAILY.name).rglob("*.parquet"))


def test_universe_backfill_lands_truth_once_in_few_files_and_serves_it(
    universe: Market, server: PolygonRestServer, make_applied_repo: Callable[[], Settings]
) -> None:
    s = make_applied_repo()
    sinks = Sinks.for_settings(s)
    span = (D(2024, 1, 1), D(2024, 12, 31))
    sessions = universe.sessions(*span)
    assert planned_sessions(sinks, *span, NOW) == len(sessions)
    with _client(server) as client:
        first = backfill_universe(client, sinks, *span, now=NOW)
        assert first.ok, first.errors
        # One request per session, plus the warm-up sessions before the first month, the market's actions and the
        # list of tickers trading now (the identity of every ticker seen: jobs/universe_identity.py).
        assert first.api_calls <= len(sessions) + 30 + 2 + 1
        stored = read_dataset(s.data_dir, OHLCV_DAILY)
        assert count_duplicates(stored, OHLCV_DAILY.name) == 0
        assert stored["symbol"].nunique() == len(universe.symbols)
        truth_rows = 0
        for symbol in universe.symbols:
            truth = universe.daily_bars(symbol, *span, adjusted=False)
            mine = stored[stored["symbol"] == symbol]
            truth_rows += len(truth)
            assert len(mine) == len(truth), symbol
            for col in ("open", "high", "low", "close", "volume", "vwap"):
                np.testing.assert_array_equal(mine[col].to_numpy(), truth[col].to_numpy(), err_msg=f"{symbol} {col}")
            assert list(mine["event_timestamp"]) == list(publication.published_days(OHLCV_DAILY, truth["day"]))
            assert mine["return_20d"].notna().all()  # the warm-up came from before the range
        assert len(stored) == truth_rows == first.rows_written[OHLCV_DAILY.name]
        # Part files: a quarter's rows of every ticker go out in one append, cut by the month of their event time.
        parts = _parts(s.data_dir)
        assert len(parts) <= 12 + 4
        # Coverage: one market-wide entry, whatever the number of tickers.
        recorded = read_json(s.state_dir / "coverage" / f"{OHLCV_DAILY.name}.json") or {}
        assert list(recorded) == [MARKET]
        assert Coverage(s.state_dir).get(OHLCV_DAILY.name, MARKET) == [span]

        again = backfill_universe(client, sinks, *span, now=NOW)
        assert again.ok and again.api_calls == 0 and sum(again.rows_written.values()) == 0
        assert _parts(s.data_dir) == parts
        assert planned_sessions(sinks, *span, NOW) == 0

    assert s.redis_url
    summary = JobSummary("online")
    latest_online(s, s.redis_url, [OHLCV_DAILY], summary)
    assert summary.online_keys[OHLCV_DAILY.name] == len(universe.symbols)
    store = open_store(s, s.redis_url)
    store.config.online_store.read_at = pd.Timestamp("2025-01-02 10:00", tz="America/New_York").to_pydatetime()
    picks = [universe.symbols[0], universe.symbols[20], universe.symbols[-1]]
    online = store.get_online_features(features=["ohlcv_daily:close"], entity_rows=[{"symbol": x} for x in picks])
    got = online.to_df().set_index("symbol")["close"]
    for symbol in picks:
        assert got[symbol] == universe.daily_bars(symbol, END, END, adjusted=False).iloc[0]["close"]


def test_grouped_rows_equal_per_ticker_rows_across_a_split(
    universe: Market, server: PolygonRestServer, make_applied_repo: Callable[[], Settings]
) -> None:
    """The same bars and the same derived features by either path, NVDA's 10:1 split of 2024-06-10 included; a run
    stopped after some months resumes where it stopped."""
    grouped, per_ticker = make_applied_repo(), make_applied_repo()
    span = (D(2024, 5, 1), D(2024, 7, 31))
    symbols = ["NVDA", "AAPL", universe.symbols[30]]
    with _client(server) as client:
        part = backfill_universe(client, Sinks.for_settings(grouped), span[0], D(2024, 5, 31), now=NOW)
        rest = backfill_universe(client, Sinks.for_settings(grouped), *span, now=NOW)
        assert part.ok and rest.ok
        # The second run resumed after May: June and July's sessions, their warm-up, the market's actions and the
        # list of tickers trading now.
        assert rest.api_calls <= len(universe.sessions(D(2024, 6, 1), span[1])) + 30 + 2 + 1
        assert Coverage(grouped.state_dir).get(OHLCV_DAILY.name, MARKET) == [span]
        one = backfill_ohlcv(client, Sinks.for_settings(per_ticker), symbols, *span, "day", now=NOW)
        assert one.ok, one.errors
    mine = read_dataset(grouped.data_dir, OHLCV_DAILY)
    mine = mine[mine["symbol"].isin(symbols)].reset_index(drop=True)
    theirs = read_dataset(per_ticker.data_dir, OHLCV_DAILY)
    # Rolling statistics are summed from where each path's warm-up starts, so the last bits may differ.
    columns = [c for c in OHLCV_DAILY.column_names if c != CREATED_TS]
    pd.testing.assert_frame_equal(mine[columns], theirs[columns], check_exact=False, rtol=1e-9)
    nvda = mine[mine["symbol"] == "NVDA"].set_index(mine[mine["symbol"] == "NVDA"]["window_start"].dt.date)
    assert nvda.loc[D(2024, 6, 10), "split_factor"] == 10 * nvda.loc[D(2024, 6, 7), "split_factor"]
    assert abs(nvda.loc[D(2024, 6, 10), "return_1d"]) < 0.5  # split-aware, not -90%


def _cli(s: Settings, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.update(
        {
            "FEAST_DATA_DIR": str(s.data_dir),
            "FEAST_REPO_PATH": str(s.repo_path),
            "REDIS_URL": s.redis_url or "",
            "POLYGON_API_KEY": POLYGON_SIM_KEY,
            "POLYGON_BASE_URL": url,
        }
    )
    cmd = [sys.executable, "-m", "ingestion", "backfill", "ohlcv", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)


@pytest.mark.slow  # a CLI process with Feast's online write: the in-process tests above are the short form
def test_backfill_command_universe_all(
    universe: Market, server: PolygonRestServer, make_applied_repo: Callable[[], Settings]
) -> None:
    s = make_applied_repo()
    done = _cli(s, server.url, "--universe", "all", "--from", "2024-11-01", "--to", "2024-11-30")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stored = read_dataset(s.data_dir, OHLCV_DAILY)
    truth = sum(len(universe.daily_bars(x, "2024-11-01", "2024-11-30", adjusted=False)) for x in universe.symbols)
    assert len(stored) == truth and stored["symbol"].nunique() == len(universe.symbols)
    for bad, hint in (
        (["--universe", "all", "--symbols", "AAPL"], "do not combine"),
        (["--universe", "all", "--timespan", "minute"], "daily bars only"),
    ):
        refused = _cli(s, server.url, *bad, "--from", "2024-11-01", "--to", "2024-11-30")
        assert refused.returncode != 0 and hint in refused.stderr
        assert "Traceback" not in refused.stderr
