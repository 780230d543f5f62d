"""Circuit breaker transitions on a manual clock, decorator use, and a breaker shared through real Redis."""

from __future__ import annotations

import pytest
import redis

from ingestion.errors import CircuitOpen, ClientError
from ingestion.http import CircuitBreaker, CircuitState, ManualClock


def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow_request()
        breaker.on_failure()


def test_closed_open_half_open_closed(manual_clock: ManualClock) -> None:
    transitions: list[tuple[str, str]] = []
    b = CircuitBreaker(failure_threshold=3, recovery_timeout=30.0, name="t", clock=manual_clock.now)
    b.add_listener(lambda name, old, new: transitions.append((old.value, new.value)))
    trip(b, 2)
    assert b.state is CircuitState.CLOSED and b.failure_count == 2
    trip(b, 1)
    assert b.state is CircuitState.OPEN
    assert not b.allow_request()
    assert b.retry_at == manual_clock.now() + 30.0

    manual_clock.advance(29.9)
    assert b.state is CircuitState.OPEN
    manual_clock.advance(0.1)
    assert b.state is CircuitState.HALF_OPEN
    assert b.allow_request()  # the one probe
    assert not b.allow_request()  # a second caller is refused while the probe is out
    b.on_success()
    assert b.state is CircuitState.CLOSED and b.failure_count == 0
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_with_a_fresh_timer(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0, name="t", clock=manual_clock.now)
    trip(b, 1)
    manual_clock.advance(10.0)
    assert b.allow_request()
    b.on_failure()
    assert b.state is CircuitState.OPEN
    assert b.retry_at == manual_clock.now() + 10.0
    manual_clock.advance(9.0)
    assert not b.allow_request()


def test_success_resets_the_consecutive_count(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(failure_threshold=3, name="t", clock=manual_clock.now)
    trip(b, 2)
    b.on_success()
    trip(b, 2)
    assert b.state is CircuitState.CLOSED


def test_success_threshold_needs_several_probes(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5.0, name="uw", success_threshold=2, clock=manual_clock.now
    )
    trip(b, 1)
    manual_clock.advance(5.0)
    assert b.allow_request()
    b.on_success()
    assert b.state is CircuitState.HALF_OPEN
    assert b.allow_request()
    b.on_success()
    assert b.state is CircuitState.CLOSED


def test_a_probe_that_never_reports_does_not_wedge_the_breaker(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0, name="t", clock=manual_clock.now)
    trip(b, 1)
    manual_clock.advance(5.0)
    assert b.allow_request()  # the caller dies without on_success/on_failure
    assert not b.allow_request()
    manual_clock.advance(5.0)
    assert b.allow_request()


def test_reset_closes(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(failure_threshold=1, name="t", clock=manual_clock.now)
    trip(b, 1)
    b.reset()
    assert b.state is CircuitState.CLOSED and b.allow_request()


def test_decorator_counts_failures_and_raises_typed_circuit_open(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, name="polygon", clock=manual_clock.now)
    calls = 0

    @b
    def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if x < 0:
            raise RuntimeError("down")
        return x * 2

    assert flaky(2) == 4
    for _ in range(2):
        with pytest.raises(RuntimeError):
            flaky(-1)
    with pytest.raises(CircuitOpen) as info:
        flaky(3)
    assert calls == 3  # the refused call never ran
    assert info.value.retry_at == manual_clock.now() + 30.0
    assert info.value.vendor == "polygon"
    assert "circuit 'polygon' is open" in str(info.value)
    manual_clock.advance(30.0)
    assert flaky(5) == 10
    assert b.state is CircuitState.CLOSED


def test_is_failure_lets_caller_errors_through(manual_clock: ManualClock) -> None:
    b = CircuitBreaker(
        failure_threshold=1, name="t", clock=manual_clock.now, is_failure=lambda e: not isinstance(e, ClientError)
    )

    def bad_request() -> None:
        raise ClientError("404", status=404)

    for _ in range(3):
        with pytest.raises(ClientError):
            b.call(bad_request)
    assert b.state is CircuitState.CLOSED


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(recovery_timeout=-1)


def test_breaker_state_is_shared_through_redis(redis_client: redis.Redis, manual_clock: ManualClock) -> None:
    one = CircuitBreaker(
        failure_threshold=3, recovery_timeout=30.0, name="shared", clock=manual_clock.now, redis=redis_client
    )
    two = CircuitBreaker(
        failure_threshold=3, recovery_timeout=30.0, name="shared", clock=manual_clock.now, redis=redis_client
    )
    assert one.shared and two.shared
    one.on_failure()
    two.on_failure()
    one.on_failure()  # three failures across two "processes" open the shared circuit
    assert two.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        two.check("aggs")

    manual_clock.advance(30.0)
    assert one.allow_request()  # one probe in the whole fleet
    assert not two.allow_request()
    one.on_success()
    assert two.state is CircuitState.CLOSED
    assert two.allow_request()

    two.on_failure()
    two.on_failure()
    two.on_failure()
    one.reset()
    assert two.state is CircuitState.CLOSED
    assert redis_client.ttl("ingestion:breaker:shared") > 0  # idle state expires


def test_unrelated_names_do_not_share(redis_client: redis.Redis, manual_clock: ManualClock) -> None:
    a = CircuitBreaker(failure_threshold=1, name="a", clock=manual_clock.now, redis=redis_client)
    b = CircuitBreaker(failure_threshold=1, name="b", clock=manual_clock.now, redis=redis_client)
    a.on_failure()
    assert a.state is CircuitState.OPEN
    assert b.state is CircuitState.CLOSED
