"""VendorHTTP end to end against real loopback servers: retries, breaker, limiter, cache, errors, redaction.

Sleeps are injected (a manual clock, or the server's SimClock advanced instead of sleeping), so no test waits out a
backoff and nothing asserts on elapsed time.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
import redis
from fixtures.http import TEST_KEY, Script, ServerFactory

import ingestion.http
from ingestion.errors import (
    AuthError,
    CircuitOpen,
    ClientError,
    NotEntitled,
    QuotaExhausted,
    RateLimited,
    ServerError,
    TransportError,
    VendorError,
)
from ingestion.http import (
    BearerAuth,
    CircuitBreaker,
    CircuitState,
    HTTPMetrics,
    HTTPResult,
    ManualClock,
    ResponseCache,
    RetryPolicy,
    Timeouts,
    TokenBucket,
    VendorHTTP,
)
from ingestion.simulators.http import Request, Response, SimClock, SimServer

OK = Response.json({"status": "OK", "results": [{"t": 1, "c": 1.5}]})


def make_client(
    server: SimServer, clock: ManualClock, metrics: HTTPMetrics, *, attempts: int = 4, **kw: Any
) -> VendorHTTP:
    return VendorHTTP(
        "polygon",
        server.url,
        auth=BearerAuth(TEST_KEY),
        retry=RetryPolicy(
            max_attempts=attempts,
            base_delay=1.0,
            jitter=0.0,
            sleep=clock.sleep,
            wall_clock=clock.now,
            rng=random.Random(0),
        ),
        metrics=metrics,
        clock=clock.now,
        wall_clock=clock.now,
        timeouts=Timeouts(connect=2.0, read=5.0),
        auth_hint="set POLYGON_API_KEY",
        **kw,
    )


def storm(status: int = 503) -> Response:
    return Response.text("upstream overloaded", status)


def test_key_travels_in_the_bearer_header_never_the_url(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics, test_key: str
) -> None:
    script = Script([OK])
    server = serve({"/v2/x": script})
    with make_client(server, manual_clock, http_metrics) as http:
        page = http.get("x", "/v2/x", {"ticker": "AAPL", "apiKey": test_key, "adjusted": True, "skip": None})
    assert page.status == 200 and page.json()["status"] == "OK" and page.body.startswith(b"{")
    seen = script.requests[0]
    assert seen.headers["authorization"] == f"Bearer {test_key}"
    assert seen.query == {"ticker": ["AAPL"], "adjusted": ["true"]}
    assert test_key not in repr(page) and test_key not in repr(http)


def test_gzip_bodies_are_asked_for_and_decoded(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    payload = {"status": "OK", "results": [{"t": i, "c": 1.5} for i in range(500)]}
    packed = gzip.compress(orjson.dumps(payload))
    script = Script([Response(200, packed, {"Content-Type": "application/json", "Content-Encoding": "gzip"})])
    server = serve({"/v2/x": script})
    with make_client(server, manual_clock, http_metrics) as http:
        page = http.get("x", "/v2/x")
    assert "gzip" in script.requests[0].headers["accept-encoding"]
    assert page.json() == payload and len(page.body) > len(packed)


def test_next_url_is_rebuilt_on_the_base_url_without_credentials(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics, test_key: str
) -> None:
    script = Script([OK])
    server = serve({"/v2/aggs/page": script})
    link = f"https://api.polygon.io:443:443/v2/aggs/page?cursor=YXA9MTIz&apiKey={test_key}"
    with make_client(server, manual_clock, http_metrics) as http:
        page = http.get("aggs", link, {"limit": 5000})
    assert page.path == "/v2/aggs/page" and dict(page.query) == {"cursor": "YXA9MTIz", "limit": 5000}
    assert script.requests[0].query == {"cursor": ["YXA9MTIz"], "limit": ["5000"]}


def test_429_with_retry_after_seconds_is_waited_out(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    limited = Response.json({"status": "ERROR", "error": "You've exceeded the maximum requests per minute"}, status=429)
    server = serve(
        {
            "/v2/x": Script(
                [
                    Response(429, limited.body, {**limited.headers, "Retry-After": "3"}),
                    Response(429, limited.body, {**limited.headers, "Retry-After": "2"}),
                    OK,
                ]
            )
        }
    )
    with make_client(server, manual_clock, http_metrics) as http:
        page = http.get("x", "/v2/x")
    assert page.attempts == 3
    assert manual_clock.sleeps == [3.0, 2.0]
    assert server.log.by_status == {429: 2, 200: 1}
    assert http_metrics.value("ingestion_http_retries_total", vendor="polygon", endpoint="x", kind="RateLimited") == 2
    assert http_metrics.value("ingestion_http_requests_total", vendor="polygon", endpoint="x", status="429") == 2


def test_429_with_retry_after_http_date(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    when = format_datetime(datetime.fromtimestamp(int(manual_clock.now()) + 7, tz=UTC), usegmt=True)
    server = serve({"/v2/x": Script([Response(429, b"", {"Retry-After": when}), OK])})
    with make_client(server, manual_clock, http_metrics) as http:
        http.get("x", "/v2/x")
    assert manual_clock.sleeps == [pytest.approx(7.0, abs=1.0)]


def test_429_penalizes_the_shared_limiter_without_waiting_twice(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    server = serve({"/v2/x": Script([Response(429, b"{}", {"Retry-After": "5"}), OK, OK])})
    limiter = TokenBucket(
        rate=100.0, capacity=10, name="polygon:test", clock=manual_clock.now, sleep=manual_clock.sleep
    )
    with make_client(server, manual_clock, http_metrics, limiter=limiter) as http:
        http.get("x", "/v2/x")
        assert manual_clock.sleeps == [5.0]  # the retry slept; the limiter's block had passed by then
        assert limiter.stats.waits == 0
        limiter.penalize(4.0)  # as another thread's 429 would
        http.get("x", "/v2/x")
    assert manual_clock.sleeps == [5.0, 4.0]


def test_5xx_storm_opens_the_breaker_and_it_recovers_through_half_open(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    healthy = threading.Event()
    server = serve({"/v2/x": Script([lambda r: OK if healthy.is_set() else storm()])})
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30.0, name="polygon", clock=manual_clock.now)
    with make_client(server, manual_clock, http_metrics, attempts=2, breaker=breaker) as http:
        with pytest.raises(ServerError) as first:
            http.get("x", "/v2/x")
        assert first.value.status == 503 and "upstream overloaded" in str(first.value)
        with pytest.raises(CircuitOpen) as opened:
            http.get("x", "/v2/x")  # the third failure opens it; the retry is refused without a request
        assert opened.value.retry_at == breaker.retry_at and opened.value.retry_at > manual_clock.now()
        sent = server.log.by_route["v2_x"]
        assert sent == 3
        with pytest.raises(CircuitOpen):
            http.get("x", "/v2/x")
        assert server.log.by_route["v2_x"] == sent  # open: nothing reached the server

        healthy.set()
        manual_clock.advance(30.0)
        assert breaker.state is CircuitState.HALF_OPEN
        assert http.get("x", "/v2/x").status == 200  # the probe
        assert breaker.state is CircuitState.CLOSED

        healthy.clear()
        for _ in range(2):
            with pytest.raises((ServerError, CircuitOpen)):
                http.get("x", "/v2/x")
        assert breaker.state is CircuitState.OPEN
        manual_clock.advance(30.0)
        with pytest.raises(CircuitOpen):
            http.get("x", "/v2/x")  # the probe fails: open again, its retry refused
        assert breaker.state is CircuitState.OPEN

    gauge = http_metrics.value("ingestion_circuit_state", breaker="polygon")
    assert gauge == 2
    assert http_metrics.value("ingestion_circuit_transitions_total", breaker="polygon", state="open") == 3
    assert http_metrics.value("ingestion_circuit_transitions_total", breaker="polygon", state="closed") == 1


def test_4xx_answers_do_not_trip_the_breaker(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    server = serve({"/v2/x": Script([Response.json({"status": "NOT_FOUND"}, status=404)])})
    breaker = CircuitBreaker(failure_threshold=1, name="polygon", clock=manual_clock.now)
    with make_client(server, manual_clock, http_metrics, breaker=breaker) as http:
        for _ in range(3):
            with pytest.raises(ClientError):
                http.get("x", "/v2/x")
    assert breaker.state is CircuitState.CLOSED
    assert server.log.by_route["v2_x"] == 3  # and never retried
    assert manual_clock.sleeps == []


def test_connection_reset_is_retried(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    server = serve({"/v2/x": Script([Response(reset=True), Response(reset=True), OK])})
    with make_client(server, manual_clock, http_metrics) as http:
        page = http.get("x", "/v2/x")
    assert page.attempts == 3 and manual_clock.sleeps == [1.0, 2.0]
    assert http_metrics.value("ingestion_http_requests_total", vendor="polygon", endpoint="x", status="error") == 2


def test_truncated_body_is_retried_and_never_cached(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    body = Response.json({"status": "OK", "results": [{"t": i} for i in range(200)]})
    cut = Response(200, body.body, body.headers, truncate_to=100)
    script = Script([cut, cut, body])
    server = serve({"/v2/x": script})
    cache = ResponseCache(clock=manual_clock.now)
    with make_client(server, manual_clock, http_metrics, attempts=2, cache=cache) as http:
        with pytest.raises(TransportError) as info:
            http.get("x", "/v2/x", cache_ttl=60)
        assert info.value.vendor == "polygon" and info.value.endpoint == "x"
        assert cache.get("polygon", "x", "/v2/x", {}, scope=http.cache_scope(), now=manual_clock.now()) is None
        page = http.get("x", "/v2/x", cache_ttl=60)
    assert len(page.json()["results"]) == 200
    assert script.calls == 3


def test_slow_response_hits_the_read_timeout(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5.0)
        return Response(reset=True)  # the client has given up by now; writing would only hit a closed socket

    server = serve({"/v2/x": Script([slow])})
    http = make_client(server, manual_clock, http_metrics, attempts=2)
    http.timeouts = Timeouts(connect=2.0, read=0.2)
    try:
        with pytest.raises(TransportError, match="ReadTimeout"):
            http.get("x", "/v2/x")
    finally:
        release.set()
        http.close()
    assert manual_clock.sleeps == [1.0]


@pytest.mark.parametrize(
    ("route_response", "error", "words"),
    [
        (None, AuthError, "authentication failed: the API key was rejected or missing (set POLYGON_API_KEY)"),
        (
            Response.json(
                {"status": "NOT_AUTHORIZED", "request_id": "abc123", "message": "You are not entitled to this data"},
                status=403,
            ),
            NotEntitled,
            "You are not entitled to this data",
        ),
    ],
)
def test_401_and_403_fail_at_once_with_a_clear_message(
    serve: ServerFactory,
    manual_clock: ManualClock,
    http_metrics: HTTPMetrics,
    route_response: Response | None,
    error: type[VendorError],
    words: str,
) -> None:
    server = serve({"/v2/x": Script([route_response or OK])})
    http = make_client(server, manual_clock, http_metrics)
    if route_response is None:
        http.auth = BearerAuth("pk_wrong_key_123456")
    with pytest.raises(error) as info:
        http.get("x", "/v2/x")
    http.close()
    assert words in str(info.value)
    assert info.value.vendor == "polygon" and info.value.endpoint == "x"
    assert info.value.status == (401 if error is AuthError else 403)
    if error is NotEntitled:
        assert info.value.request_id == "abc123"
    assert sum(server.log.by_status.values()) == 1 and manual_clock.sleeps == []


def test_cache_hit_makes_no_request(serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics) -> None:
    server = serve({"/v2/x": Script([OK])})
    with make_client(server, manual_clock, http_metrics, cache=ResponseCache(clock=manual_clock.now)) as http:
        first = http.get("x", "/v2/x", {"a": 1, "b": 2}, cache_ttl=60)
        second = http.get("x", "/v2/x", {"b": 2, "a": 1}, cache_ttl=60)
        assert not first.from_cache and second.from_cache and second.body == first.body
        assert server.log.by_route["v2_x"] == 1
        http.get("x", "/v2/x", {"a": 1, "b": 2}, cache_ttl=60, bypass_cache=True)
        assert server.log.by_route["v2_x"] == 2
        http.get("x", "/v2/x", {"a": 1, "b": 2})  # no TTL: the caller did not ask for caching
        assert server.log.by_route["v2_x"] == 3
    assert http_metrics.value("ingestion_http_cache_total", vendor="polygon", endpoint="x", result="hit") == 1
    assert http_metrics.value("ingestion_http_cache_total", vendor="polygon", endpoint="x", result="miss") == 1


def test_errors_and_rejected_pages_are_never_cached(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    partial = Response.json({"status": "ERROR", "results": []})
    script = Script([storm(500), partial, OK])
    server = serve({"/v2/x": script})
    cache = ResponseCache(clock=manual_clock.now)

    def complete(result: HTTPResult) -> bool:
        return bool(result.json()["status"] == "OK")

    with make_client(server, manual_clock, http_metrics, attempts=1, cache=cache) as http:
        with pytest.raises(ServerError):
            http.get("x", "/v2/x", cache_ttl=60, cache_if=complete)
        assert http.get("x", "/v2/x", cache_ttl=60, cache_if=complete).json()["status"] == "ERROR"
        assert http.get("x", "/v2/x", cache_ttl=60, cache_if=complete).json()["status"] == "OK"
        assert http.get("x", "/v2/x", cache_ttl=60, cache_if=complete).from_cache
    assert script.calls == 3


def test_cache_keys_hold_no_secret(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics, redis_client: redis.Redis, test_key: str
) -> None:
    server = serve({"/v2/x": Script([OK])})
    with make_client(server, manual_clock, http_metrics, cache=ResponseCache(redis_client)) as http:
        http.get("x", "/v2/x", {"ticker": "AAPL", "apiKey": test_key}, cache_ttl=60)
        assert http.get("x", "/v2/x", {"ticker": "AAPL"}, cache_ttl=60).from_cache
    keys = [k.decode() for k in redis_client.keys("*")]
    assert keys and all(test_key not in k for k in keys)
    assert all(test_key.encode() not in (redis_client.get(k) or b"") for k in keys)


def test_response_hook_feeds_vendor_counters_to_the_limiter(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    quota = Response.json(
        {"data": []}, headers={"x-uw-req-per-minute-remaining": "0", "x-uw-req-per-minute-reset": "10"}
    )
    server = serve({"/api/x": Script([quota, OK])})
    limiter = TokenBucket(rate=2.0, capacity=120, name="uw:test", clock=manual_clock.now, sleep=manual_clock.sleep)

    def observe(result: HTTPResult) -> None:
        remaining = result.headers.get("x-uw-req-per-minute-remaining")
        reset = result.headers.get("x-uw-req-per-minute-reset")
        limiter.observe(int(remaining) if remaining else None, float(reset) if reset else None)

    with make_client(server, manual_clock, http_metrics, limiter=limiter, on_response=[observe]) as http:
        http.get("flow", "/api/x")
        http.get("flow", "/api/x")
    assert manual_clock.sleeps == [10.0]
    assert http_metrics.value("ingestion_ratelimit_waits_total", vendor="polygon", limiter="uw:test") == 1


def test_error_mapper_turns_an_exhausted_day_into_quota_exhausted(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    spent = Response.json(
        {"msg": "daily limit"}, status=429, headers={"x-uw-daily-req-count": "15000", "x-uw-token-req-limit": "15000"}
    )
    server = serve({"/api/x": Script([spent])})

    def quota(result: HTTPResult) -> VendorError | None:
        if result.status == 429 and result.headers.get("x-uw-daily-req-count") == result.headers.get(
            "x-uw-token-req-limit"
        ):
            return QuotaExhausted("daily quota spent", vendor="uw", endpoint=result.endpoint, status=429)
        return None

    with make_client(server, manual_clock, http_metrics, error_mapper=quota) as http, pytest.raises(QuotaExhausted):
        http.get("flow", "/api/x")
    assert server.log.by_status == {429: 1} and manual_clock.sleeps == []


def run_requests(http: VendorHTTP, n: int, threads: int = 1) -> None:
    def work(count: int) -> None:
        for _ in range(count):
            http.get("x", "/v2/x")

    workers = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def sim_client(server: SimServer, http_metrics: HTTPMetrics, limiter: TokenBucket | None) -> VendorHTTP:
    # The client lives on the server's simulated clock; "sleeping" moves that clock, so windows pass instantly.
    return VendorHTTP(
        "polygon",
        server.url,
        auth=BearerAuth(TEST_KEY),
        retry=RetryPolicy(sleep=server.clock.advance, wall_clock=server.clock.now),
        limiter=limiter,
        metrics=http_metrics,
    )


def sim_bucket(server: SimServer, **kw: Any) -> TokenBucket:
    return TokenBucket.per_window(5, 60.0, clock=server.clock.now, sleep=server.clock.advance, **kw)


def test_token_bucket_keeps_the_server_under_its_limit(serve: ServerFactory, http_metrics: HTTPMetrics) -> None:
    server = serve({"/v2/x": Script([OK])})
    with sim_client(server, http_metrics, sim_bucket(server, name="polygon:k")) as http:
        run_requests(http, 20)
    assert server.log.by_key[TEST_KEY] == 20
    assert server.log.max_in_window(TEST_KEY, 60.0) <= 5

    control = serve({"/v2/x": Script([OK])})
    with sim_client(control, http_metrics, None) as http:
        run_requests(http, 20)
    assert control.log.max_in_window(TEST_KEY, 60.0) > 5  # the limit is real: without the bucket it is broken


@pytest.mark.slow
def test_token_bucket_shared_by_threads_keeps_the_server_under_its_limit(
    serve: ServerFactory, http_metrics: HTTPMetrics
) -> None:
    """Threads really wait here (a minute of simulated time is one real second), because one thread's simulated
    sleep must not move time under another thread's request in flight. About 3 s, so marked slow."""
    clock = SimClock(speed=60.0)
    server = serve({"/v2/x": Script([OK])}, clock=clock)
    bucket = TokenBucket.per_window(5, 60.0, name="polygon:k", clock=clock.now, sleep=lambda s: time.sleep(s / 60.0))
    with sim_client(server, http_metrics, bucket) as http:
        run_requests(http, 12, threads=4)
    assert server.log.by_key[TEST_KEY] == 12
    assert server.log.max_in_window(TEST_KEY, 60.0) <= 5


