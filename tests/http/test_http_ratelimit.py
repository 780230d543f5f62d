"""Token bucket: the per-window guarantee, adaptation to the vendor, threads, and Redis sharing (real Redis)."""

from __future__ import annotations

import threading

import pytest
import redis

from ingestion.errors import RateLimited
from ingestion.http import ManualClock, TokenBucket
from ingestion.simulators.http import RequestLog


def max_in_window(stamps: list[float], window: float) -> int:
    log = RequestLog()
    for t in stamps:
        log.record("r", "k", 200, t)
    return log.max_in_window("k", window)


def grant_times(bucket: TokenBucket, clock: ManualClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        bucket.acquire()
        times.append(clock.now())
    return times


@pytest.mark.parametrize(("limit", "window", "burst"), [(5, 60.0, None), (120, 60.0, None), (10, 1.0, 10), (1, 5.0, 1)])
def test_never_more_than_limit_in_any_window(manual_clock: ManualClock, limit: int, window: float, burst: int) -> None:
    bucket = TokenBucket.per_window(limit, window, burst=burst, clock=manual_clock.now, sleep=manual_clock.sleep)
    times = grant_times(bucket, manual_clock, limit * 4)
    assert max_in_window(times, window) <= limit
    assert bucket.stats.granted == limit * 4
    assert bucket.stats.waits > 0 and bucket.stats.waited_seconds == pytest.approx(sum(manual_clock.sleeps))


def test_burst_goes_at_once_then_steady_rate(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, clock=manual_clock.now, sleep=manual_clock.sleep)
    start = manual_clock.now()
    times = [t - start for t in grant_times(bucket, manual_clock, 6)]
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 1.5])


def test_penalize_holds_every_caller_for_retry_after(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=100.0, capacity=10, clock=manual_clock.now, sleep=manual_clock.sleep)
    bucket.penalize(7.0)
    assert bucket.try_acquire() == pytest.approx(7.0)
    assert bucket.acquire() == pytest.approx(7.0)


def test_penalize_without_retry_after_uses_the_default(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=100.0, capacity=10, clock=manual_clock.now, default_penalty=2.5)
    bucket.penalize(None)
    assert bucket.try_acquire() == pytest.approx(2.5)


def test_observe_caps_tokens_at_what_the_vendor_says_remain(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=0.001, capacity=50, clock=manual_clock.now)
    bucket.observe(remaining=2, reset_after=30.0)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() > 0.0


def test_observe_zero_remaining_blocks_until_reset(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=10.0, capacity=50, clock=manual_clock.now)
    bucket.observe(remaining=0, reset_after=12.0)
    assert bucket.try_acquire() == pytest.approx(12.0)
    manual_clock.advance(12.0)
    assert bucket.try_acquire() == 0.0
    bucket.observe(remaining=None)  # no header, no change
    assert bucket.try_acquire() == 0.0


def test_acquire_timeout_raises_instead_of_waiting(manual_clock: ManualClock) -> None:
    bucket = TokenBucket(rate=1.0, capacity=1, name="uw:abc", clock=manual_clock.now, sleep=manual_clock.sleep)
    bucket.penalize(600.0)
    with pytest.raises(RateLimited) as info:
        bucket.acquire(timeout=5.0)
    assert info.value.retry_after == pytest.approx(600.0)
    assert manual_clock.sleeps == []


def test_threads_share_one_bucket(manual_clock: ManualClock) -> None:
    # Each thread notes the clock reading its granting try_acquire used: the grant's true time, whatever other
    # threads' sleeps do to the shared manual clock afterwards.
    seen = threading.local()

    def clock() -> float:
        seen.now = manual_clock.now()
        return float(seen.now)

    bucket = TokenBucket.per_window(10, 1.0, burst=2, clock=clock, sleep=manual_clock.sleep)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            bucket.acquire()
            with lock:
                times.append(seen.now)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 100
    assert bucket.stats.granted == 100
    assert max_in_window(times, 1.0) <= 10


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)
    with pytest.raises(ValueError):
        TokenBucket.per_window(5, 60.0, burst=6)


def test_lua_bucket_matches_the_local_one(redis_client: redis.Redis) -> None:
    """The Redis script and the in-process code are one algorithm written twice; keep them equal."""
    clock = ManualClock()
    local = TokenBucket(rate=3.0, capacity=4, name="parity", clock=clock.now)
    shared = TokenBucket(rate=3.0, capacity=4, name="parity", clock=clock.now, redis=redis_client)
    steps = [0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.3, 0.05, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7]
    for i, dt in enumerate(steps):
        clock.advance(dt)
        if i == 8:
            local.penalize(1.25)
            shared.penalize(1.25)
        if i == 11:
            local.observe(remaining=1, reset_after=5)
            shared.observe(remaining=1, reset_after=5)
        assert shared.try_acquire() == pytest.approx(local.try_acquire(), abs=1e-6), f"step {i}"


def test_redis_bucket_is_shared_by_two_instances(redis_client: redis.Redis) -> None:
    clock = ManualClock()
    kw = {"name": "polygon:abcd", "clock": clock.now, "sleep": clock.sleep, "redis": redis_client}
    one = TokenBucket.per_window(5, 60.0, burst=2, **kw)  # type: ignore[arg-type]
    two = TokenBucket.per_window(5, 60.0, burst=2, **kw)  # type: ignore[arg-type]
    times = []
    for i in range(20):
        (one if i % 2 else two).acquire()
        times.append(clock.now())
    assert max_in_window(times, 60.0) <= 5
    one.penalize(30.0)
    assert two.try_acquire() == pytest.approx(30.0)
    two.reset()
    assert one.try_acquire() == 0.0
    assert redis_client.ttl("ingestion:ratelimit:polygon:abcd") > 0


def test_two_unshared_buckets_would_exceed_the_limit() -> None:
    """The control for the test above: without Redis, two processes each think they own the budget."""
    clock = ManualClock()
    one = TokenBucket.per_window(5, 60.0, burst=2, clock=clock.now, sleep=clock.sleep)
    two = TokenBucket.per_window(5, 60.0, burst=2, clock=clock.now, sleep=clock.sleep)
    times = []
    for i in range(20):
        (one if i % 2 else two).acquire()
        times.append(clock.now())
    assert max_in_window(times, 60.0) > 5
