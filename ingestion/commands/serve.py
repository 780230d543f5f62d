"""``serve``: Feast's HTTP feature server on the repo, for consumers that are not Python.

It wraps ``feast serve`` with the effective configuration and two defaults that differ from Feast's: no access log
(each line carries the request path, which is noise at this rate) and ``--max-requests 0``, because gunicorn's
default recycles the worker every 1000 requests, which stalls serving for about a second each time (feast-notes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from ingestion.config import Settings

HELP = "serve online features over HTTP (feast serve) for non-Python consumers"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=6566)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--max-requests", type=int, default=0, help="recycle a worker after N requests (0 = never; Feast's is 1000)"
    )


def serve_command(
    s: Settings, redis_url: str, host: str, port: int, workers: int = 1, max_requests: int = 0
) -> list[str]:
    """The ``feast serve`` command line for these settings (the effective yaml is rendered first)."""
    from ingestion.store.feast_repo import render_store_yaml

    store_yaml = render_store_yaml(s, redis_url)
    return [
        sys.executable, "-m", "feast.cli.cli", "-c", str(s.repo_path), "-f", str(store_yaml),
        "serve", "--host", host, "--port", str(port), "--workers", str(workers),
        "--max-requests", str(max_requests), "--no-access-log",
    ]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_env
    from ingestion.store.redis_server import redis_url_or_embedded

    s = settings()
    with redis_url_or_embedded(s.redis_url) as url:
        cmd = serve_command(s, url, args.host, args.port, args.workers, args.max_requests)
        return subprocess.run(cmd, env=feast_env(s), check=False).returncode
