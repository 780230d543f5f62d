"""Retry decisions and backoff math, with an injected sleep: nothing here really waits."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from ingestion.errors import (
    AuthError,
    CircuitOpen,
    ClientError,
    NotEntitled,
    QuotaExhausted,
    RateLimited,
    SchemaError,
    ServerError,
    TransportError,
)
from ingestion.http import ManualClock, RetryPolicy, is_retryable, parse_retry_after


def policy(clock: ManualClock, **kw: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, wall_clock=clock.now, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    http_date = format_datetime(datetime.fromtimestamp(now + 42, tz=UTC), usegmt=True)
    assert parse_retry_after(http_date, now) == pytest.approx(42.0)
    past = format_datetime(datetime.fromtimestamp(now - 100, tz=UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after("-3", now) == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad, now) is None


def test_which_errors_are_retried() -> None:
    assert is_retryable(RateLimited("x", retry_after=1))
    assert is_retryable(ServerError("x", status=503))
    assert is_retryable(TransportError("x"))
    for never in (
        QuotaExhausted("x"),
        AuthError("x", status=401),
        NotEntitled("x", status=403),
        ClientError("x", status=404),
        CircuitOpen("x"),
        SchemaError("x"),
        ValueError("x"),
    ):
        assert not is_retryable(never), never


def test_backoff_without_jitter_is_exponential_and_capped(manual_clock: ManualClock) -> None:
    p = policy(manual_clock, base_delay=0.5, multiplier=2.0, max_delay=3.0, jitter=0.0)
    assert [p.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_band(manual_clock: ManualClock) -> None:
    p = policy(manual_clock, base_delay=1.0, multiplier=2.0, max_delay=60.0, jitter=0.5)
    waits = [p.backoff(3) for _ in range(500)]
    assert all(2.0 <= w <= 4.0 for w in waits)
    assert len(set(waits)) > 100  # really spread, not a constant


def test_retry_after_is_honoured_and_clamped(manual_clock: ManualClock) -> None:
    p = policy(manual_clock, max_retry_after=10.0, jitter=0.0, base_delay=0.5)
    assert p.wait_for(RateLimited("x", retry_after=3.0), 1) == 3.0
    assert p.wait_for(RateLimited("x", retry_after=3600.0), 1) == 10.0
    assert p.wait_for(RateLimited("x", retry_after=None), 2) == 1.0  # no header: ordinary backoff
    assert policy(manual_clock, default_rate_limit_wait=5.0).wait_for(RateLimited("x"), 1) == 5.0


def test_call_retries_until_success_and_sleeps_only_through_the_injected_sleep(manual_clock: ManualClock) -> None:
    outcomes: list[Exception | str] = [ServerError("boom", status=502), RateLimited("slow", retry_after=4.0), "ok"]
    seen: list[tuple[str, int, float]] = []

    def fn() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    p = policy(manual_clock, base_delay=1.0, jitter=0.0)
    assert p.call(fn, on_retry=lambda e, n, w: seen.append((type(e).__name__, n, w))) == "ok"
    assert manual_clock.sleeps == [1.0, 4.0]
    assert seen == [("ServerError", 1, 1.0), ("RateLimited", 2, 4.0)]


@pytest.mark.parametrize("error", [AuthError("no", status=401), ClientError("bad", status=422), QuotaExhausted("day")])
def test_non_retryable_errors_raise_at_once(manual_clock: ManualClock, error: Exception) -> None:
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        policy(manual_clock).call(fn)
    assert calls == 1
    assert manual_clock.sleeps == []


def test_gives_up_after_max_attempts_with_the_last_error(manual_clock: ManualClock) -> None:
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise ServerError(f"storm {calls}", status=500)

    with pytest.raises(ServerError, match="storm 3"):
        policy(manual_clock, max_attempts=3, jitter=0.0, base_delay=1.0).call(fn)
    assert calls == 3
    assert manual_clock.sleeps == [1.0, 2.0]


def test_total_wait_budget_stops_before_overrunning(manual_clock: ManualClock) -> None:
    def fn() -> None:
        raise RateLimited("x", retry_after=4.0)

    with pytest.raises(RateLimited):
        policy(manual_clock, max_attempts=100, max_total_wait=10.0).call(fn)
    assert manual_clock.sleeps == [4.0, 4.0]  # a third 4 s wait would pass the 10 s budget


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
