"""A data dir never mixes environments, the OHLCV fallback never takes a simulator, bars outside the requested range
go to quarantine, and an unwritable data dir gives one line (or a failed health check), never a traceback.

The scenarios run the real commands in child processes against loopback Polygon simulators standing in for "real"
servers (a key set, a base URL), a real Redis, and the built-in simulators when no key is set.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pandas as pd
import pytest
from fixtures.chaos import drift_where
from fixtures.simulators import MakePolygonRest

from ingestion.config import ACCEPT_ENVIRONMENT_VARIABLE as ACCEPT_VARIABLE
from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE
from ingestion.errors import ConfigError
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.engine import OUTSIDE_REQUESTED
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store.environment import VendorEnvironment, claim, record_path, recorded
from ingestion.store.offline import read_dataset
from ingestion.store.quarantine import Quarantine

D = dt.date
NY = "America/New_York"
RANGE = ["--from", "2024-01-02", "--to", "2024-01-31"]
BACKFILL = ["backfill", "ohlcv", "--symbols", "AAPL", *RANGE, "--no-online"]


def _env(s: Settings, **extra: str) -> dict[str, str]:
    """The process environment of a command on ``s``, with no vendor key unless ``extra`` sets one."""
    env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.pop(ACCEPT_VARIABLE, None)
    env.update({"FEAST_DATA_DIR": str(s.data_dir), "FEAST_REPO_PATH": str(s.repo_path), "REDIS_URL": s.redis_url or ""})
    env.update(extra)
    return env


def _ingestion(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingestion", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# -- a data dir records its environment and refuses another ---------------------------------------------------------


def test_a_simulator_data_dir_refuses_a_real_key_and_back(
    make_polygon_rest: MakePolygonRest, make_applied_repo: Callable[[], Settings]
) -> None:
    s = make_applied_repo()
    real = make_polygon_rest()  # a "real" Polygon: reached with a key at its own base URL
    keyed = {"POLYGON_API_KEY": POLYGON_SIM_KEY, "POLYGON_BASE_URL": real.url}

    keyless = _ingestion(BACKFILL, _env(s))
    assert keyless.returncode == 0, keyless.stderr
    synthetic = read_dataset(s.data_dir, OHLCV_DAILY, ["AAPL"])
    assert len(synthetic) > 0

    # Before: the real-key run found the range covered, made no request and kept the synthetic rows as Polygon's.
    refused = _ingestion(BACKFILL, _env(s, **keyed))
    assert refused.returncode == 2
    line = _one_error_line(refused)
    assert "built-in simulator" in line and "FEAST_DATA_DIR" in line and ACCEPT_VARIABLE in line
    assert real.server.log.by_route["aggs"] == 0
    assert len(read_dataset(s.data_dir, OHLCV_DAILY, ["AAPL"])) == len(synthetic)
    assert recorded(s.data_dir)["polygon"].kind == "simulator"

    # Accepted on purpose: the record takes the real server, and now a keyless run is the one refused.
    accepted = _ingestion(BACKFILL, _env(s, **keyed, **{ACCEPT_VARIABLE: "1"}))
    assert accepted.returncode == 0, accepted.stderr
    assert recorded(s.data_dir)["polygon"].kind == "real"
    text = record_path(s.data_dir).read_text()
    assert POLYGON_SIM_KEY not in text  # a fingerprint, never the key
    assert stat.S_IMODE(record_path(s.data_dir).stat().st_mode) == 0o600
    again = _ingestion(BACKFILL, _env(s))
    assert again.returncode == 2 and "built-in simulator" in _one_error_line(again)


def test_a_rotated_key_is_the_same_environment_another_server_is_not(tmp_path: Path) -> None:
    polygon = VendorEnvironment.of(simulated=False, base_url="https://api.polygon.io", key="old-key")
    claim(tmp_path, "polygon", polygon)
    rotated = VendorEnvironment.of(simulated=False, base_url="https://API.polygon.io:443/", key="new-key")
    claim(tmp_path, "polygon", rotated)  # same server, new key: accepted, and the record says which key wrote last
    assert recorded(tmp_path)["polygon"].key_fingerprint == rotated.key_fingerprint
    mirror = VendorEnvironment.of(simulated=False, base_url="https://api.massive.com", key="new-key")
    with pytest.raises(ConfigError, match=r"api\.polygon\.io"):
        claim(tmp_path, "polygon", mirror)
    with pytest.raises(ConfigError, match="built-in simulator"):
        claim(tmp_path, "polygon", VendorEnvironment.of(simulated=True, base_url="http://127.0.0.1:1", key=None))
    # Another vendor has its own record: a simulated Unusual Whales beside a real Polygon is no conflict.
    claim(tmp_path, "uw", VendorEnvironment.of(simulated=True, base_url="http://127.0.0.1:2", key="sim"))
    claim(tmp_path, "uw", VendorEnvironment.of(simulated=True, base_url="http://127.0.0.1:3", key="sim"))
    claim(tmp_path, "polygon", mirror, accept=True)
    assert recorded(tmp_path)["polygon"].base_url == "https://api.massive.com:443"
    assert "old-key" not in record_path(tmp_path).read_text()


# -- the fallback never takes a simulator ---------------------------------------------------------------------------


def test_a_polygon_outage_with_a_real_key_never_falls_back_to_the_simulator(
    make_polygon_rest: MakePolygonRest, make_applied_repo: Callable[[], Settings]
) -> None:
    s = make_applied_repo()
    real = make_polygon_rest()
    real.faults.add(Fault.status(403, routes={"aggs"}))  # not entitled: "unavailable", the fallback's trigger
    done = _ingestion(BACKFILL, _env(s, POLYGON_API_KEY=POLYGON_SIM_KEY, POLYGON_BASE_URL=real.url))
    # Before: exit 0 with the Unusual Whales simulator's bars stored as real history.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "no fallback" in done.stdout and "UW_API_TOKEN" in done.stdout
    assert "error AAPL" in done.stdout
    assert read_dataset(s.data_dir, OHLCV_DAILY).empty
    assert "uw" not in recorded(s.data_dir)


# -- bars outside the requested range -------------------------------------------------------------------------------


def _ms(ts: str) -> int:
    return int(pd.Timestamp(ts, tz=NY).value // 1_000_000)


@pytest.mark.parametrize(
    ("timespan", "moves"),
    [
        # A daily bar moved three years ahead, another years back (before the warm-up the unit asked for).
        ("day", {_ms("2024-01-10"): _ms("2027-01-11"), _ms("2024-01-17"): _ms("2019-03-04")}),
        # A minute bar moved into the next month (another unit) and one into the year before.
        (
            "minute",
            {_ms("2024-01-10 10:00"): _ms("2024-02-12 10:00"), _ms("2024-01-11 11:00"): _ms("2023-06-01 11:00")},
        ),
    ],
)
def test_bars_outside_the_requested_range_go_to_quarantine(
    make_polygon_rest: MakePolygonRest, make_applied_repo: Callable[[], Settings], timespan: str, moves: dict[int, int]
) -> None:
    s = make_applied_repo()
    sim = make_polygon_rest()
    sim.faults.add(Fault.drift(drift_where(lambda r: r.get("t") in moves, lambda r: {**r, "t": moves[r["t"]]}),
                               routes={"aggs"}))  # fmt: skip
    client = PolygonRESTClient(POLYGON_SIM_KEY, sim.url, use_cache=False)
    now = pd.Timestamp("2024-07-01 12:00", tz="UTC")
    lo, hi = (D(2024, 1, 2), D(2024, 1, 31)) if timespan == "day" else (D(2024, 1, 10), D(2024, 1, 11))
    summary = backfill_ohlcv(client, Sinks.for_settings(s), ["AAPL"], lo, hi, timespan, now=now)
    client.close()
    name = (OHLCV_DAILY if timespan == "day" else OHLCV_MINUTE).name
    assert summary.ok and summary.quarantined[name] == len(moves)
    stored = read_dataset(s.data_dir, name, ["AAPL"])
    assert stored["window_start"].min().tz_convert(NY).date() >= lo
    assert stored["window_start"].max().tz_convert(NY).date() <= hi
    rows = Quarantine(s.data_dir).read()
    outside = rows[rows["reason"] == OUTSIDE_REQUESTED]
    assert len(outside) == len(moves)
    moved_to = {pd.Timestamp(orjson.loads(p)["window_start"]) for p in outside["payload"]}
    assert moved_to == {pd.Timestamp(ms, unit="ms", tz="UTC") for ms in moves.values()}


# -- an unwritable data dir -----------------------------------------------------------------------------------------


def _unwritable(s: Settings, tmp_path: Path) -> Settings:
    # Root ignores permission bits, so a chmod'ed folder would still be writable here: a path under a regular file
    # cannot be created by anyone.
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    return replace(s, data_dir=blocker / "data")


def test_health_reports_an_unwritable_data_dir_as_a_failed_check(
    make_applied_repo: Callable[[], Settings], tmp_path: Path
) -> None:
    s = _unwritable(make_applied_repo(), tmp_path)
    done = _ingestion(["health", "--no-vendors"], _env(s))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert any(line.startswith("FAIL data dir") and "not writable" in line for line in done.stdout.splitlines())
    assert "ok   redis" in done.stdout


@pytest.mark.parametrize("args", [BACKFILL, ["materialize"], ["apply"]], ids=["backfill", "materialize", "apply"])
def test_commands_on_an_unwritable_data_dir_end_in_one_line(
    make_applied_repo: Callable[[], Settings], tmp_path: Path, args: list[str]
) -> None:
    s = _unwritable(make_applied_repo(), tmp_path)
    done = _ingestion(args, _env(s))
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "not writable" in line and "FEAST_DATA_DIR" in line
