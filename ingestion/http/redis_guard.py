"""Degrading to in-process state when Redis goes away: one rule for the cache, the breaker and the limiter.

Redis holds shared state (cached responses, breaker snapshots, token buckets) so that processes cooperate. It is an
optimisation, not a dependency of a job: when it fails, each of those concerns carries on with its in-process
counterpart, logs one warning, and tries Redis again only after a cool-down, so an outage does not add a connect
timeout to every request. State kept in process during the outage is not merged back: the shared copy simply takes
over again when Redis answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from ingestion.http.clock import Clock, monotonic_clock

T = TypeVar("T")

DEFAULT_RETRY_AFTER = 30.0
"""Seconds to stay in process after a Redis error before trying Redis again."""


class RedisGuard:
    """Runs an operation against Redis, or its in-process fallback while Redis is failing.

    Args:
        what: names the concern in the warning (``"response cache"``, ``"circuit polygon:…"``).
        logger: where the one warning goes (the concern's own logger, so existing log filters keep working).
        clock: seconds for the cool-down.
        retry_after: seconds to skip Redis after an error.
    """

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        clock: Clock = monotonic_clock,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self.what = what
        self._log = logger
        self._clock = clock
        self.retry_after = retry_after
        self._down_until = float("-inf")
        self._warned = False
        self._lock = threading.Lock()
        self.failures = 0

    @property
    def available(self) -> bool:
        """False during the cool-down after a Redis error."""
        return self._clock() >= self._down_until

    def failed(self, exc: redis.RedisError) -> None:
        """Record a Redis error: stay in process for ``retry_after`` seconds; warn the first time only."""
        with self._lock:
            self._down_until = self._clock() + self.retry_after
            self.failures += 1
            first = not self._warned
            self._warned = True
        if first:
            self._log.warning("%s: Redis unavailable (%s); using in-process state", self.what, type(exc).__name__)

    def run(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        """``shared()`` when Redis is usable and answers, else ``local()``."""
        if self.available:
            try:
                return shared()
            except redis.RedisError as exc:
                self.failed(exc)
        return local()
