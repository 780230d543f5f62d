"""PolygonRESTClient against the loopback Polygon simulator: exact ground truth, faults, limits, cache, secrets.

Client and server share one simulated clock that only moves when the client sleeps, so rate limits, Retry-After
and breaker recovery are exercised without waiting and without timing assertions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from ingestion.datasets import OHLCV_MINUTE
from ingestion.errors import AuthError, CircuitOpen, NotEntitled
from ingestion.http import CircuitBreaker, CircuitState, RetryPolicy, TokenBucket
from ingestion.polygon.rest import PolygonRESTClient, chunk_range
from ingestion.publication import delay
from ingestion.simulators.faults import Fault
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.vendor_http import HTTPOptions


def _client(
    url: str, clock: SimClock, key: str = POLYGON_SIM_KEY, *, rpm: int | None = None, **kw: object
) -> PolygonRESTClient:
    limiter = (
        TokenBucket.per_window(rpm, 60.0, name=f"test:{key}", clock=clock.now, sleep=clock.advance) if rpm else None
    )
    options = HTTPOptions(
        use_cache=bool(kw.pop("use_cache", False)),
        retry=RetryPolicy(max_attempts=6, sleep=clock.advance, wall_clock=clock.now, max_total_wait=None),
        breaker=CircuitBreaker(failure_threshold=3, recovery_timeout=30.0, name="polygon-test", clock=clock.now),
        limiter=limiter,
    )
    return PolygonRESTClient(api_key=key, base_url=url, options=options, **kw)  # type: ignore[arg-type]


@pytest.fixture
def frozen() -> SimClock:
    return SimClock(speed=0.0, start=1_700_000_000.0)


def test_chunks_keep_base_aggregates_under_the_limit() -> None:
    import datetime as dt

    chunks = chunk_range("minute", 1, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert chunks[0][0] == dt.date(2024, 1, 1) and chunks[-1][1] == dt.date(2024, 12, 31)
    assert all((hi - lo).days + 1 <= 52 for lo, hi in chunks)
    assert all(chunks[i][1] + dt.timedelta(days=1) == chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert len(chunk_range("day", 1, dt.date(2000, 1, 1), dt.date(2024, 12, 31))) == 1


def test_multi_page_multi_chunk_minute_range_equals_ground_truth(
    make_polygon_rest: Callable[..., object], market: Market, frozen: SimClock
) -> None:
    sim = make_polygon_rest(clock=frozen)
    client = _client(sim.url, frozen)  # type: ignore[attr-defined]
    frame = client.get_aggregates("MSFT", 1, "minute", "2024-02-20", "2024-05-10", limit=5000)
    start = int(pd.Timestamp("2024-02-20", tz="America/New_York").value // 1_000_000)
    end = int(pd.Timestamp("2024-05-11", tz="America/New_York").value // 1_000_000) - 1
    truth = market.minute_bars_range("MSFT", start, end)
    assert len(frame) == len(truth) > 20_000
    np.testing.assert_array_equal(frame["window_start"].astype("int64").to_numpy() // 1000, truth["window_start_ms"])
    for col in ("open", "high", "low", "close", "volume", "vwap"):
        np.testing.assert_array_equal(frame[col].to_numpy(), truth[col].to_numpy())
    # Published at the minute's end plus the dataset's publication delay (ingestion/publication.py).
    published = pd.Timedelta(minutes=1) + delay(OHLCV_MINUTE)
    assert (frame["event_timestamp"] - frame["window_start"] == published).all()
    assert sim.server.log.by_route["aggs"] >= 5  # type: ignore[attr-defined]  # 21k bars in pages of 5000, 2 chunks


def test_429_bursts_are_waited_out_and_no_request_goes_over_the_limit(
    make_polygon_rest: Callable[..., object], frozen: SimClock
) -> None:
    sim = make_polygon_rest(clock=frozen)
    sim.faults.add(Fault.status(429, retry_after=7, routes="aggs", times=3))  # type: ignore[attr-defined]
    client = _client(sim.url, frozen, "free-key", rpm=5)  # type: ignore[attr-defined]
    t0 = frozen.now()
    frame = client.get_aggregates("AAPL", 1, "minute", "2024-03-04", "2024-03-06", limit=200)
    assert len(frame) > 1000
    log = sim.server.log  # type: ignore[attr-defined]
    assert log.max_in_window("free-key", 60.0) <= 5
    assert log.by_status[429] == 3  # only the injected ones: the plan's own limit was never hit
    assert frozen.now() - t0 >= 21  # three Retry-After: 7 waits, on the shared clock


def test_5xx_storm_opens_the_breaker_and_it_recovers_through_half_open(
    make_polygon_rest: Callable[..., object], frozen: SimClock
) -> None:
    sim = make_polygon_rest(clock=frozen)
    storm = sim.faults.add(Fault.status(503, routes="aggs"))  # type: ignore[attr-defined]
    client = _client(sim.url, frozen)  # type: ignore[attr-defined]
    with pytest.raises(CircuitOpen):
        client.get_daily_bars("AAPL", "2024-01-02", "2024-01-31")
    breaker = client.http.breaker
    assert breaker is not None and breaker.state is CircuitState.OPEN
    sent = sim.server.log.by_route["aggs"]  # type: ignore[attr-defined]
    with pytest.raises(CircuitOpen):
        client.get_daily_bars("AAPL", "2024-01-02", "2024-01-31")
    assert sim.server.log.by_route["aggs"] == sent  # type: ignore[attr-defined]  # refused without a request
    storm.enabled = False
    frozen.advance(31)
    assert breaker.state is CircuitState.HALF_OPEN
    assert len(client.get_daily_bars("AAPL", "2024-01-02", "2024-01-31")) == 21
    assert breaker.state is CircuitState.CLOSED


def test_auth_and_entitlement_fail_at_once(make_polygon_rest: Callable[..., object], frozen: SimClock) -> None:
    sim = make_polygon_rest(clock=frozen)
    with pytest.raises(AuthError) as bad:
        _client(sim.url, frozen, "not-a-key").get_daily_bars("AAPL", "2024-01-02", "2024-01-31")  # type: ignore[attr-defined]
    assert bad.value.status == 401 and "POLYGON_API_KEY" in str(bad.value)
    with pytest.raises(NotEntitled) as old:
        _client(sim.url, frozen, "free-key").get_daily_bars("AAPL", "2020-01-02", "2020-01-31")  # type: ignore[attr-defined]
    assert old.value.status == 403
    assert sim.server.log.by_status[401] == 1 and sim.server.log.by_status[403] == 1  # type: ignore[attr-defined]


def test_cache_hit_makes_no_request(make_polygon_rest: Callable[..., object], frozen: SimClock) -> None:
    sim = make_polygon_rest(clock=frozen)
    client = _client(sim.url, frozen, use_cache=True)  # type: ignore[attr-defined]
    first = client.get_daily_bars("NVDA", "2023-01-03", "2023-03-31")
    sent = sim.server.log.by_route["aggs"]  # type: ignore[attr-defined]
    second = client.get_daily_bars("NVDA", "2023-01-03", "2023-03-31")
    assert sim.server.log.by_route["aggs"] == sent  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(first, second)


def test_many_symbols_partial_result_with_error_report(polygon_rest: object, frozen: SimClock) -> None:
    client = _client(polygon_rest.url, frozen)  # type: ignore[attr-defined]
    batch = client.get_many_aggregates(["AAPL", "MSFT", "NOPE", "NVDA"], 1, "day", "2024-01-02", "2024-01-31")
    assert sorted(batch.frame["symbol"].unique()) == ["AAPL", "MSFT", "NVDA"]
    # An unknown ticker is an empty result at the vendor, not an error; nothing else failed.
    assert batch.errors == {}


def test_key_never_in_logs_or_exceptions(
    make_polygon_rest: Callable[..., object], frozen: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "SECRETKEY0123456789abcdef"
    sim = make_polygon_rest(clock=frozen, keys={secret: "unlimited"})
    sim.faults.add(Fault.status(500, routes="aggs", times=2))  # type: ignore[attr-defined]
    sim.faults.add(Fault.status(403, routes="ticker", times=1))  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    client = _client(sim.url, frozen, secret)  # type: ignore[attr-defined]
    client.get_daily_bars("AAPL", "2024-01-02", "2024-01-31")
    with pytest.raises(NotEntitled) as info:
        client.get_ticker_details("AAPL")
    texts = [r.getMessage() for r in caplog.records] + [str(info.value), repr(info.value), repr(client.http)]
    assert caplog.records, "expected retry warnings to be logged"
    assert not [t for t in texts if secret in t]