def test_redis_shared_bucket_keeps_two_clients_under_one_limit(
    serve: ServerFactory, http_metrics: HTTPMetrics, redis_client: redis.Redis
) -> None:
    server = serve({"/v2/x": Script([OK])})
    one = sim_client(server, http_metrics, sim_bucket(server, name="polygon:k", redis=redis_client))
    two = sim_client(server, http_metrics, sim_bucket(server, name="polygon:k", redis=redis_client))
    for i in range(16):
        (one if i % 2 else two).get("x", "/v2/x")
    assert server.log.max_in_window(TEST_KEY, 60.0) <= 5
    one.close()
    two.close()


def test_no_log_line_exception_or_metric_label_carries_the_key(
    serve: ServerFactory,
    manual_clock: ManualClock,
    http_metrics: HTTPMetrics,
    test_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = serve({"/v2/x": Script([Response(reset=True), storm(502), storm(502), storm(502)])})
    failures: list[str] = []
    with caplog.at_level(logging.DEBUG), make_client(server, manual_clock, http_metrics, attempts=3) as http:
        calls: list[Callable[[], object]] = [
            lambda: http.get("x", f"/v2/x?apiKey={test_key}"),
            lambda: http.get("x", "/v2/missing", {"token": test_key}),
            lambda: http.get(test_key, "/v2/x"),  # even a careless endpoint label is masked
        ]
        for call in calls:
            with pytest.raises(Exception) as info:
                call()
            failures.append(f"{info.value!s} {info.value!r} {info.value.__cause__!r}")
    assert caplog.records, "the retries should have logged"
    assert test_key not in caplog.text
    assert all(test_key not in text for text in failures)
    for family in http_metrics.registry.collect():
        for sample in family.samples:
            assert all(test_key not in value for value in sample.labels.values())


def test_rate_limited_error_carries_retry_after(
    serve: ServerFactory, manual_clock: ManualClock, http_metrics: HTTPMetrics
) -> None:
    server = serve({"/v2/x": Script([Response(429, b"{}", {"Retry-After": "9"})])})
    with make_client(server, manual_clock, http_metrics, attempts=1) as http, pytest.raises(RateLimited) as info:
        http.get("x", "/v2/x")
    assert info.value.retry_after == 9.0 and info.value.status == 429


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="base_url"):
        VendorHTTP("polygon", "api.polygon.io")


def test_public_surface_is_exactly_all() -> None:
    exported = ingestion.http.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(ingestion.http, name) for name in exported)
    public = {n for n in vars(ingestion.http) if not n.startswith("_")} - {
        "auth",
        "body",
        "breaker",
        "cache",
        "client",
        "clock",
        "deadline",
        "environ",
        "exchange",
        "metrics",
        "paging",
        "ratelimit",
        "redaction",
        "redis_guard",
        "result",
        "retry",
        "scope",
        "session",
        "status",
    }
    assert public == set(exported)
