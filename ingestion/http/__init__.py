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

# Names resolve on first use (PEP 562): a process that needs only ``redaction`` (every command's logging setup)
# does not pay for pandas and redis-py, which ``cache`` and ``breaker`` import; that is a third of a second of
# ``ingestion apply``. Type checkers read the imports below.
from importlib import import_module as _import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


del TYPE_CHECKING  # the package's public names are exactly __all__
_EXPORTS: dict[str, str] = {
    "AuthProvider": "auth",
    "BearerAuth": "auth",
    "BodyLimits": "body",
    "BodyTooLarge": "body",
    "CachePredicate": "client",
    "CacheScope": "scope",
    "CacheTTL": "cache",
    "CircuitBreaker": "breaker",
    "CircuitState": "breaker",
    "Clock": "clock",
    "DEFAULT_MAX_PAGES": "paging",
    "ErrorMapper": "client",
    "HTTPMetrics": "metrics",
    "HTTPResult": "result",
    "LimiterStats": "ratelimit",
    "ManualClock": "clock",
    "PagingError": "paging",
    "RedactingFilter": "redaction",
    "ResponseCache": "cache",
    "ResponseHook": "client",
    "RetryPolicy": "retry",
    "SECRETS": "redaction",
    "SecretRegistry": "redaction",
    "Sleep": "clock",
    "Timeouts": "session",
    "TokenBucket": "ratelimit",
    "VendorHTTP": "client",
    "cache_key": "cache",
    "default_metrics": "metrics",
    "error_for_status": "status",
    "install_redaction": "redaction",
    "is_retryable": "retry",
    "key_fingerprint": "redaction",
    "make_session": "session",
    "monotonic_clock": "clock",
    "paginate": "paging",
    "parse_retry_after": "retry",
    "real_sleep": "clock",
    "redact": "redaction",
    "redact_exception": "redaction",
    "redact_headers": "redaction",
    "redact_text": "redaction",
    "redact_url": "redaction",
    "register_secret": "redaction",
    "strip_auth_params": "redaction",
    "wall_clock": "clock",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
