"""The ``serve`` child process: the real ``feast serve``, read-only unless writes were asked for.

Feast's feature server has no authentication of its own here, and besides its read routes it exposes ``/push``,
``/write-to-online-store``, ``/materialize`` and ``/materialize-incremental``, which let any caller rewrite the online
store. By default :class:`ReadOnly` wraps Feast's app and answers 403 to every path that is not a read route, so
an unknown route (a write endpoint added by a later Feast, MCP) is closed too. ``--allow-writes`` serves Feast's app
as it is. In both modes :class:`~ingestion.commands.serve_metrics.Metrics` answers ``GET /metrics`` in front of it,
with Feast's own Prometheus metrics.

Feast is not forked: this process runs Feast's own click CLI (``python -m ingestion.commands.serve_app
[--allow-writes] <feast args>``), so gunicorn, workers, auth and what the metrics record behave exactly as
``feast serve``. Two seams, both set before the CLI runs: ``feast.feature_server.get_app``, the function both of
Feast's server paths (gunicorn and uvicorn) call to build the app, is wrapped; and Feast's metrics-server entry point
is replaced, so Feast opens no metrics port of its own
(:func:`~ingestion.commands.serve_metrics.keep_metrics_on_serve_port`).
"""

from __future__ import annotations

import sys
from typing import Any

from ingestion.commands.asgi import ASGIApp, Receive, Scope, Send, respond
from ingestion.commands.serve_metrics import METRICS_PATH, Metrics, keep_metrics_on_serve_port

ALLOW_WRITES_FLAG = "--allow-writes"

# Feast 0.67's read routes (feast/feature_server.py, get_app): online features, vector search, health, and the
# FastAPI docs; and /metrics, which Metrics answers in front of this gate. Everything else is refused in read-only mode.
READ_PATHS = frozenset(
    {"/get-online-features", "/search", "/retrieve-online-documents", "/health", "/docs", "/openapi.json", METRICS_PATH}
)
READ_PREFIXES = ("/v1/vector_stores",)

_FORBIDDEN = b'{"detail":"read-only feature server: start serve with --allow-writes to use this endpoint"}'


def is_read_path(path: str) -> bool:
    """True when ``path`` is one of the feature server's read routes."""
    path = path.rstrip("/") or "/"
    return path in READ_PATHS or any(path == p or path.startswith(p + "/") for p in READ_PREFIXES)


class ReadOnly:
    """ASGI middleware: requests to a read route pass to ``app``; any other HTTP request gets 403, any other
    WebSocket is closed with 1008 (policy violation). Lifespan events pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or is_read_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await respond(send, 403, _FORBIDDEN, "application/json")


def install_wrappers(*, read_only: bool) -> None:
    """Wrap every app Feast builds from now on (see the module docstring for why this seam): ``/metrics`` always,
    and the read-only gate unless writes were asked for."""
    from feast import feature_server

    keep_metrics_on_serve_port()
    build = feature_server.get_app

    def wrapped_app(*args: Any, **kwargs: Any) -> Metrics:
        app: ASGIApp = build(*args, **kwargs)
        return Metrics(ReadOnly(app) if read_only else app)

    feature_server.get_app = wrapped_app


def main(argv: list[str]) -> int:
    """Run Feast's CLI with ``argv`` (minus our flag), read-only unless ``--allow-writes`` is among them."""
    feast_args = [a for a in argv if a != ALLOW_WRITES_FLAG]
    if "feast" not in sys.modules:  # run as its own process: start Feast as every CLI child does (feast_launch)
        from ingestion.store.feast_launch import hide_plotting, skip_typeguard

        skip_typeguard()
        hide_plotting()
    install_wrappers(read_only=ALLOW_WRITES_FLAG not in argv)
    from feast.cli.cli import cli

    cli.main(args=feast_args, prog_name="feast", standalone_mode=True)
    return 0  # pragma: no cover - standalone click exits itself


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
