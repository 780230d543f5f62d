"""Redis dying mid-run: the shared breaker, limiter and cache carry on in process, with one warning each.

A real redis-server is started for the test and killed between requests; the client keeps fetching from a real
loopback server (each request a new path, so none is a cache hit).
"""

from __future__ import annotations

import logging
import random

import pytest
from fixtures.http import Script, ServerFactory

from ingestion.http import CircuitState, RetryPolicy
from ingestion.simulators.http import Response
from ingestion.store.redis_server import RedisServer
from ingestion.vendor_http import HTTPOptions, build_vendor_http

PAGE = Response.json({"status": "OK", "results": [{"t": 1, "c": 2.5}]})


def test_requests_keep_working_when_redis_dies_mid_run(
    serve: ServerFactory, test_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script([PAGE])
    server = serve({"/v2/page/(?P<n>\\d+)": script})
    redis_server = RedisServer().start()
    try:
        options = HTTPOptions(
            redis_url=redis_server.url,
            requests_per_minute=6000,
            retry=RetryPolicy(max_attempts=1, rng=random.Random(0)),
        )
        http = build_vendor_http("polygon", server.url, test_key, options)
        assert http.breaker is not None and http.breaker.shared
        assert http.limiter is not None and http.limiter.shared
        assert http.get("page", "/v2/page/0", cache_ttl=60).json()["results"][0]["c"] == 2.5
        redis_server.stop()  # Redis goes away mid-run
        with caplog.at_level(logging.WARNING, logger="ingestion.http"):
            pages = [http.get("page", f"/v2/page/{n}", cache_ttl=60) for n in range(1, 6)]
            again = http.get("page", "/v2/page/3", cache_ttl=60)  # the cache kept working in process
    finally:
        redis_server.stop()
    assert all(p.json()["results"][0]["c"] == 2.5 for p in pages)
    assert again.from_cache
    assert script.calls == 6
    assert http.breaker.state is CircuitState.CLOSED
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for concern in ("circuit polygon:", "rate limiter polygon:", "response cache"):
        assert sum(concern in w and "Redis unavailable" in w for w in warnings) == 1, (concern, warnings)
    http.close()
