"""Client-side rate limiting: a token bucket per vendor and key, shared by threads and optionally by processes.

A bucket holds at most ``capacity`` tokens and refills at ``rate`` tokens per second; each request takes one.
Over any window of ``W`` seconds it lets through at most ``capacity + rate * W`` requests, so
:meth:`TokenBucket.per_window` turns a vendor's "N per W seconds" into ``capacity = burst`` and
``rate = (N - burst) / W``: never more than N in any window, whatever the timing.

The bucket adapts to what the vendor says:

* :meth:`~TokenBucket.penalize` after a 429 empties the bucket and blocks it for ``Retry-After`` seconds, so every
  thread (and, with Redis, every process) backs off, not only the one that was refused;
* :meth:`~TokenBucket.observe` takes a vendor's own counters (UW's ``x-uw-req-per-minute-remaining`` and reset):
  the bucket never holds more tokens than the vendor says remain, and blocks until the reset when none do.

With ``redis`` the state lives in a Redis hash and each step is one Lua script (one round trip, atomic). The Lua
text is the same algorithm as the in-process :func:`_take`/:func:`_restrict`; ``tests/http`` runs both side by side
on one clock to keep them equal. Shared buckets need clocks that agree across processes: the default is the wall
clock, passed to the script, so tests can still drive it with a manual clock. When Redis fails mid-run the bucket
carries on in process with one warning (:class:`~ingestion.http.redis_guard.RedisGuard`): each process then keeps
its own budget until Redis is back, which can let several processes together exceed the shared limit for that time;
a 429 from the vendor still backs each of them off.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis

from ingestion.errors import RateLimited
from ingestion.http.clock import Clock, Sleep, monotonic_clock, real_sleep, wall_clock
from ingestion.http.redis_guard import RedisGuard

log = logging.getLogger(__name__)

# Clocks near 1.7e9 s resolve ~0.2 us, so refills land a hair short of a whole token after an exact wait. Grant within
# a millionth of a token, and never sleep less than a microsecond: otherwise the clock may not move and we spin.
_EPSILON = 1e-6
_MIN_SLEEP = 1e-6


@dataclass
class _Bucket:
    tokens: float
    ts: float
    blocked_until: float = 0.0


def _take(b: _Bucket, now: float, rate: float, capacity: float, cost: float) -> float:
    """Refill, then take ``cost`` tokens. Returns 0 when granted, else the seconds to wait (nothing taken)."""
    if now > b.ts:
        b.tokens = min(capacity, b.tokens + (now - b.ts) * rate)
        b.ts = now
    if now < b.blocked_until:
        return b.blocked_until - now
    if b.tokens >= cost - _EPSILON:
        b.tokens = max(0.0, b.tokens - cost)
        return 0.0
    return (cost - b.tokens) / rate


def _restrict(b: _Bucket, now: float, rate: float, capacity: float, max_tokens: float, block_for: float) -> None:
    """Refill, cap the tokens at ``max_tokens`` and block for ``block_for`` seconds (0 = no block)."""
    if now > b.ts:
        b.tokens = min(capacity, b.tokens + (now - b.ts) * rate)
        b.ts = now
    b.tokens = min(b.tokens, max_tokens)
    if block_for > 0:
        b.blocked_until = max(b.blocked_until, now + block_for)


# KEYS[1] = bucket hash. ARGV = now, rate, capacity, then cost (take) or max_tokens, block_for (restrict), then ttl.
# Numbers travel as strings: Lua numbers returned to Redis would be truncated to integers.
_LUA_PRELUDE = """
local now, rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until')
local tokens, ts, blocked = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]) or 0
if tokens == nil then tokens = cap; ts = now end
if now > ts then tokens = math.min(cap, tokens + (now - ts) * rate); ts = now end
"""
_LUA_SAVE = """
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'ts', string.format('%.6f', ts),
  'blocked_until', string.format('%.6f', blocked))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[#ARGV]))
"""
_LUA_TAKE = (
    _LUA_PRELUDE
    + """
local cost = tonumber(ARGV[4])
local wait = 0
if now < blocked then wait = blocked - now
elseif tokens >= cost - 1e-6 then tokens = math.max(0, tokens - cost)
else wait = (cost - tokens) / rate end
"""
    + _LUA_SAVE
    + "return string.format('%.9f', wait)"
)
_LUA_RESTRICT = (
    _LUA_PRELUDE
    + """
tokens = math.min(tokens, tonumber(ARGV[4]))
local block_for = tonumber(ARGV[5])
if block_for > 0 then blocked = math.max(blocked, now + block_for) end
"""
    + _LUA_SAVE
    + "return 'ok'"
)


@dataclass
class LimiterStats:
    """What the bucket did in this process: grants, how many acquires had to wait, and the seconds waited."""

    granted: int = 0
    waits: int = 0
    waited_seconds: float = 0.0


class TokenBucket:
    """A thread-safe token bucket, optionally shared across processes through Redis.

    Args:
        rate: tokens added per second (> 0).
        capacity: most tokens held at once (the burst); the bucket starts full.
        name: identifies the bucket; use ``f"{vendor}:{key_fingerprint(key)}"`` for one bucket per vendor and key
            (never the key itself: the name is a Redis key and a metric label).
        clock, sleep: injected time; default monotonic in-process, wall clock with Redis.
        redis: a ``redis.Redis`` client to share the bucket between processes.
        default_penalty: seconds to block after a 429 that carried no ``Retry-After``.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        name: str = "default",
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        redis: redis.Redis | None = None,
        key_prefix: str = "ingestion:ratelimit",
        default_penalty: float = 1.0,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 tokens/s and capacity at least 1 token")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.name = name
        self.default_penalty = default_penalty
        self._clock = clock or (wall_clock if redis is not None else monotonic_clock)
        self._sleep = sleep or real_sleep
        self._redis = redis
        self._key = f"{key_prefix}:{name}"
        # A shared bucket idles out of Redis once it would be full again anyway.
        self._ttl = max(60, int(capacity / rate) * 2 + 1)
        self._lock = threading.Lock()
        self._bucket = _Bucket(tokens=self.capacity, ts=self._clock())
        self.stats = LimiterStats()
        self._guard = RedisGuard(f"rate limiter {name}", log)
        if redis is not None:
            self._take_script = redis.register_script(_LUA_TAKE)
            self._restrict_script = redis.register_script(_LUA_RESTRICT)

    @classmethod
    def per_window(cls, limit: int, window: float, *, burst: int | None = None, **kwargs: object) -> TokenBucket:
        """A bucket that never lets more than ``limit`` requests through in any ``window`` seconds.

        ``burst`` (default ``max(1, limit // 10)``, below ``limit``) is how many may go at once after a quiet spell.
        Other keywords go to the constructor.
        """
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 request and window > 0 seconds")
        b = burst if burst is not None else max(1, limit // 10)
        if not 1 <= b <= limit:
            raise ValueError("burst must be between 1 and limit")
        # With burst == limit nothing may refill within the window; half a token per window keeps rate positive.
        rate = max(limit - b, 0.5) / window
        return cls(rate, b, **kwargs)  # type: ignore[arg-type]

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def try_acquire(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available now. Returns 0.0 when granted, else seconds until it could be."""
        now = self._clock()

        def local() -> float:
            with self._lock:
                return _take(self._bucket, now, self.rate, self.capacity, cost)

        if self._redis is None:
            return local()

        def shared() -> float:
            raw = self._take_script(
                keys=[self._key], args=[repr(now), repr(self.rate), repr(self.capacity), cost, self._ttl]
            )
            return float(raw)

        return self._guard.run(shared, local)

    def acquire(self, cost: float = 1.0, *, timeout: float | None = None) -> float:
        """Block (through the injected ``sleep``) until ``cost`` tokens are taken. Returns the seconds waited.

        With ``timeout`` (seconds), raise :class:`RateLimited` instead of waiting longer than that in total; its
        ``retry_after`` says how long the bucket would have needed.
        """
        waited = 0.0
        while True:
            wait = self.try_acquire(cost)
            if wait <= 0.0:
                break
            if timeout is not None and waited + wait > timeout:
                raise RateLimited(
                    f"client-side limiter '{self.name}' would wait {wait:.1f}s more (timeout {timeout:g}s)",
                    retry_after=wait,
                )
            wait = max(wait, _MIN_SLEEP)
            self._sleep(wait)
            waited += wait
        with self._lock:
            self.stats.granted += 1
            if waited > 0:
                self.stats.waits += 1
                self.stats.waited_seconds += waited
        return waited

    def _restrict(self, max_tokens: float, block_for: float) -> None:
        now = self._clock()

        def local() -> None:
            with self._lock:
                _restrict(self._bucket, now, self.rate, self.capacity, max_tokens, block_for)

        if self._redis is None:
            local()
            return

        def shared() -> None:
            self._restrict_script(
                keys=[self._key],
                args=[repr(now), repr(self.rate), repr(self.capacity), repr(max_tokens), repr(block_for), self._ttl],
            )

        self._guard.run(shared, local)

    def penalize(self, retry_after: float | None = None) -> None:
        """The vendor said 429: empty the bucket and hold every caller for ``retry_after`` seconds."""
        self._restrict(0.0, retry_after if retry_after is not None else self.default_penalty)

    def observe(self, remaining: int | None = None, reset_after: float | None = None) -> None:
        """Align with the vendor's counters: ``remaining`` requests left, window resetting in ``reset_after`` s.

        With ``remaining <= 0`` the bucket blocks until the reset (or ``default_penalty`` when unknown).
        """
        if remaining is None:
            return
        block = 0.0
        if remaining <= 0:
            block = reset_after if reset_after is not None else self.default_penalty
        self._restrict(float(max(0, remaining)), block)

    def reset(self) -> None:
        """Refill the bucket and lift any block (and delete the shared state)."""
        client = self._redis
        if client is not None:
            self._guard.run(lambda: client.delete(self._key), lambda: 0)
        with self._lock:
            self._bucket = _Bucket(tokens=self.capacity, ts=self._clock())

    def __repr__(self) -> str:
        return (
            f"TokenBucket(name={self.name!r}, rate={self.rate:g}/s, capacity={self.capacity:g}, shared={self.shared})"
        )
