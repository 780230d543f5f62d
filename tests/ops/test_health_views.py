"""``health`` over every feature view, against a real Redis and a really applied repo: defaults per view kind, ETF
flow judged only for symbols that have it, one-line errors for bad ``--max-age`` input and limits in human units."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pytest
import redis

from ingestion import calendar, cli
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FEATURE_DATASETS, Dataset, get
from ingestion.ops.health import run_health
from ingestion.store.feast_repo import open_store

# Wednesday 2024-03-20, 11:00 New York: the market is open and Tuesday's session is the last one closed.
NOW = pd.Timestamp("2024-03-20 11:00", tz=calendar.NEW_YORK).tz_convert("UTC")
TUESDAY_CLOSE = calendar.session_close("2024-03-19")


def _online_row(ds: Dataset, symbols: list[str], at: pd.Timestamp) -> pd.DataFrame:
    """One row per symbol with every feature of ``ds`` filled, stamped ``at``."""
    filler = {pa.float64(): 1.0, pa.int64(): 1, pa.bool_(): False, pa.string(): "polygon"}
    row = {c.name: [filler[c.dtype]] * len(symbols) for c in ds.features}
    return pd.DataFrame({ENTITY_KEY: symbols, EVENT_TS: [at] * len(symbols), CREATED_TS: [at] * len(symbols), **row})


def _write(s: Settings, view: str, symbols: list[str], at: pd.Timestamp) -> None:
    assert s.redis_url
    open_store(s, s.redis_url).write_to_online_store(view, _online_row(get(view), symbols, at))


def test_every_view_is_checked_and_stocks_are_not_unhealthy_for_lacking_etf_flow(
    applied_repo: Settings, redis_client: redis.Redis
) -> None:
    s = replace(applied_repo, polygon_api_key=None, uw_api_token=None)
    stocks = ["AAPL", "MSFT"]
    for ds in FEATURE_DATASETS:
        if ds.name == "realtime_quotes":
            _write(s, ds.name, stocks, NOW - pd.Timedelta(seconds=20))
        elif ds.name not in ("etf_flow_daily", "insider_activity"):
            _write(s, ds.name, stocks, TUESDAY_CLOSE)
    report = run_health(s, stocks, vendors=False, now=NOW.value / 1e9)
    checks = {c.name: c for c in report.checks}
    assert {f"freshness {ds.name}" for ds in FEATURE_DATASETS} <= set(checks)
    etf = checks["freshness etf_flow_daily"]
    assert etf.ok and "skipped AAPL, MSFT" in etf.detail
    assert report.ok, report.text()

    # An ETF whose flow is a week old is judged, and fails.
    _write(s, "etf_flow_daily", ["SPY"], calendar.session_close("2024-03-12"))
    with_spy = run_health(s, [*stocks, "SPY"], vendors=False, now=NOW.value / 1e9)
    failed = {c.name for c in with_spy.checks if not c.ok}
    assert "freshness etf_flow_daily" in failed


def test_the_command_says_limits_in_human_units_and_refuses_unknown_views_in_one_line(
    applied_repo: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = applied_repo
    assert s.redis_url
    for key in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("REDIS_URL", s.redis_url)
    monkeypatch.setenv("FEAST_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("FEAST_REPO_PATH", str(s.repo_path))
    _write(s, "realtime_quotes", ["AAPL"], pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=1))

    cli.main(["health", "--no-vendors", "--symbols", "AAPL", "--max-age", "realtime_quotes=2m"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "freshness realtime_quotes" in line)
    assert "limit 2 min" in line and "0.0 h" not in out

    assert cli.main(["health", "--no-vendors", "--max-age", "NOPE=1d"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'NOPE' is not a feature view" in err and "Traceback" not in err
