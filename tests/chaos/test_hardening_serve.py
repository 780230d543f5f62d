"""``serve`` end to end as a user runs it (``python -m ingestion serve``, embedded Redis): read-only by default,
writes only with ``--allow-writes``, and SIGTERM leaves no child process behind (gunicorn, its workers,
redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psutil
import pytest
import requests
from fixtures.serving import wait_for_health

from ingestion.commands.serve_app import is_read_path
from ingestion.config import Settings
from ingestion.store.redis_server import free_port

QUOTE = {
    "symbol": ["AAPL"],
    "event_timestamp": [datetime.now(UTC).replace(microsecond=0).isoformat()],
    "created_timestamp": [datetime.now(UTC).replace(microsecond=0).isoformat()],
    "last_price": [187.5],
    "bid": [187.4],
    "ask": [187.6],
    "mid": [187.5],
    "spread": [0.2],
    "volume_1m": [1200],
    "vwap_1m": [187.45],
    "trade_count_1m": [31],
    "day_volume": [5_000_000],
    "return_since_open": [0.01],
}
PUSH = {"push_source_name": "realtime_quotes_push", "df": QUOTE, "to": "online"}
READ = {"features": ["realtime_quotes:last_price"], "entities": {"symbol": ["AAPL"]}}


class Served:
    """A running ``python -m ingestion serve`` and its base URL."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def post(self, path: str, body: object) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, timeout=60)


@pytest.fixture
def serve(make_applied_repo: Callable[[], Settings]) -> Iterator[Callable[..., Served]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> Served:
        s = make_applied_repo()
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded redis-server
        env.update({"FEAST_DATA_DIR": str(s.data_dir), "FEAST_REPO_PATH": str(s.repo_path)})
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingestion", "serve", "--port", str(port), *flags],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for_health(proc, url)
        return Served(proc, url)

    yield start
    for proc in started:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _stop_with_sigterm(served: Served) -> None:
    """SIGTERM to serve, then: serve exits and not one of its descendants survives."""
    children = psutil.Process(served.proc.pid).children(recursive=True)
    names = {c.name() for c in children}
    assert any("redis-server" in n for n in names), names
    assert len(children) >= 3, names  # redis-server, the Feast server (gunicorn master) and a worker
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=120)
    _gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], [(p.pid, p.name()) for p in alive]


def test_read_routes_are_known_and_write_routes_are_not() -> None:
    for path in (
        "/get-online-features",
        "/health",
        "/search",
        "/v1/vector_stores/x/search",
        "/retrieve-online-documents",
    ):
        assert is_read_path(path)
    for path in ("/push", "/write-to-online-store", "/materialize", "/materialize-incremental", "/", "/mcp"):
        assert not is_read_path(path)


def test_serve_is_read_only_by_default_and_sigterm_stops_every_child(serve: Callable[..., Served]) -> None:
    served = serve()
    writes = [
        ("/push", PUSH),
        ("/write-to-online-store", {"feature_view_name": "x", "df": {}}),
        ("/materialize", {}),
        ("/materialize-incremental", {"end_ts": "2024-01-01T00:00:00"}),
    ]
    for path, body in writes:
        response = served.post(path, body)
        assert response.status_code == 403, (path, response.text)
        assert "--allow-writes" in response.text
    read = served.post("/get-online-features", READ)
    assert read.status_code == 200, read.text
    names = read.json()["metadata"]["feature_names"]
    values = dict(zip(names, (r["values"] for r in read.json()["results"]), strict=True))
    assert values["last_price"] == [None]  # nothing was written: the refused push did not land
    _stop_with_sigterm(served)


def test_allow_writes_exposes_push(serve: Callable[..., Served]) -> None:
    served = serve("--allow-writes")
    pushed = served.post("/push", PUSH)
    assert pushed.status_code == 200, pushed.text
    read = served.post("/get-online-features", READ)
    assert read.status_code == 200, read.text
    names = read.json()["metadata"]["feature_names"]
    values = dict(zip(names, (r["values"] for r in read.json()["results"]), strict=True))
    assert values["last_price"] == [187.5]
    _stop_with_sigterm(served)
