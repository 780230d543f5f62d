"""``/metrics`` on the ``serve`` port: Feast's own Prometheus metrics, served by the feature server itself.

``feast serve --metrics`` records request counts and latency, online-feature counts, resource use and
``feast_feature_freshness_seconds`` (now minus each view's last materialization end) in prometheus_client's
multiprocess files, one per gunicorn worker, in the folder ``feast.metrics`` puts in ``PROMETHEUS_MULTIPROC_DIR``
when it is imported. To expose them Feast starts a second HTTP server on port 8000 of *every* interface: a fixed port,
so two servers on a host collide, and a public one, while ``serve`` binds loopback unless told otherwise. Here the same
files are read at ``GET /metrics`` on the server's own host and port, and Feast's second server is never started
(:func:`keep_metrics_on_serve_port`). What Feast records is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingestion.commands.asgi import ASGIApp, Receive, Scope, Send, respond

METRICS_PATH = "/metrics"

_NOT_ALLOWED = b'{"detail":"/metrics answers GET and HEAD only"}'


def exposition() -> tuple[bytes, str]:
    """Every worker's metrics merged, in Prometheus' text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    # No path: the collector reads PROMETHEUS_MULTIPROC_DIR, the folder feast.metrics chose in the server's master
    # process and every worker inherited.
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


class Metrics:
    """ASGI middleware: ``/metrics`` answers the exposition; every other request goes to ``app`` unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (str(scope.get("path", "")).rstrip("/") or "/") != METRICS_PATH:
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        if method not in ("GET", "HEAD"):
            await respond(send, 405, _NOT_ALLOWED, "application/json")
            return
        # Merging the workers' files reads every one of them: off the event loop, so serving never waits on it.
        body, content_type = await asyncio.to_thread(exposition)
        await respond(send, 200, body, content_type, head=method == "HEAD")


def keep_metrics_on_serve_port() -> None:
    """Make ``feast serve --metrics`` record as usual but start no metrics server of its own on port 8000."""
    from feast import metrics

    def no_server(port: int, mp_dir: str, ready_event: Any = None) -> None:
        # Feast's parent waits for this event before it carries on; nothing is bound.
        del port, mp_dir
        if ready_event is not None:
            ready_event.set()

    metrics._run_metrics_server = no_server


__all__ = ["METRICS_PATH", "Metrics", "exposition", "keep_metrics_on_serve_port"]
