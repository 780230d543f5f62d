"""A vendor that echoes the caller's key in its error text: the job's printed summary quotes the error, never the key.

The summary is printed with ``print``, outside the logging filter, so it is redacted where it is made
(``JobSummary.table``). The server is a real loopback HTTP server; the backfill is a real ``python -m ingestion``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingestion.config import Settings

KEY = "pk_live_Echo7Qw3Zr9Ty5Ux1Vb"


class _Echoing(BaseHTTPRequestHandler):
    """Every request is answered with Polygon's error envelope (``200`` and ``"status": "ERROR"``, the form whose
    text used to reach the summary whole) repeating the credential it was sent."""

    def do_GET(self) -> None:
        sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        body = json.dumps({"status": "ERROR", "error": f"key {sent} may not read {self.path}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def echoing_vendor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echoing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_key_echoed_by_the_vendor_never_reaches_the_printed_summary(
    make_applied_repo: Callable[[], Settings], echoing_vendor: str
) -> None:
    s = make_applied_repo()
    env = {k: v for k, v in os.environ.items() if k not in ("MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.update(
        FEAST_DATA_DIR=str(s.data_dir),
        FEAST_REPO_PATH=str(s.repo_path),
        REDIS_URL=s.redis_url or "",
        POLYGON_API_KEY=KEY,
        POLYGON_BASE_URL=echoing_vendor,
    )
    args = ["backfill", "ohlcv", "--symbols", "AAPL", "--from", "2024-01-02", "--to", "2024-01-31"]
    proc = subprocess.run(
        [sys.executable, "-m", "ingestion", *args, "--no-online", "--no-fallback"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # The run failed for AAPL and its summary says so, quoting the vendor's message ...
    assert proc.returncode == 1, proc.stderr
    error_lines = [line for line in proc.stdout.splitlines() if line.startswith("error AAPL")]
    assert error_lines, proc.stdout
    assert "may not read" in error_lines[0]
    # ... with the key masked everywhere the user can see it.
    assert KEY not in proc.stdout
    assert KEY not in proc.stderr
