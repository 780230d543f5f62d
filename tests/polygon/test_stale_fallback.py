"""When Polygon is down, cached reads are served stale with their age instead of failing outright."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ingestion.errors import CircuitOpen
from ingestion.http import CircuitBreaker, CircuitState, ResponseCache, RetryPolicy
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.faults import Fault
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.vendor_http import HTTPOptions


def test_open_breaker_serves_stale_cache_with_age(make_polygon_rest: Callable[..., object]) -> None:
    clock = SimClock(speed=0.0, start=1_700_000_000.0)
    sim = make_polygon_rest(clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=300.0, name="stale-test", clock=clock.now)
    options = HTTPOptions(
        use_cache=True,
        retry=RetryPolicy(max_attempts=3, sleep=clock.advance, wall_clock=clock.now, max_total_wait=None),
        breaker=breaker,
    )
    client = PolygonRESTClient(POLYGON_SIM_KEY, sim.url, options=options)  # type: ignore[attr-defined]
    client.http.cache = ResponseCache(clock=clock.now)
    client.http._wall_clock = clock.now
    fresh = client.get_ticker_details("AMD")
    # Two days on, the reference entry (1 day TTL) has expired; then the vendor goes down.
    clock.advance(2 * 86400)
    sim.faults.add(Fault.status(503))  # type: ignore[attr-defined]
    with pytest.raises(CircuitOpen):
        # Nothing was ever cached for this ticker: the outage is reported, not hidden.
        client.get_ticker_details("TSLA")
    assert breaker.state is CircuitState.OPEN
    sent = sim.server.log.by_route["ticker"]  # type: ignore[attr-defined]
    stale = client.http.get("ticker_details", "/v3/reference/tickers/AMD", None, cache_ttl=86400.0)
    assert stale.stale and stale.age is not None and stale.age >= 2 * 86400
    assert sim.server.log.by_route["ticker"] == sent  # type: ignore[attr-defined]  # the open breaker sent nothing
    assert client.get_ticker_details("AMD") == fresh
