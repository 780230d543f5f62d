"""Build a vendor's :class:`~ingestion.http.VendorHTTP` from plain settings: one recipe for both vendors.

Both clients take the same knobs (key, base URL, cache on/off, Redis for shared state, a request budget) and get
the same policies from here, so no client carries its own copy of the policy wiring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from ingestion.http import (
    BearerAuth,
    BodyLimits,
    CircuitBreaker,
    ErrorMapper,
    ResponseCache,
    ResponseHook,
    RetryPolicy,
    Timeouts,
    TokenBucket,
    VendorHTTP,
)


@dataclass(frozen=True)
class HTTPOptions:
    """Knobs shared by the vendor clients.

    ``requests_per_minute``: the client-side budget (None: no limiter, for plans the vendor calls unlimited).
    ``redis_url``: share the cache, the limiter and the breaker between processes; None keeps them in-process.
    ``retry``: the retry policy (tests inject one with a fake sleep).
    ``timeouts``: connect, read and total-deadline seconds per attempt; ``limits``: byte limits of a body.
    """

    use_cache: bool = True
    redis_url: str | None = field(default=None, repr=False)
    requests_per_minute: int | None = None
    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    limits: BodyLimits | None = None
    breaker: CircuitBreaker | None = None
    limiter: TokenBucket | None = None

    def __post_init__(self) -> None:
        # 0 once meant "no limit" by accident (a falsy budget built no limiter): no limit is None, said so.
        if self.requests_per_minute is not None and self.requests_per_minute < 1:
            raise ValueError(f"requests_per_minute must be 1 or more, or None for no limit: {self.requests_per_minute}")


def build_vendor_http(
    vendor: str,
    base_url: str,
    api_key: str,
    options: HTTPOptions,
    *,
    headers: Mapping[str, str] | None = None,
    on_response: Sequence[ResponseHook] = (),
    error_mapper: ErrorMapper | None = None,
    auth_hint: str | None = None,
) -> VendorHTTP:
    """The resilient HTTP core for one vendor and key, with the policies ``options`` asks for."""
    auth = BearerAuth(api_key)
    redis_client: Any = None
    if options.redis_url:
        from ingestion.store.redis_conn import connect

        # Shared state is an optimisation: when Redis is gone, fail fast (no redis-py backoff of several seconds,
        # no wait on a hung server) and let each concern degrade to its in-process state (RedisGuard).
        redis_client = connect(
            options.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0, socket_timeout=5.0
        )
    breaker = options.breaker or CircuitBreaker(
        failure_threshold=options.failure_threshold,
        recovery_timeout=options.recovery_timeout,
        name=f"{vendor}:{auth.fingerprint}",
        vendor=vendor,
        redis=redis_client,
    )
    limiter = options.limiter
    if limiter is None and options.requests_per_minute:
        limiter = TokenBucket.per_window(
            options.requests_per_minute, 60.0, name=f"{vendor}:{auth.fingerprint}", redis=redis_client
        )
    cache = ResponseCache(redis_client) if options.use_cache else None
    return VendorHTTP(
        vendor,
        base_url,
        auth=auth,
        retry=options.retry or RetryPolicy(),
        timeouts=options.timeouts,
        limits=options.limits,
        breaker=breaker,
        limiter=limiter,
        cache=cache,
        headers=headers,
        on_response=on_response,
        error_mapper=error_mapper,
        auth_hint=auth_hint,
    )
