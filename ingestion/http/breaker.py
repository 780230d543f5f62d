"""Circuit breaker: stop calling a vendor that keeps failing, then probe it back to health.

States and transitions (the seed's API, with a typed :class:`~ingestion.errors.CircuitOpen`)::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN   --(recovery_timeout seconds pass)-----------> HALF_OPEN   (checked lazily on the next call)
    HALF_OPEN --(success_threshold successful probes)--> CLOSED
    HALF_OPEN --(a probe fails)------------------------> OPEN        (timer restarts)

At most ``half_open_max_calls`` probes are in flight while HALF_OPEN; other calls are refused as if OPEN.

The transitions are one pure function over a small :class:`_Snapshot`. Two backends apply it: an in-process one
under a lock, and a Redis one inside a ``WATCH``/``MULTI`` transaction, so several processes share one breaker
without a second copy of the logic. The Redis backend needs clocks that agree across processes: its default clock
is the wall clock (epoch seconds). When Redis fails mid-run, the breaker carries on in process from the last state
Redis returned, with one warning (:class:`~ingestion.http.redis_guard.RedisGuard`), rather than fail the job.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import redis

from ingestion.errors import CircuitOpen
from ingestion.http.clock import Clock, monotonic_clock, wall_clock
from ingestion.http.redis_guard import RedisGuard

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class CircuitState(StrEnum):
    """The breaker's state; the value is what metrics and logs show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[str, CircuitState, CircuitState], None]
"""Called with (breaker name, old state, new state) by the process that made the transition."""


@dataclass(frozen=True)
class _Snapshot:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    successes: int = 0
    probes: int = 0
    changed_at: float = 0.0


@dataclass(frozen=True)
class _Rules:
    failure_threshold: int
    recovery_timeout: float
    success_threshold: int
    half_open_max_calls: int

    def settle(self, s: _Snapshot, now: float) -> _Snapshot:
        """Apply the passage of time: an OPEN breaker whose timeout ran out is HALF_OPEN."""
        if s.state is CircuitState.OPEN and now >= s.changed_at + self.recovery_timeout:
            return _Snapshot(CircuitState.HALF_OPEN, changed_at=now)
        if (
            s.state is CircuitState.HALF_OPEN
            and s.probes >= self.half_open_max_calls
            and now >= s.changed_at + self.recovery_timeout
        ):
            # A probe that never reported back (its caller died) must not wedge the breaker half-open forever.
            return _Snapshot(CircuitState.HALF_OPEN, changed_at=now)
        return s

    def allow(self, s: _Snapshot, now: float) -> tuple[_Snapshot, bool]:
        s = self.settle(s, now)
        if s.state is CircuitState.CLOSED:
            return s, True
        if s.state is CircuitState.HALF_OPEN and s.probes < self.half_open_max_calls:
            return replace(s, probes=s.probes + 1), True
        return s, False

    def success(self, s: _Snapshot, now: float) -> _Snapshot:
        s = self.settle(s, now)
        if s.state is CircuitState.HALF_OPEN:
            done = s.successes + 1
            if done >= self.success_threshold:
                return _Snapshot(CircuitState.CLOSED, changed_at=now)
            return replace(s, successes=done, probes=max(0, s.probes - 1))
        if s.state is CircuitState.CLOSED:
            return replace(s, failures=0) if s.failures else s
        return s  # a late success of a call that started before the breaker opened proves nothing

    def failure(self, s: _Snapshot, now: float) -> _Snapshot:
        s = self.settle(s, now)
        if s.state is CircuitState.HALF_OPEN:
            return _Snapshot(CircuitState.OPEN, changed_at=now)
        if s.state is CircuitState.CLOSED:
            failures = s.failures + 1
            if failures >= self.failure_threshold:
                return _Snapshot(CircuitState.OPEN, failures=failures, changed_at=now)
            return replace(s, failures=failures)
        return s


class _Backend(Protocol):
    def update(self, fn: Callable[[_Snapshot], _Snapshot]) -> tuple[_Snapshot, _Snapshot]:
        """Atomically replace the snapshot with ``fn(old)``; returns (old, new)."""
        ...

    def read(self) -> _Snapshot: ...


