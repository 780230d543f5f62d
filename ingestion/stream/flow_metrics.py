"""Prometheus families of the live flow collector, in the same registry as the pipeline's (one ``/metrics``).

==========================================  =========  ==============================================
name                                         type       labels
==========================================  =========  ==============================================
ingestion_flow_alerts_per_second             gauge      (alerts landed per second since the feed started)
ingestion_flow_poll_lag_seconds              gauge      (vendor clock minus the last complete poll's as-of)
ingestion_flow_quota_left                    gauge      window (minute / day): the vendor's counters
==========================================  =========  ==============================================
"""

from __future__ import annotations

import functools
import threading

from prometheus_client import Gauge

from ingestion.http.metrics import default_metrics


class FlowMetrics:
    def __init__(self) -> None:
        r = default_metrics().registry
        self.alerts_per_second = Gauge("ingestion_flow_alerts_per_second", "Flow alerts landed per second", registry=r)
        self.poll_lag = Gauge(
            "ingestion_flow_poll_lag_seconds", "Vendor clock minus the last complete poll's as-of", registry=r
        )
        self.quota_left = Gauge("ingestion_flow_quota_left", "Unusual Whales requests left", ["window"], registry=r)


_lock = threading.Lock()


@functools.cache
def _registered() -> FlowMetrics:
    return FlowMetrics()


def flow_metrics() -> FlowMetrics:
    """The process-wide flow metrics, registered on first use (under a lock: registering twice is an error)."""
    with _lock:
        return _registered()


__all__ = ["FlowMetrics", "flow_metrics"]
