"""``VendorHTTP``: the one composition of the policies that every vendor client sends its requests through.

Per request::

    cache lookup (this environment's sealed entry) ──hit──> result (no request, no token)
        │ miss
        └─> retry policy, per attempt: breaker.check ─> limiter.acquire ─> exchange ─> classify
                                          │                                      │
                               CircuitOpen (not retried)       2xx: breaker success ─> cache store (if asked)
                                                               429: limiter.penalize(Retry-After), retry
                                                               5xx / transport: breaker failure, retry
                                                               other 4xx: raise at once

The cache is consulted before the limiter so a hit spends no token; the breaker and the limiter sit inside the
retry loop so that every attempt, first or retried, is counted against the vendor's limit and the circuit's health.
``exchange`` (:mod:`~ingestion.http.exchange`) is one GET bounded by a total deadline and body size limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from ingestion.errors import CircuitOpen, IngestionError, RateLimited, ServerError, TransportError, VendorError
from ingestion.http.auth import AuthProvider
from ingestion.http.body import BodyLimits, BodyTooLarge
from ingestion.http.breaker import CircuitBreaker
from ingestion.http.cache import ResponseCache
from ingestion.http.clock import Clock, monotonic_clock, wall_clock
from ingestion.http.exchange import exchange
from ingestion.http.metrics import HTTPMetrics, default_metrics
from ingestion.http.ratelimit import TokenBucket
from ingestion.http.redaction import redact, redact_text, strip_auth_params
from ingestion.http.result import HTTPResult
from ingestion.http.retry import RetryPolicy, parse_retry_after
from ingestion.http.scope import CacheScope
from ingestion.http.session import Timeouts, make_session
from ingestion.http.status import error_for_status, request_id_from

log = logging.getLogger(__name__)

ResponseHook = Callable[[HTTPResult], None]
"""Sees every response that came from the vendor, success or error, before it is classified (quota headers)."""

ErrorMapper = Callable[[HTTPResult], VendorError | None]
"""Turns a non-2xx response into a vendor-specific error (e.g. UW's ``QuotaExhausted``), or None for the default."""

CachePredicate = Callable[[HTTPResult], bool]
"""Decides whether a 2xx response is complete and valid enough to cache."""

Params = Mapping[str, Any]


def _query_value(value: Any) -> Any:
    # Vendors want lowercase booleans; requests would send "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [_query_value(v) for v in value]
    return value


class VendorHTTP:
    """The resilient HTTP core, built from policies passed as values.

    Args:
        vendor: short name used in errors, metrics, cache namespaces (``"polygon"``, ``"uw"``).
        base_url: scheme and host (``https://api.polygon.io``); relative paths and ``next_url`` links are resolved
            onto it, so a vendor link with a stray port or host never redirects our key elsewhere. With the key's
            fingerprint it is the environment that cached responses belong to (:meth:`cache_scope`).
        auth: an :data:`~ingestion.http.auth.AuthProvider` (e.g. :class:`~ingestion.http.auth.BearerAuth`); its
            headers are added per attempt. None for public endpoints.
        session: a ``requests.Session`` (default :func:`~ingestion.http.session.make_session`).
        timeouts: connect/read seconds and the total deadline of an attempt.
        limits: byte limits of a response body, raw and decompressed (:class:`~ingestion.http.body.BodyLimits`).
        retry: the :class:`~ingestion.http.retry.RetryPolicy` (carries the injected sleep).
        breaker, limiter, cache: optional policies; None switches that concern off.
        metrics: where counters go (default: the process-wide :func:`~ingestion.http.metrics.default_metrics`).
        clock: monotonic seconds for latency; ``wall_clock``: epoch seconds for ``Retry-After`` dates.
        headers: extra headers on every request (e.g. ``{"UW-CLIENT-API-ID": "100001"}``).
        on_response: hooks called with every vendor response (2xx or not), e.g. to feed ``x-uw-*`` counters to
            ``limiter.observe``.
        error_mapper: a vendor's own mapping of error responses, tried before the default table.
        auth_hint: appended to 401/403 messages, e.g. ``"set POLYGON_API_KEY"``.
    """

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        auth: AuthProvider | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        limits: BodyLimits | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: TokenBucket | None = None,
        cache: ResponseCache | None = None,
        metrics: HTTPMetrics | None = None,
        clock: Clock = monotonic_clock,
        wall_clock: Clock = wall_clock,
        headers: Mapping[str, str] | None = None,
        on_response: Sequence[ResponseHook] = (),
        error_mapper: ErrorMapper | None = None,
        auth_hint: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url must be an http(s) URL such as https://api.polygon.io, got {redact(base_url)!r}"
            )
        self.vendor = vendor
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self._configured_base_url = base_url
        self.auth = auth
        self.session = session if session is not None else make_session()
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or BodyLimits()
        self.retry = retry or RetryPolicy()
        self.breaker = breaker
        self.limiter = limiter
        self.cache = cache
        self.metrics = metrics if metrics is not None else default_metrics()
        self._clock = clock
        self._wall_clock = wall_clock
        self.headers = dict(headers or {})
        self.on_response = list(on_response)
        self.error_mapper = error_mapper
        self.auth_hint = auth_hint
        if breaker is not None:
            breaker.add_listener(self.metrics.breaker_changed)

    def cache_scope(self) -> CacheScope:
        """The environment of this client's cached responses: its base URL and the fingerprint of its credential.

        Taken per request, so a rotated key (the auth provider is called per attempt) gets entries of its own.
        """
        credential = None
        if self.auth is not None:
            credential = "\n".join(f"{k.lower()}: {v}" for k, v in sorted(self.auth().items()))
        return CacheScope.of(self._configured_base_url, credential)

    def resolve(self, path_or_url: str, params: Params | None = None) -> tuple[str, dict[str, Any]]:
        """The path and merged query for a relative path or a vendor link (``next_url``) on :attr:`base_url`.

        A link's own query (cursor, rewritten ``from``) is kept, ``params`` are added on top, credential-like
        parameters are dropped from both, and ``None`` values are omitted.
        """
        parts = urlsplit(path_or_url)
        if parts.scheme and parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme in {redact(path_or_url)!r}")
        path = parts.path if parts.path.startswith("/") else "/" + parts.path
        query: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update(params or {})
        clean = {k: _query_value(v) for k, v in strip_auth_params(query).items() if v is not None}
        return path, clean

    def get(
        self,
        endpoint: str,
        path_or_url: str,
        params: Params | None = None,
        *,
        cache_ttl: float | None = None,
        bypass_cache: bool = False,
        cache_if: CachePredicate | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResult:
        """GET ``path_or_url`` and return the 2xx response, or raise a typed :class:`~ingestion.errors.IngestionError`.

        Args:
            endpoint: the route's name for metrics, errors and cache keys (``"aggs"``), never a URL.
            path_or_url: a path (``/v2/aggs/...``) or a vendor link such as ``next_url``.
            params: query parameters; booleans become ``true``/``false``; None values are left out.
            cache_ttl: seconds to cache a 2xx response (see :class:`~ingestion.http.cache.CacheTTL`); None: no cache.
            bypass_cache: skip the lookup (a fresh answer is still stored when ``cache_ttl`` is set).
            cache_if: store only when this returns True (a complete, valid page).
            headers: extra headers for this request only.

        When the vendor is unavailable (breaker open, 5xx or network errors after the retries) and caching is on for
        this request, the last good response is returned instead, with ``stale=True`` and its ``age`` in seconds;
        without such a copy the error is raised.
        """
        # The label goes into metrics, logs, errors and cache keys: mask it should a caller ever pass a secret.
        endpoint = redact(endpoint)
        path, query = self.resolve(path_or_url, params)
        use_cache = self.cache is not None and cache_ttl is not None
        scope = self.cache_scope() if use_cache else None
        if use_cache and not bypass_cache:
            assert self.cache is not None
            hit = self.cache.get(self.vendor, endpoint, path, query, scope=scope, now=self._wall_clock())
            self.metrics.cache_event(self.vendor, endpoint, "hit" if hit else "miss")
            if hit is not None:
                return hit
        attempts = 0

        def attempt() -> HTTPResult:
            nonlocal attempts
            attempts += 1
            return self._attempt(endpoint, path, query, headers, attempts)

        def on_retry(exc: BaseException, attempt_no: int, wait: float) -> None:
            self.metrics.retry(self.vendor, endpoint, exc)
            log.warning(
                "%s %s: attempt %d failed (%s); retrying in %.2fs",
                self.vendor,
                endpoint,
                attempt_no,
                redact_text(str(exc)),
                wait,
            )

        try:
            result = self.retry.call(attempt, on_retry=on_retry)
        except (CircuitOpen, ServerError, TransportError) as exc:
            stale = self._stale(endpoint, path, query, scope) if scope is not None else None
            if stale is None:
                raise
            # The vendor is down: serve the last good copy, marked stale with its age, rather than fail outright.
            log.warning(
                "%s %s unavailable (%s); serving a stale cached copy %.0f s old",
                self.vendor, endpoint, type(exc).__name__, stale.age or 0.0,
            )  # fmt: skip
            self.metrics.cache_event(self.vendor, endpoint, "stale")
            return stale
        if use_cache and (cache_if is None or cache_if(result)):
            assert self.cache is not None and cache_ttl is not None
            self.cache.put(result, cache_ttl, stored_at=self._wall_clock(), scope=scope)
            self.metrics.cache_event(self.vendor, endpoint, "store")
        return result

    def _stale(self, endpoint: str, path: str, query: dict[str, Any], scope: CacheScope) -> HTTPResult | None:
        assert self.cache is not None
        return self.cache.get_stale(self.vendor, endpoint, path, query, now=self._wall_clock(), scope=scope)

    def _attempt(
        self, endpoint: str, path: str, query: dict[str, Any], extra: Mapping[str, str] | None, number: int
    ) -> HTTPResult:
        if self.breaker is not None:
            self.breaker.check(endpoint)
        if self.limiter is not None:
            waited = self.limiter.acquire()
            self.metrics.limiter_wait(self.vendor, self.limiter.name, waited)
        request_headers = {**self.headers, **(extra or {}), **(self.auth() if self.auth else {})}
        url = urljoin(self.base_url, path)
        started = self._clock()
        try:
            answer = exchange(
                self.session,
                url,
                params=query,
                headers=request_headers,
                timeouts=self.timeouts,
                limits=self.limits,
                vendor=self.vendor,
                endpoint=endpoint,
            )
        except (TransportError, BodyTooLarge) as failure:
            # status: None when nothing came back; a refused body's own status otherwise.
            self.metrics.request(self.vendor, endpoint, failure.status, self._clock() - started)
            self._failed(endpoint, failure)
            raise
        elapsed = self._clock() - started
        self.metrics.request(self.vendor, endpoint, answer.status, elapsed)
        result = HTTPResult(
            vendor=self.vendor,
            endpoint=endpoint,
            path=path,
            query=query,
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            request_id=None,
            attempts=number,
            elapsed=elapsed,
        )
        result.request_id = request_id_from(result.headers, b"" if result.ok else answer.body)
        for hook in self.on_response:
            hook(result)
        if result.ok:
            if self.breaker is not None:
                self.breaker.on_success()
            return result
        error = self._classify(result)
        self._failed(endpoint, error)
        raise error

    def _classify(self, result: HTTPResult) -> VendorError:
        error = self.error_mapper(result) if self.error_mapper is not None else None
        if error is None:
            retry_after = parse_retry_after(result.headers.get("retry-after"), self._wall_clock())
            error = error_for_status(
                vendor=self.vendor,
                endpoint=result.endpoint,
                status=result.status,
                body=result.body,
                headers=result.headers,
                retry_after=retry_after,
                auth_hint=self.auth_hint,
            )
        return error

    def _failed(self, endpoint: str, error: IngestionError) -> None:
        self.metrics.error(self.vendor, endpoint, error)
        if self.breaker is not None:
            # Only an unhealthy vendor trips the breaker; a 4xx (even 429) proves it is up and answering.
            if isinstance(error, ServerError | TransportError):
                self.breaker.on_failure()
            else:
                self.breaker.on_success()
        if self.limiter is not None and isinstance(error, RateLimited):
            # Every caller sharing the bucket backs off, not only the one that was told to.
            self.limiter.penalize(error.retry_after)

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()

    def __enter__(self) -> VendorHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VendorHTTP(vendor={self.vendor!r}, base_url={self.base_url!r}, auth={self.auth!r})"
