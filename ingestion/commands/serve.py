"""``serve``: Feast's HTTP feature server on the repo, for consumers that are not Python.

It runs the real ``feast serve`` (through :mod:`ingestion.commands.serve_app`) on the repo's own yaml, with this run's
data dir and Redis in its environment, and defaults that differ from Feast's:

* **read-only** unless ``--allow-writes``: the server has no authentication, and Feast's ``/push``,
  ``/write-to-online-store`` and ``/materialize`` would let any caller rewrite the online store;
* no access log (each line carries the request path, which is noise at this rate);
* ``--max-requests 0``, because gunicorn's default recycles the worker every 1000 requests, which stalls serving for
  about a second each time (feast-notes);
* Feast's Prometheus metrics (``--metrics``: requests, latency, resource use, ``feast_feature_freshness_seconds``)
  at ``GET /metrics`` on the server's own host and port, instead of a second server on port 8000 of every interface
  (:mod:`ingestion.commands.serve_metrics`).

SIGTERM (and Ctrl-C), which the command line turns into an interrupt for every command
(:func:`ingestion.shutdown.interrupt_on_signals`), stop the server's whole process group (gunicorn's master and its
workers) and then the embedded redis-server, instead of leaving them running. A ``--port`` in use is a one-line
error before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys

from ingestion.config import Settings
from ingestion.jobs.args import check_port_free, listening, port, whole_number

HELP = "serve online features over HTTP (feast serve, read-only by default) for non-Python consumers"

# How long gunicorn gets to stop its workers after SIGTERM before the group is killed.
STOP_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=port(), default=6566)
    parser.add_argument("--workers", type=whole_number("workers"), default=1)
    parser.add_argument(
        "--max-requests",
        type=whole_number("requests", minimum=0),
        default=0,
        help="recycle a worker after N requests (0 = never; Feast's is 1000)",
    )
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="also expose /push, /write-to-online-store and /materialize (unauthenticated: trusted networks only)",
    )


def serve_command(
    s: Settings,
    host: str,
    port: int,
    workers: int = 1,
    max_requests: int = 0,
    *,
    allow_writes: bool = False,
) -> list[str]:
    """The ``feast serve`` command line on the repo and its own yaml; run it with ``feast_env(s, redis_url)``, which
    carries the data dir and Redis (never the command line: the URL may hold a password)."""
    from ingestion.commands.serve_app import ALLOW_WRITES_FLAG

    return [
        sys.executable, "-m", "ingestion.commands.serve_app", *([ALLOW_WRITES_FLAG] if allow_writes else []),
        "-c", str(s.repo_path),
        "serve", "--host", host, "--port", str(port), "--workers", str(workers),
        "--max-requests", str(max_requests), "--no-access-log", "--metrics",
    ]  # fmt: skip


def stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the process group led by ``proc`` (gunicorn stops its workers gracefully), SIGKILL after
    ``timeout`` seconds, and reap ``proc``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    # Workers that outlive their master would be orphans: the group is killed either way.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_env
    from ingestion.store.redis_server import redis_url_or_embedded

    s = settings()
    # gunicorn would find the port taken only after Feast has loaded, and say so in a page of retries.
    listening("--port", args.port, lambda: check_port_free(args.host, args.port))
    with redis_url_or_embedded(s.redis_url) as url:
        cmd = serve_command(s, args.host, args.port, args.workers, args.max_requests, allow_writes=args.allow_writes)
        # Its own session: the server and its workers form one process group to stop together, and a Ctrl-C in
        # the terminal reaches only this process, which then stops them in order.
        proc = subprocess.Popen(cmd, env=feast_env(s, url), start_new_session=True)
        try:
            return proc.wait()
        finally:
            stop_group(proc)
