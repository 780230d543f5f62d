"""A whole demo with known fake credentials, under faults: the key and the token appear nowhere.

``python -m ingestion demo`` runs as a subprocess against simulators started here that accept only the fake
credentials, with faults on some routes (5xx, a 401, a 403) so the error paths run, because that is where keys leak:
in retry warnings, error summaries and exception text. Then every place a secret could end up is scanned: each
stdout and stderr line, every file under the data dir (part files, state, registry), every Redis key name and value,
and the Prometheus exposition (textfile and a live ``/metrics`` scrape) after the same failing calls in process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
import redis
from fixtures.chaos import Figures

from ingestion.config import Settings
from ingestion.errors import IngestionError
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.flow import backfill_flow
from ingestion.ops.metrics import serve_metrics, write_textfile
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.runtime import Runtime
from ingestion.simulators.faults import Fault, FaultPlan
from ingestion.simulators.polygon_rest import error_body
from ingestion.simulators.stack import SimulatorStack
from ingestion.simulators.unusual_whales import UWPlan, uw_error
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

FAKE_KEY = "pk_LEAKCANARY_7f3c9a1e5b2d4680"
FAKE_TOKEN = "uw_LEAKCANARY_0a9b8c7d6e5f4321"
SECRETS = (FAKE_KEY, FAKE_TOKEN)


@pytest.fixture
def stack() -> Iterator[SimulatorStack]:
    """Simulators that accept only the fake credentials, with faults on some routes."""
    sims = SimulatorStack(
        polygon_keys={FAKE_KEY: "unlimited"},
        uw_tokens={FAKE_TOKEN: UWPlan("canary", per_minute=100_000, per_day=1_000_000)},
    )
    polygon = FaultPlan(seed=3, error_response=error_body).attach(sims.polygon_rest)
    polygon.add(Fault.status(503, routes="aggs", times=2))
    polygon.add(Fault.status(401, routes="aggs", every=3))
    polygon.add(Fault.reset(routes="aggs", every=7))
    assert sims.uw is not None
    uw = FaultPlan(seed=3, error_response=uw_error).attach(sims.uw)
    uw.add(Fault.status(500, routes={"flow-alerts"}, times=3))
    uw.add(Fault.status(403, routes={"darkpool-ticker"}, times=1))
    with sims:
        yield sims


def _leaks(text: str | bytes, where: str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f"{where}: {secret[:8]}..." for secret in SECRETS if secret.encode() in data]


def _scan_files(root: Path) -> list[str]:
    found: list[str] = []
    for path in root.rglob("*"):
        if path.is_file():
            found += _leaks(path.read_bytes(), str(path.relative_to(root)))
    return found


def _scan_redis(client: redis.Redis) -> list[str]:
    found: list[str] = []
    for key in client.scan_iter(count=1000):
        found += _leaks(key, "redis key name")
        kind = client.type(key)
        if kind == b"string":
            found += _leaks(cast(bytes | None, client.get(key)) or b"", f"redis value of {key[:40]!r}")
        elif kind == b"hash":
            found += _leaks(repr(client.hgetall(key)), f"redis hash {key[:40]!r}")
    return found


def _env(s: Settings, sims: SimulatorStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MASSIVE_API_KEY",)}
    env.update(sims.env())
    env.update(
        {
            "POLYGON_API_KEY": FAKE_KEY,
            "UW_API_TOKEN": FAKE_TOKEN,
            "FEAST_DATA_DIR": str(s.data_dir),
            "FEAST_REPO_PATH": str(s.repo_path),
            "REDIS_URL": s.redis_url or "",
        }
    )
    return env


@pytest.mark.parametrize(
    "symbols", ["AAPL", pytest.param("AAPL,MSFT,SPY", marks=pytest.mark.slow)], ids=["short", "long"]
)
def test_demo_under_faults_leaks_no_secret(
    symbols: str,
    stack: SimulatorStack,
    make_applied_repo: Callable[[], Settings],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    record: Callable[[Figures], None],
) -> None:
    s = make_applied_repo()
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingestion",
            "-v",
            "demo",
            "--symbols",
            symbols,
            "--days",
            "40",
            "--stream-seconds",
            "2",
        ],
        env=_env(s, stack),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The faults made some of it fail (exit 1 is expected); it must have run through the error paths, not crashed.
    assert "Traceback" not in demo.stderr, demo.stderr[-3000:]
    assert "Streaming" in demo.stdout and "error" in (demo.stdout + demo.stderr).lower()
    assert stack.polygon_rest.log.by_status[401] >= 1 and stack.polygon_rest.log.by_status[503] >= 2
    leaks = []
    for n, line in enumerate(demo.stdout.splitlines() + demo.stderr.splitlines()):
        leaks += _leaks(line, f"output line {n}")
    leaks += _scan_files(s.data_dir)
    leaks += _scan_redis(redis_client)

    # The same failing calls in process: logs, exception text and the metrics exposition.
    caplog.set_level(logging.DEBUG)
    exceptions: list[BaseException] = []
    polygon = PolygonRESTClient(FAKE_KEY, stack.polygon_rest.url, redis_url=s.redis_url)
    summary = backfill_ohlcv(polygon, Sinks.for_settings(s), ["MSFT", "NVDA", "TSLA"], *_range(), "day")
    try:
        polygon.get_ticker_details("ZZZZ")
    except IngestionError as exc:
        exceptions.append(exc)
    assert stack.uw is not None
    uw = EnhancedUnusualWhalesClient(FAKE_TOKEN, stack.uw.url, redis_url=s.redis_url, requests_per_minute=None)
    rt = Runtime(replace(s, uw_base_url=stack.uw.url), FAKE_KEY, FAKE_TOKEN, False, False)
    flow = backfill_flow(rt, ["SPY"], *_range(), workers=1, client=uw)
    for bad in (PolygonRESTClient("wrong-key", stack.polygon_rest.url, use_cache=False),):
        try:
            bad.get_daily_bars("AAPL", "2024-01-02", "2024-01-31")
        except IngestionError as exc:
            exceptions.append(exc)
    assert exceptions, "the error paths did not run"
    texts = [r.getMessage() for r in caplog.records] + [f"{e!s} {e!r}" for e in exceptions]
    texts += [*summary.errors.values(), *flow.errors.values(), summary.table(), flow.table()]
    for n, text in enumerate(texts):
        leaks += _leaks(text, f"log/exception text {n}")
    textfile = tmp_path / "ingestion.prom"
    write_textfile(textfile)
    leaks += _leaks(textfile.read_bytes(), "metrics textfile")
    server = serve_metrics(0)
    try:
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
        server.server_close()
    assert b"ingestion_" in scraped
    leaks += _leaks(scraped, "/metrics")
    leaks += _scan_redis(redis_client) + _scan_files(s.data_dir)
    assert not leaks, leaks
    lines = len(demo.stdout.splitlines()) + len(demo.stderr.splitlines())
    files = sum(1 for p in s.data_dir.rglob("*") if p.is_file())
    record(
        Figures(
            f"Secret scan: demo ({symbols}) with a fake key and token, under faults",
            faults=f"polygon 401 x{stack.polygon_rest.log.by_status[401]}, 503 x{stack.polygon_rest.log.by_status[503]}"
            f"; UW 500/403 (demo exit {demo.returncode})",
            notes=f"0 leaks in {lines} output lines (-v), {files} files, {redis_client.dbsize()} Redis keys, "
            f"{len(texts)} log/exception texts, /metrics and textfile",
        )
    )


def _range() -> tuple[object, object]:
    import datetime as dt

    from ingestion.commands.demo import _recent_sessions

    end = _recent_sessions(1)[1]
    return end - dt.timedelta(days=20), end