class _LocalBackend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = _Snapshot()

    def update(self, fn: Callable[[_Snapshot], _Snapshot]) -> tuple[_Snapshot, _Snapshot]:
        with self._lock:
            old = self._snap
            self._snap = fn(old)
            return old, self._snap

    def read(self) -> _Snapshot:
        with self._lock:
            return self._snap

    def remember(self, snap: _Snapshot) -> None:
        """Take over ``snap`` (the last state the shared backend returned) as this backend's state."""
        with self._lock:
            self._snap = snap


class _RedisBackend:
    """The snapshot in a Redis hash, updated with optimistic transactions (``WATCH``) so processes never race."""

    def __init__(self, client: redis.Redis, key: str, ttl: int) -> None:
        self._redis = client
        self._key = key
        self._ttl = ttl

    @staticmethod
    def _decode(raw: dict[Any, Any]) -> _Snapshot:
        if not raw:
            return _Snapshot()
        get = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        return _Snapshot(
            state=CircuitState(get.get("state", "closed")),
            failures=int(get.get("failures", 0)),
            successes=int(get.get("successes", 0)),
            probes=int(get.get("probes", 0)),
            changed_at=float(get.get("changed_at", 0.0)),
        )

    def read(self) -> _Snapshot:
        return self._decode(cast(dict[Any, Any], self._redis.hgetall(self._key)))

    def update(self, fn: Callable[[_Snapshot], _Snapshot]) -> tuple[_Snapshot, _Snapshot]:
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self._key)  # type: ignore[no-untyped-call]
                    old = self._decode(cast(dict[Any, Any], pipe.hgetall(self._key)))
                    new = fn(old)
                    pipe.multi()
                    if new != old:
                        pipe.hset(
                            self._key,
                            mapping={
                                "state": new.state.value,
                                "failures": new.failures,
                                "successes": new.successes,
                                "probes": new.probes,
                                "changed_at": repr(new.changed_at),
                            },
                        )
                    # Idle breakers expire, so a crashed fleet does not leave a stale OPEN behind for days.
                    pipe.expire(self._key, self._ttl)
                    pipe.execute()
                    return old, new
                except redis.WatchError:
                    continue


class _SharedBackend:
    """The Redis backend while Redis answers; an in-process one, seeded with the last shared state, while it fails."""

    def __init__(self, shared: _RedisBackend, guard: RedisGuard) -> None:
        self._shared = shared
        self._local = _LocalBackend()
        self._guard = guard

    def update(self, fn: Callable[[_Snapshot], _Snapshot]) -> tuple[_Snapshot, _Snapshot]:
        def shared() -> tuple[_Snapshot, _Snapshot]:
            old, new = self._shared.update(fn)
            self._local.remember(new)
            return old, new

        return self._guard.run(shared, lambda: self._local.update(fn))

    def read(self) -> _Snapshot:
        def shared() -> _Snapshot:
            snap = self._shared.read()
            self._local.remember(snap)
            return snap

        return self._guard.run(shared, self._local.read)


