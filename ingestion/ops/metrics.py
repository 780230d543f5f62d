"""Pipeline metrics beside the HTTP core's, in the same registry, and the ways to expose them.

Long-running commands (``stream``, the flow collector, ``simulate``) serve ``/metrics`` over HTTP with
:func:`serve_metrics`; batch jobs write a Prometheus textfile at the end with :func:`write_textfile` (for the node
exporter's textfile collector) or push to a Pushgateway with :func:`push`.

==========================================  =========  ==============================================
name                                         type       labels
==========================================  =========  ==============================================
ingestion_rows_written_total                 counter    dataset
ingestion_rows_quarantined_total             counter    dataset
ingestion_quota_remaining                    gauge      vendor, window (minute / day)
ingestion_stream_queue_depth                 gauge      (frames waiting between socket and bridge)
ingestion_stream_lag_seconds                 gauge      (receive time minus SIP time of the latest tick)
ingestion_stream_dropped_total               counter    reason
ingestion_feature_age_seconds                gauge      view (age of the newest online value)
==========================================  =========  ==============================================

The HTTP families (API calls, latency, errors, retries, breaker state, cache hits, limiter waits) are listed in
:mod:`ingestion.http.metrics`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from ingestion.http.metrics import default_metrics


class PipelineMetrics:
    """Collectors of rows, quotas, the stream and freshness, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.rows_written = Counter("ingestion_rows_written", "Rows written offline", ["dataset"], registry=r)
        self.rows_quarantined = Counter(
            "ingestion_rows_quarantined", "Rows sent to quarantine", ["dataset"], registry=r
        )
        self.quota_remaining = Gauge(
            "ingestion_quota_remaining", "Requests left in the vendor's budget", ["vendor", "window"], registry=r
        )
        self.queue_depth = Gauge("ingestion_stream_queue_depth", "Frames queued for the bridge", registry=r)
        self.stream_lag = Gauge("ingestion_stream_lag_seconds", "Receive time minus SIP time", registry=r)
        self.stream_dropped = Counter("ingestion_stream_dropped", "Stream events dropped", ["reason"], registry=r)
        self.feature_age = Gauge(
            "ingestion_feature_age_seconds", "Age of the newest online value of a view", ["view"], registry=r
        )


_pipeline: PipelineMetrics | None = None
_lock = threading.Lock()


def pipeline_metrics() -> PipelineMetrics:
    """The process-wide pipeline metrics, in the HTTP core's default registry (one /metrics shows both)."""
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = PipelineMetrics(default_metrics().registry)
        return _pipeline


def serve_metrics(port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` for the default registry on ``host:port`` (0 = a free port) in a daemon thread.

    Returns the server; its bound port is ``server.server_port``.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=default_metrics().registry)
    return server


def write_textfile(path: Path) -> None:
    """Write every metric to ``path`` atomically, for the node exporter's textfile collector."""
    from prometheus_client import write_to_textfile

    pipeline_metrics()
    write_to_textfile(str(path), default_metrics().registry)


def push(gateway: str, job: str) -> None:
    """Push every metric to a Prometheus Pushgateway (``host:port``) under ``job``."""
    from prometheus_client import push_to_gateway

    push_to_gateway(gateway, job=job, registry=default_metrics().registry)
