"""SIGTERM stops every command as Ctrl-C does, and the stream runs as a service: each a real ``python -m ingestion``
subprocess with the built-in simulators and its own embedded redis-server (no ``REDIS_URL``), as a user runs it.

* A backfill signalled mid-run exits 143 (130 for SIGINT) with no traceback, leaves no child process (the embedded
  redis-server) and no half-written file, and a rerun ends with exactly the rows of an uninterrupted run. Before,
  SIGTERM ended the process on the spot: redis-server kept running and nothing was cleaned up.
* ``stream --health-port`` answers 200 once the bridge runs on the embedded Redis (it answered 503: the check looked
  for the unset ``REDIS_URL``, and a replayed session's quotes always looked hours old); SIGTERM then stops the stream
  gracefully (exit 0, every batch flushed and reported) and its redis-server with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil
import pytest
import requests
from fixtures.chaos import Figures
from fixtures.serving import wait_for_health

from ingestion.config import Settings
from ingestion.store.offline import count_duplicates, frames_equal_ignoring_write_time, read_dataset
from ingestion.store.redis_server import free_port

BACKFILL = [
    sys.executable, "-m", "ingestion", "backfill", "ohlcv", "--symbols", "AAPL,TSLA,MSFT",
    "--from", "2024-01-01", "--to", "2024-03-31", "--timespan", "minute", "--workers", "1", "--no-online",
]  # fmt: skip


def _env(s: Settings) -> dict[str, str]:
    """No vendor keys (the built-in simulators) and no REDIS_URL (an embedded redis-server), in ``s``'s data dir."""
    drop = ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"FEAST_DATA_DIR": str(s.data_dir), "FEAST_REPO_PATH": str(s.repo_path)})
    return env


def _children(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("redis-server" in c.name() for c in children), [c.name() for c in children]
    return children


@pytest.mark.parametrize(
    ("sig", "exit_code"), [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)]
)
def test_signalled_backfill_stops_cleanly_and_resumes_to_the_same_rows(
    sig: signal.Signals, exit_code: int, make_applied_repo: Callable[[], Settings], record: Callable[[Figures], None]
) -> None:
    reference, victim = make_applied_repo(), make_applied_repo()
    ref = subprocess.Popen(BACKFILL, env=_env(reference), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(BACKFILL, env=_env(victim), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Signalled as soon as its first unit has landed: later units are still to come.
    offline = victim.data_dir / "offline" / "ohlcv_minute"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not any(offline.rglob("*.parquet")):
        time.sleep(0.05)
    assert proc.poll() is None, "the backfill ended before it could be signalled"
    children = _children(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == exit_code, err
    assert "Traceback" not in err and f"stopped by {sig.name}" in err, err
    assert "summary" not in out  # it stopped: no summary of a finished run
    _gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], [(p.pid, p.name()) for p in alive]
    assert not list(victim.data_dir.rglob(".*.tmp"))  # no half-written part file
    stopped_at = len(read_dataset(victim.data_dir, "ohlcv_minute"))

    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    rerun = subprocess.run(BACKFILL, env=_env(victim), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    expected, got = read_dataset(reference.data_dir, "ohlcv_minute"), read_dataset(victim.data_dir, "ohlcv_minute")
    assert 0 < stopped_at < len(expected)
    assert count_duplicates(got, "ohlcv_minute") == 0
    assert frames_equal_ignoring_write_time(got, expected, "ohlcv_minute")
    record(
        Figures(
            f"{sig.name} of the OHLCV backfill (embedded Redis)",
            expected=len(expected),
            stored=len(got),
            missing=max(0, len(expected) - len(got)),
            notes=f"exit {exit_code} with {stopped_at} rows on disk, no child left; rerun identical row for row",
        )
    )


def test_stream_health_is_200_on_the_embedded_redis_and_sigterm_stops_it_gracefully(
    make_applied_repo: Callable[[], Settings], record: Callable[[Figures], None]
) -> None:
    s = make_applied_repo()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # --seconds bounds a run that the test fails to stop; SIGTERM ends it long before.
    stream = ["stream", "--symbols", "AAPL", "--seconds", "600", "--health-port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestion", *stream],
        env=_env(s),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_health(proc, url)  # polls until 200, failing with its stderr if the stream exits first
        checks = {c["name"]: c for c in requests.get(f"{url}/health", timeout=30).json()["checks"]}
        assert checks["redis"]["ok"] and checks["registry"]["ok"] and checks["stream"]["ok"], checks
        children = _children(proc)
        proc.send_signal(signal.SIGTERM)
        raw_out, raw_err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out, err = raw_out.decode(), raw_err.decode()
    assert proc.returncode == 0, err  # the stream's own graceful stop: a normal end
    assert "Traceback" not in err and "Online:" in out, out + err
    _gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], [(p.pid, p.name()) for p in alive]
    assert len(read_dataset(s.data_dir, "realtime_quotes", symbols=["AAPL"])) > 0  # the last batches were flushed
    record(
        Figures(
            "stream --health-port on the embedded Redis, then SIGTERM",
            notes="GET /health 200 (redis, registry, connection); SIGTERM: exit 0, batches flushed, no child left",
        )
    )
