"""Prometheus metrics of the HTTP core, in a project registry ready for a ``/metrics`` endpoint.

Labels are ``vendor`` and ``endpoint``, where ``endpoint`` is a route *name* chosen by the vendor client
(``"aggs"``, ``"flow_alerts"``), never a URL: URLs carry tickers (unbounded cardinality) and, at some vendors, keys.
Every label value also passes :func:`~ingestion.http.redaction.redact` as a last line of defence.

==========================================  =========  ==============================================
name                                         type       labels
==========================================  =========  ==============================================
ingestion_http_requests_total                counter    vendor, endpoint, status (code or "error")
ingestion_http_errors_total                  counter    vendor, endpoint, kind (error class name)
ingestion_http_retries_total                 counter    vendor, endpoint, kind
ingestion_http_request_duration_seconds      histogram  vendor, endpoint (one observation per attempt)
ingestion_http_cache_total                   counter    vendor, endpoint, result (hit / miss / store)
ingestion_ratelimit_waits_total              counter    vendor, limiter
ingestion_ratelimit_wait_seconds_total       counter    vendor, limiter
ingestion_circuit_state                      gauge      breaker (0 closed, 1 half open, 2 open)
ingestion_circuit_transitions_total          counter    breaker, state (the state entered)
==========================================  =========  ==============================================
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingestion.http.breaker import CircuitState
from ingestion.http.redaction import redact

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds. Vendor calls range from a few ms (cache-warm CDN) to tens of seconds (large pages)."""

_STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


def _label(value: str) -> str:
    return redact(value)[:100]


class HTTPMetrics:
    """The HTTP core's collectors, registered in ``registry`` (a fresh one per instance unless given).

    One instance is normally shared by every client of a process (:func:`default_metrics`); tests make their own.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ingestion_http_requests", "HTTP requests sent to a vendor", ["vendor", "endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "ingestion_http_errors", "Failed attempts by error kind", ["vendor", "endpoint", "kind"], registry=r
        )
        self.retries = Counter(
            "ingestion_http_retries",
            "Retries scheduled, by the error that caused them",
            ["vendor", "endpoint", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "ingestion_http_request_duration_seconds",
            "Time from sending a request to having its whole body, per attempt",
            ["vendor", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "ingestion_http_cache", "Response cache lookups and stores", ["vendor", "endpoint", "result"], registry=r
        )
        self.limiter_waits = Counter(
            "ingestion_ratelimit_waits", "Acquires that had to wait for a token", ["vendor", "limiter"], registry=r
        )
        self.limiter_wait_seconds = Counter(
            "ingestion_ratelimit_wait_seconds", "Seconds spent waiting for tokens", ["vendor", "limiter"], registry=r
        )
        self.breaker_state = Gauge(
            "ingestion_circuit_state", "Circuit breaker state: 0 closed, 1 half open, 2 open", ["breaker"], registry=r
        )
        self.breaker_transitions = Counter(
            "ingestion_circuit_transitions",
            "Circuit breaker transitions, by state entered",
            ["breaker", "state"],
            registry=r,
        )

    def request(self, vendor: str, endpoint: str, status: int | None, seconds: float) -> None:
        """One attempt that reached (or tried to reach) the vendor; ``status`` None for a transport failure."""
        v, e = _label(vendor), _label(endpoint)
        self.requests.labels(v, e, str(status) if status is not None else "error").inc()
        self.latency.labels(v, e).observe(seconds)

    def error(self, vendor: str, endpoint: str, exc: BaseException) -> None:
        self.errors.labels(_label(vendor), _label(endpoint), type(exc).__name__).inc()

    def retry(self, vendor: str, endpoint: str, exc: BaseException) -> None:
        self.retries.labels(_label(vendor), _label(endpoint), type(exc).__name__).inc()

    def cache_event(self, vendor: str, endpoint: str, result: str) -> None:
        self.cache.labels(_label(vendor), _label(endpoint), result).inc()

    def limiter_wait(self, vendor: str, limiter: str, seconds: float) -> None:
        if seconds > 0:
            self.limiter_waits.labels(_label(vendor), _label(limiter)).inc()
            self.limiter_wait_seconds.labels(_label(vendor), _label(limiter)).inc(seconds)

    def breaker_changed(self, name: str, old: CircuitState, new: CircuitState) -> None:
        """A breaker state listener: wire with ``breaker.add_listener(metrics.breaker_changed)``."""
        self.breaker_state.labels(_label(name)).set(_STATE_VALUE[new])
        self.breaker_transitions.labels(_label(name), new.value).inc()

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when never set): for tests and health summaries."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got


_default: HTTPMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> HTTPMetrics:
    """The process-wide metrics (created on first use, never at import), served at ``/metrics`` by ingestion.ops."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HTTPMetrics()
        return _default
