"""Operations: the /metrics endpoint shows every family during a simulator run; health fails with a reason."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import pytest
import redis
import requests

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.errors import CircuitOpen
from ingestion.http import CircuitBreaker, RetryPolicy, TokenBucket
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.runs import latest_online
from ingestion.jobs.summary import JobSummary
from ingestion.ops.freshness import feature_ages
from ingestion.ops.health import check_freshness, check_redis, run_health
from ingestion.ops.metrics import pipeline_metrics, serve_metrics
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.faults import Fault, wrong_type
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store.feast_repo import open_store
from ingestion.store.redis_server import free_port
from ingestion.vendor_http import HTTPOptions

D = dt.date


def _samples(text: str, family: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(family)]


def test_metrics_endpoint_shows_every_family_during_a_run(
    make_polygon_rest: Callable[..., object], make_applied_repo: Callable[[], Settings], redis_client: redis.Redis
) -> None:
    server = serve_metrics(0)
    port = server.server_port
    clock = SimClock(speed=0.0, start=1_700_000_000.0)
    sim = make_polygon_rest(clock=clock)
    sim.faults.add(Fault.status(500, routes="aggs", times=1))  # type: ignore[attr-defined]
    sim.faults.add(Fault.status(429, retry_after=3, routes="aggs", times=1))  # type: ignore[attr-defined]
    sim.faults.add(Fault.drift(wrong_type("o"), routes="aggs", times=1))  # type: ignore[attr-defined]
    options = HTTPOptions(
        use_cache=True,
        retry=RetryPolicy(sleep=clock.advance, wall_clock=clock.now, max_total_wait=None),
        limiter=TokenBucket.per_window(3, 60.0, name="metrics-test", clock=clock.now, sleep=clock.advance),
        breaker=CircuitBreaker(failure_threshold=2, recovery_timeout=60.0, name="metrics-test", clock=clock.now),
    )
    client = PolygonRESTClient(POLYGON_SIM_KEY, sim.url, options=options)  # type: ignore[attr-defined]
    s = make_applied_repo()
    summary = backfill_ohlcv(client, Sinks.for_settings(s), ["AAPL", "MSFT"], D(2024, 1, 2), D(2024, 2, 29), "day")
    assert summary.ok and sum(summary.quarantined.values()) > 0
    client.get_ticker_details("AAPL")
    client.get_ticker_details("AAPL")  # a cache hit
    sim.faults.add(Fault.status(503, routes="ticker"))  # type: ignore[attr-defined]
    # NVDA: MSFT's details are cached already (its unit landed no rows, all quarantined, so the engine asked for
    # its listing to see whether the empty answer was proven); a cache hit sends no request to trip the breaker.
    with pytest.raises(CircuitOpen):
        client.get_ticker_details("NVDA")
    assert s.redis_url

    latest_online(s, s.redis_url, [OHLCV_DAILY], JobSummary("online"))
    feature_ages(open_store(s, s.redis_url), ["ohlcv_daily"], ["AAPL", "MSFT"])
    pipeline_metrics().quota_remaining.labels("polygon", "minute").set(3)

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    families = [
        "ingestion_http_requests_total",
        "ingestion_http_request_duration_seconds_count",
        "ingestion_http_errors_total",
        "ingestion_http_retries_total",
        'ingestion_http_cache_total{endpoint="ticker_details",result="hit"',
        "ingestion_ratelimit_waits_total",
        "ingestion_circuit_transitions_total",
        'ingestion_circuit_state{breaker="metrics-test"}',
        'ingestion_rows_written_total{dataset="ohlcv_daily"}',
        'ingestion_rows_quarantined_total{dataset="ohlcv_daily"}',
        'ingestion_feature_age_seconds{view="ohlcv_daily"}',
        "ingestion_quota_remaining",
    ]
    for family in families:
        values = _samples(text, family)
        assert values and max(values) > 0, f"{family} has no non-zero sample"
    assert POLYGON_SIM_KEY not in text
    server.shutdown()


def test_health_reports_redis_down_with_a_reason() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    check = check_redis(dead)
    assert not check.ok and "cannot reach Redis" in check.detail
    env = {**os.environ, "REDIS_URL": dead}
    for key in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-m", "ingestion", "health", "--no-vendors"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "FAIL redis: cannot reach Redis" in proc.stdout and "UNHEALTHY" in proc.stdout


def test_health_flags_stale_and_missing_views(
    make_applied_repo: Callable[[], Settings], redis_client: redis.Redis
) -> None:
    s = make_applied_repo()
    assert s.redis_url
    store = open_store(s, s.redis_url)
    old = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=10)
    store.write_to_online_store(
        "ohlcv_daily",
        pd.DataFrame(
            {
                "symbol": ["AAPL"], "event_timestamp": [old], "created_timestamp": [old],
                **{c: [1.0] for c in ("open", "high", "low", "close", "volume", "vwap")}, "transactions": [1],
                **{c: [0.0] for c in ("return_1d", "return_5d", "return_20d", "realized_vol_20d",
                                       "volume_zscore_20d", "gap_pct", "range_pct", "total_return_1d", "split_factor")},
            }
        ),
    )  # fmt: skip
    checks = {c.name: c for c in check_freshness(store, ["AAPL"], {"ohlcv_daily": 4 * 86400, "etf_flow_daily": 86400})}
    assert not checks["freshness ohlcv_daily"].ok and "h old" in checks["freshness ohlcv_daily"].detail
    assert not checks["freshness etf_flow_daily"].ok and "no online value" in checks["freshness etf_flow_daily"].detail
    fresh_enough = check_freshness(store, ["AAPL"], {"ohlcv_daily": 30 * 86400})
    assert fresh_enough[0].ok
    report = run_health(replace(s, polygon_api_key=None, uw_api_token=None), ["AAPL"], {"ohlcv_daily": 86400.0})
    assert not report.ok and "freshness ohlcv_daily" in report.text()
