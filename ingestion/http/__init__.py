"""The resilient HTTP core shared by every vendor client.

A vendor client builds one :class:`VendorHTTP` from policies passed as values and sends every request through it::

    from ingestion.http import BearerAuth, CircuitBreaker, RetryPolicy, TokenBucket, VendorHTTP, ResponseCache, CacheTTL

    auth = BearerAuth(key)
    http = VendorHTTP(
        "polygon",
        "https://api.polygon.io",
        auth=auth,
        retry=RetryPolicy(max_attempts=5),
        breaker=CircuitBreaker(failure_threshold=5, recovery_timeout=30.0, name="polygon"),
        limiter=TokenBucket.per_window(5, 60.0, name=f"polygon:{auth.fingerprint}"),
        cache=ResponseCache(redis_client),
        auth_hint="set POLYGON_API_KEY",
    )
    page = http.get("aggs", "/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-31", {"limit": 5000},
                    cache_ttl=CacheTTL.HISTORICAL, cache_if=lambda r: r.json().get("status") == "OK")
    rows = page.json()["results"]     # or parse page.body (raw bytes) straight to columns

One module per concern: ``session`` (pooled sessions, timeouts), ``exchange`` (one bounded GET), ``body`` (size
limits and bounded decompression), ``deadline`` (the total deadline of an attempt), ``environ`` (proxies and CA
bundle from the environment), ``retry`` (when and how long), ``breaker``, ``ratelimit``, ``cache``, ``scope`` (the
environment a cached value belongs to, and its seal), ``redis_guard`` (degrading when Redis fails), ``status`` (HTTP
status to typed errors), ``redaction``, ``metrics``, ``auth``, ``clock`` (injectable time), ``client`` (the
composition) and ``paging`` (the one bounded loop over a vendor's pages).
"""

from ingestion.http.auth import AuthProvider, BearerAuth
from ingestion.http.body import BodyLimits, BodyTooLarge
from ingestion.http.breaker import CircuitBreaker, CircuitState
from ingestion.http.cache import CacheTTL, ResponseCache, cache_key
from ingestion.http.client import CachePredicate, ErrorMapper, ResponseHook, VendorHTTP
from ingestion.http.clock import Clock, ManualClock, Sleep, monotonic_clock, real_sleep, wall_clock
from ingestion.http.metrics import HTTPMetrics, default_metrics
from ingestion.http.paging import DEFAULT_MAX_PAGES, PagingError, paginate
from ingestion.http.ratelimit import LimiterStats, TokenBucket
from ingestion.http.redaction import (
    SECRETS,
    RedactingFilter,
    SecretRegistry,
    install_redaction,
    key_fingerprint,
    redact,
    redact_exception,
    redact_headers,
    redact_text,
    redact_url,
    register_secret,
    strip_auth_params,
)
from ingestion.http.result import HTTPResult
from ingestion.http.retry import RetryPolicy, is_retryable, parse_retry_after
from ingestion.http.scope import CacheScope
from ingestion.http.session import Timeouts, make_session
from ingestion.http.status import error_for_status

__all__ = [
    "DEFAULT_MAX_PAGES",
    "SECRETS",
    "AuthProvider",
    "BearerAuth",
    "BodyLimits",
    "BodyTooLarge",
    "CachePredicate",
    "CacheScope",
    "CacheTTL",
    "CircuitBreaker",
    "CircuitState",
    "Clock",
    "ErrorMapper",
    "HTTPMetrics",
    "HTTPResult",
    "LimiterStats",
    "ManualClock",
    "PagingError",
    "RedactingFilter",
    "ResponseCache",
    "ResponseHook",
    "RetryPolicy",
    "SecretRegistry",
    "Sleep",
    "Timeouts",
    "TokenBucket",
    "VendorHTTP",
    "cache_key",
    "default_metrics",
    "error_for_status",
    "install_redaction",
    "is_retryable",
    "key_fingerprint",
    "make_session",
    "monotonic_clock",
    "paginate",
    "parse_retry_after",
    "real_sleep",
    "redact",
    "redact_exception",
    "redact_headers",
    "redact_text",
    "redact_url",
    "register_secret",
    "strip_auth_params",
    "wall_clock",
]