class CircuitBreaker:
    """A circuit breaker, in-process by default or shared across processes through ``redis``.

    Args:
        failure_threshold: consecutive failures that open the circuit.
        recovery_timeout: seconds the circuit stays OPEN before a probe is allowed.
        name: identifies the breaker in errors, logs, metrics and (with Redis) the shared key; e.g. ``"polygon"``.
        success_threshold: successful probes in HALF_OPEN needed to close again (UW's own client uses 2).
        half_open_max_calls: probes allowed in flight while HALF_OPEN.
        clock: seconds as float; default monotonic in-process, wall clock when shared through Redis.
        redis: a ``redis.Redis`` client; when given, the state lives in Redis under ``{key_prefix}:{name}``.
        vendor: put on :class:`CircuitOpen` errors (defaults to ``name``).
        is_failure: for decorator/:meth:`call` use, which exceptions count as failures (default: all).

    Use it explicitly (``allow_request()`` / ``on_success()`` / ``on_failure()``), through :meth:`check` which
    raises :class:`CircuitOpen`, or as a decorator::

        breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=30.0, name="uw")

        @breaker
        def fetch() -> bytes: ...
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        name: str = "default",
        *,
        success_threshold: int = 1,
        half_open_max_calls: int = 1,
        clock: Clock | None = None,
        redis: redis.Redis | None = None,
        key_prefix: str = "ingestion:breaker",
        vendor: str | None = None,
        is_failure: Callable[[BaseException], bool] | None = None,
    ) -> None:
        if failure_threshold < 1 or success_threshold < 1 or half_open_max_calls < 1:
            raise ValueError("failure_threshold, success_threshold and half_open_max_calls must be at least 1")
        if recovery_timeout < 0:
            raise ValueError("recovery_timeout is seconds and cannot be negative")
        self.name = name
        self.vendor = vendor or name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._rules = _Rules(failure_threshold, recovery_timeout, success_threshold, half_open_max_calls)
        self._clock = clock or (wall_clock if redis is not None else monotonic_clock)
        self._backend: _Backend = (
            _SharedBackend(
                _RedisBackend(redis, f"{key_prefix}:{name}", ttl=max(3600, int(recovery_timeout * 10))),
                RedisGuard(f"circuit {name}", log),
            )
            if redis is not None
            else _LocalBackend()
        )
        self._is_failure = is_failure or (lambda exc: True)
        self._listeners: list[StateListener] = []

    @property
    def shared(self) -> bool:
        """True when the state lives in Redis."""
        return isinstance(self._backend, _SharedBackend)

    def add_listener(self, listener: StateListener) -> None:
        """Be told about every transition this process makes (metrics, alert logs)."""
        self._listeners.append(listener)

    def _apply(self, fn: Callable[[_Snapshot, float], _Snapshot]) -> _Snapshot:
        now = self._clock()
        old, new = self._backend.update(lambda s: fn(s, now))
        self._announce(old, new, now)
        return new

    def _announce(self, old: _Snapshot, new: _Snapshot, now: float) -> None:
        # An OPEN breaker turns HALF_OPEN lazily inside the same update, so report that step on its own.
        settled = self._rules.settle(old, now)
        if settled.state is not old.state:
            self._report(old.state, settled.state)
        if new.state is not settled.state:
            self._report(settled.state, new.state)

    def _report(self, old: CircuitState, new: CircuitState) -> None:
        level = logging.WARNING if new is CircuitState.OPEN else logging.INFO
        log.log(level, "circuit %s: %s -> %s", self.name, old.value, new.value)
        for listener in self._listeners:
            listener(self.name, old, new)

    @property
    def state(self) -> CircuitState:
        """The current state, with an expired OPEN reported as HALF_OPEN."""
        return self._rules.settle(self._backend.read(), self._clock()).state

    @property
    def retry_at(self) -> float | None:
        """When an OPEN breaker will allow a probe (same clock as ``clock``), else None."""
        snap = self._backend.read()
        if snap.state is CircuitState.OPEN:
            return snap.changed_at + self.recovery_timeout
        return None

    @property
    def failure_count(self) -> int:
        return self._backend.read().failures

    def allow_request(self) -> bool:
        """May a call go out now? In HALF_OPEN a True answer reserves one probe slot: report its outcome."""
        allowed: list[bool] = []

        def step(s: _Snapshot, now: float) -> _Snapshot:
            new, ok = self._rules.allow(s, now)
            allowed[:] = [ok]
            return new

        self._apply(step)
        return allowed[0]

    def check(self, endpoint: str | None = None) -> None:
        """Like :meth:`allow_request`, but raise :class:`CircuitOpen` (with ``retry_at``) when refused."""
        if self.allow_request():
            return
        retry_at = self.retry_at
        wait = f"; next probe in {max(0.0, retry_at - self._clock()):.1f}s" if retry_at is not None else ""
        raise CircuitOpen(
            f"circuit '{self.name}' is open after repeated failures{wait}",
            retry_at=retry_at,
            vendor=self.vendor,
            endpoint=endpoint,
        )

    def on_success(self) -> None:
        self._apply(self._rules.success)

    def on_failure(self) -> None:
        self._apply(self._rules.failure)

    def reset(self) -> None:
        """Close the circuit and forget all counts."""
        self._apply(lambda s, now: _Snapshot(CircuitState.CLOSED, changed_at=now))

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` through the breaker: refuse with :class:`CircuitOpen`, else record its outcome."""
        self.check()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            # An exception the caller says is not the vendor's fault (a 404, say) still proves the vendor answered.
            if self._is_failure(exc):
                self.on_failure()
            else:
                self.on_success()
            raise
        self.on_success()
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorator form: ``@breaker`` wraps ``fn`` with :meth:`call`."""

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state.value}, shared={self.shared})"
