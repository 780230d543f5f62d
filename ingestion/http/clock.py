"""Time as a value: the clocks and sleepers every policy of the HTTP core is built with.

Policies never call :func:`time.sleep` or :func:`time.time` directly. They take a ``clock`` (seconds as a float) and a
``sleep`` (seconds to wait), so tests pass a :class:`ManualClock` whose ``sleep`` only moves its own time forward:
backoff and rate-limit math is then exercised without a single real pause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns the current time in seconds. Wall clocks are epoch seconds UTC; monotonic clocks have an arbitrary origin."""

Sleep = Callable[[float], None]
"""Waits the given number of seconds (or, in tests, pretends to)."""

wall_clock: Clock = time.time
"""Epoch seconds UTC. Used where time must agree across processes (Redis-shared state) or with HTTP dates."""

monotonic_clock: Clock = time.monotonic
"""Never goes backwards; the default for in-process rate limiting and breakers."""

real_sleep: Sleep = time.sleep


class ManualClock:
    """A clock that only moves when told to: ``sleep(s)`` advances it by ``s`` and records the request.

    Thread-safe. Use ``clock.now`` as a :data:`Clock` and ``clock.sleep`` as a :data:`Sleep`. ``sleeps`` lists every
    requested pause (seconds) so tests can assert on backoff sequences rather than on elapsed time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (time passing elsewhere)."""
        with self._lock:
            self._now += seconds
