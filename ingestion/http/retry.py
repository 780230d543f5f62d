"""When and how long to retry: tenacity, with the decisions written as small pure functions.

Retried: 429 (:class:`RateLimited`, but never :class:`QuotaExhausted`), 5xx (:class:`ServerError`) and
connection/read failures (:class:`TransportError`). Never retried: every other 4xx, auth and entitlement errors,
:class:`CircuitOpen` (the breaker exists to stop calls, so waiting it out in a loop would defeat it) and schema errors.

The wait before attempt ``n + 1`` is the vendor's ``Retry-After`` when it sent one (clamped to
``max_retry_after``), otherwise exponential backoff ``base_delay * multiplier ** (n - 1)`` capped at ``max_delay``
with jitter that spreads synchronized clients. Sleep, wall clock and random source are injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from ingestion.errors import QuotaExhausted, RateLimited, ServerError, TransportError
from ingestion.http.clock import Clock, Sleep, real_sleep, wall_clock

T = TypeVar("T")

RetryHook = Callable[[BaseException, int, float], None]
"""Called before each retry sleep with the error, the attempt number that failed (1-based) and the wait (s)."""


def is_retryable(exc: BaseException) -> bool:
    """The single place that decides whether an error is worth another attempt."""
    if isinstance(exc, QuotaExhausted):
        return False
    return isinstance(exc, RateLimited | ServerError | TransportError)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (``now`` is epoch seconds UTC).

    Returns None when absent or unparseable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means the zone was "-0000"
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    # NaN and inf are valid floats but not valid waits.
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings as a value. ``max_attempts`` counts the first try; all durations are seconds.

    ``jitter`` is the fraction of each backoff that is randomized: the wait is uniform in
    ``[delay * (1 - jitter), delay]``, so it never exceeds the capped exponential delay.
    ``max_total_wait`` stops retrying rather than sleep past it in total (deterministic: counts requested sleeps, not
    elapsed time). ``default_rate_limit_wait`` is used for a 429 that carried no ``Retry-After``.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 120.0
    default_rate_limit_wait: float | None = None
    max_total_wait: float | None = 300.0
    sleep: Sleep = field(default=real_sleep, compare=False)
    wall_clock: Clock = field(default=wall_clock, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (the first try counts)")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def backoff(self, attempt: int) -> float:
        """The wait (s) after failed attempt ``attempt`` (1-based) when the vendor gave no ``Retry-After``."""
        delay = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        return delay * (1.0 - self.jitter) + self.rng.uniform(0.0, delay * self.jitter)

    def clamp_retry_after(self, seconds: float) -> float:
        """A vendor's ``Retry-After`` bounded to ``[0, max_retry_after]``, so a bad header cannot park us for hours."""
        return min(max(0.0, seconds), self.max_retry_after)

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """The wait (s) before the attempt after ``attempt``, given the error it failed with."""
        if isinstance(exc, RateLimited):
            told = exc.retry_after if exc.retry_after is not None else self.default_rate_limit_wait
            if told is not None:
                return self.clamp_retry_after(told)
        return self.backoff(attempt)

    def call(self, fn: Callable[[], T], on_retry: RetryHook | None = None) -> T:
        """Run ``fn`` until it succeeds, raises a non-retryable error, or the budget is spent (then re-raise)."""

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(exc, state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            # idle_for sums the sleeps requested so far (upcoming_sleep is the next one): a budget a manual clock can
            # test exactly. Stop rather than start a wait that would overrun it.
            spent = self.max_total_wait is not None and state.idle_for + state.upcoming_sleep > self.max_total_wait
            return spent or state.attempt_number >= self.max_attempts

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and state.next_action is not None:
                exc = state.outcome.exception()
                if exc is not None:
                    on_retry(exc, state.attempt_number, state.next_action.sleep)

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(is_retryable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)
