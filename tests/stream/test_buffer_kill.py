"""``kill -9`` of a bridge consumer mid-stream, with real processes: ``stream --buffer redis --role reader`` and two
``--role bridge`` consumers on the session's redis-server, fed by the WebSocket simulator and refilled from the REST
simulator (both in this process). The killed consumer's partitions go to the survivor (``XAUTOCLAIM`` of the dead
consumer's pending entries), the killed one restarts under its name and takes its share back, and at the end the
online values and offline rows are the ticks sent: none lost, none folded or written twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
import redis
from buffer_checks import (
    assert_bars_are_the_truth,
    assert_online_is_the_truth,
    assert_quotes_unique,
    committed_ticks,
    wait_until,
)
from fixtures.stream import STREAM_DAY, STREAM_SYMBOLS

from ingestion.config import Settings
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer
from ingestion.simulators.polygon_ws import PolygonWsServer, Replay
from ingestion.stream.aggregator import MINUTE_MS
from ingestion.stream.buffer import TickBuffer

# About 45 s of replay: a consumer is killed early, its lease expires, and it restarts (a process start takes
# 10-15 s on a loaded 2-core machine) while ticks still come.
REPLAY = Replay(day=STREAM_DAY, symbols=STREAM_SYMBOLS, start_minute=5, minutes=6, rate=120)
LEASE_MS = 5_000


class Roles:
    """The reader and consumer processes of one buffer."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, role: str, consumer: str | None = None) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "ingestion", "stream", "--symbols", ",".join(STREAM_SYMBOLS), "--buffer", "redis"]
        cmd += ["--role", role, "--buffer-name", self.name, "--buffer-partitions", "2", "--lease-ms", str(LEASE_MS)]
        cmd += ["--flush-ms", "50", "--offline-interval", "0.5"]
        if consumer is not None:
            cmd += ["--consumer", consumer]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> str:
        """SIGTERM, then the process's stdout (it must exit 0)."""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
        return out

    def describe(self) -> str:
        """Processes that exited, with the end of their stderr (for failure messages)."""
        parts = []
        for proc in self.procs:
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                err = proc.stderr.read() if proc.stderr is not None else ""
                parts.append(f"{proc.args[-2:]} exited {proc.returncode}: {err[-2000:]}")
        return "; ".join(parts)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def summary(out: str, prefix: str) -> dict[str, Any]:
    line = next(line for line in out.splitlines() if line.startswith(prefix))
    parsed: dict[str, Any] = json.loads(line[len(prefix) :])
    return parsed


@pytest.mark.slow  # four Python processes that import Feast: minutes on a shared 2-core machine
def test_a_consumer_killed_mid_stream_loses_nothing_and_duplicates_nothing(
    applied_repo: Settings,
    make_polygon_ws: Any,
    polygon_rest: PolygonRestServer,
    stream_market: Market,
    stream_store: Any,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("buffer-kill")
    shutil.copy(applied_repo.registry_path, data_dir / applied_repo.registry_path.name)
    server: PolygonWsServer = make_polygon_ws(replay=REPLAY)
    name = f"kill-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FEAST_DATA_DIR": str(data_dir),
        "FEAST_REPO_PATH": str(applied_repo.repo_path),
        "POLYGON_API_KEY": POLYGON_SIM_KEY,
        "POLYGON_WS_URL": server.url,
        "POLYGON_BASE_URL": polygon_rest.url,
        "UW_API_TOKEN": "unused-by-the-stream",
    }
    buffer = TickBuffer(redis.Redis.from_url(redis_url), name, partitions=2)
    roles = Roles(env, name)
    try:
        victim = roles.start("bridge", "a")
        survivor = roles.start("bridge", "b")
        # Both consumers own one partition before the first tick (the replay starts at the reader's subscription).
        owners = lambda: {buffer.owner(p) for p in range(2)}  # noqa: E731
        wait_until(lambda: owners() == {"a", "b"}, 120, lambda: f"partition owners {owners()} {roles.describe()}")
        reader = roles.start("reader")
        truth = len(server.truth(ev="T")) + len(server.truth(ev="Q"))
        # Mid-stream: the victim has committed, and a third of the ticks at most are in checkpoints.
        victim_partition = next(p for p in range(2) if buffer.owner(p) == "a")
        wait_until(
            lambda: buffer.checkpoint(victim_partition).seq >= 2 and buffer.pending(victim_partition) > 0,
            120,
            lambda: f"victim's partition: commit {buffer.checkpoint(victim_partition).seq}",
        )
        assert committed_ticks(buffer) < truth, "the stream ended before the kill"
        victim.kill()
        victim.wait(30)
        assert victim.returncode == -signal.SIGKILL
        # The survivor takes the dead consumer's partition (its pending entries) once the lease has expired...
        wait_until(lambda: owners() == {"b"}, 120, lambda: f"partition owners {owners()} {roles.describe()}")
        # ... and the victim, restarted under its name, gets its share back.
        restarted = roles.start("bridge", "a")
        wait_until(lambda: owners() == {"a", "b"}, 120, lambda: f"partition owners {owners()} {roles.describe()}")
        wait_until(server.replay_done.is_set, 120, "the replay did not end")
        wait_until(
            lambda: committed_ticks(buffer) >= truth and buffer.backlog() == 0,
            120,
            lambda: f"committed {committed_ticks(buffer)} of {truth} ticks, backlog {buffer.backlog()}",
        )
        committed = committed_ticks(buffer)
        read = summary(roles.stop(reader), "Reader: ")
        outputs = [summary(roles.stop(p), "Consumer: ") for p in (survivor, restarted)]
    finally:
        roles.kill_all()
        buffer.reset()

    # 0 lost, 0 folded twice: every tick the reader buffered is in exactly one partition's committed state.
    assert read["trades"] + read["quotes"] == truth == committed, (read, truth, committed)
    survivor_out, restarted_out = outputs
    assert survivor_out["acquired"] >= 2, survivor_out  # its own partition, then the dead consumer's
    assert survivor_out["entries"] > 0 and restarted_out["entries"] > 0, json.dumps(outputs)
    assert_online_is_the_truth(stream_store, stream_market, server.sent, STREAM_SYMBOLS, STREAM_DAY)
    newest = min(max(e["t"] for e in server.sent(ev="T", symbol=s)) for s in STREAM_SYMBOLS)
    through = newest - MINUTE_MS - 2_000
    assert assert_bars_are_the_truth(data_dir, stream_market, STREAM_SYMBOLS, STREAM_DAY, through - through % MINUTE_MS)
    assert_quotes_unique(data_dir)
