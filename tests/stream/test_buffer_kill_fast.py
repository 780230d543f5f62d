"""``kill -9`` of a bridge consumer mid-stream, short form (seconds, in the default suite): two consumer processes
(``buffer_consumer_proc.py``: the real consumer, Parquet and REST refills, no Feast import) on the session's
redis-server, the reader on a thread of this process fed by the WebSocket simulator. The victim is killed after its
second commit; the survivor claims its pending entries once the lease expires, the victim restarts under its name
and takes its share back. At the end every tick sent is folded exactly once into the checkpointed state, which holds
the truth's last price, quote and day volume, and the offline rows are the truth's, none twice. The long form with
the real ``stream`` command and Feast reads is ``test_buffer_kill.py`` (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from buffer_checks import assert_bars_are_the_truth, assert_quotes_unique, committed_ticks, expected_values, wait_until
from fixtures.stream import STREAM_DAY, STREAM_SYMBOLS

from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer
from ingestion.simulators.polygon_ws import Replay, replay_events
from ingestion.stream.aggregator import MINUTE_MS
from ingestion.stream.buffer import TickBuffer, partition_of

# Six minutes of the session (the rate is unused: the test writes the ticks itself, a third at a time).
REPLAY = Replay(day=STREAM_DAY, symbols=STREAM_SYMBOLS, start_minute=5, minutes=6)
LEASE_MS = 2_000
CHILD = Path(__file__).with_name("buffer_consumer_proc.py")


class Consumers:
    """Consumer processes of one buffer."""

    def __init__(self, redis_url: str, buffer: TickBuffer, data_dir: Path, rest_url: str) -> None:
        self.args = [redis_url, buffer.name, str(buffer.partitions), "", str(data_dir), rest_url, str(LEASE_MS)]
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, name: str) -> subprocess.Popen[str]:
        args = [*self.args[:3], name, *self.args[4:]]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parent.parent), *sys.path])}
        proc = subprocess.Popen([sys.executable, str(CHILD), *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        """SIGTERM (commit and hand over), then the summary line the process printed."""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    def describe(self) -> str:
        exited = [p for p in self.procs if p.poll() is not None and p.returncode != -signal.SIGKILL]
        return "; ".join(f"exited {p.returncode}: {(p.stderr.read() if p.stderr else '')[-2000:]}" for p in exited)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def states(buffer: TickBuffer) -> dict[str, dict[str, Any]]:
    """Every symbol's checkpointed aggregator state (what the consumers committed)."""
    out: dict[str, dict[str, Any]] = {}
    for p in range(buffer.partitions):
        raw = buffer.checkpoint(p).state
        out.update({s["symbol"]: s for s in (orjson.loads(raw)["states"] if raw else [])})
    return out


def append(buffer: TickBuffer, events: list[dict[str, Any]], per_entry: int = 40) -> None:
    """Write ``events`` to the buffer as the reader does: per chunk, one entry per partition, runs of one kind in
    arrival order."""
    for i in range(0, len(events), per_entry):
        items: dict[int, list[Any]] = {}
        for e in events[i : i + per_entry]:
            runs = items.setdefault(partition_of(e["sym"], buffer.partitions), [])
            if not runs or runs[-1][0] != e["ev"]:
                runs.append([e["ev"], []])
            runs[-1][1].append(e)
        buffer.append(items, time.time_ns())


def test_a_consumer_killed_and_restarted_loses_no_tick_and_writes_no_row_twice(
    polygon_rest: PolygonRestServer, stream_market: Market, redis_url: str, tmp_path: Path
) -> None:
    events = [e for e in replay_events(stream_market, REPLAY) if e["ev"] in ("T", "Q")]
    sent = lambda ev, symbol: [e for e in events if e["ev"] == ev and e["sym"] == symbol]  # noqa: E731
    buffer = TickBuffer(redis.Redis.from_url(redis_url), f"killfast-{uuid.uuid4().hex[:8]}", partitions=2)
    buffer.setup()
    consumers = Consumers(redis_url, buffer, tmp_path, polygon_rest.url)
    owners = lambda: {buffer.owner(p) for p in range(2)}  # noqa: E731
    try:
        victim = consumers.start("a")
        survivor = consumers.start("b")
        wait_until(lambda: owners() == {"a", "b"}, 60, lambda: f"owners {owners()} {consumers.describe()}")
        victim_partition = next(p for p in range(2) if buffer.owner(p) == "a")
        # Ticks in small entries until the victim has committed twice and holds entries delivered and not
        # acknowledged; then kill -9.
        sent_upto = 0
        while not (buffer.checkpoint(victim_partition).seq >= 2 and buffer.pending(victim_partition) > 0):
            assert sent_upto < len(events), f"all ticks sent before the kill {consumers.describe()}"
            append(buffer, events[sent_upto : sent_upto + 8], 8)
            sent_upto += 8
            time.sleep(0.01)  # pacing only: the consumers read while ticks still come
        victim.kill()
        victim.wait(30)
        assert committed_ticks(buffer) < len(events)
        rest = events[sent_upto:]
        # Half the rest while the survivor claims the dead consumer's entries once the lease has expired...
        append(buffer, rest[: len(rest) // 2])
        wait_until(lambda: owners() == {"b"}, 60, lambda: f"owners {owners()} {consumers.describe()}")
        # ... and the last once the victim, restarted under its name, has taken its share back.
        restarted = consumers.start("a")
        wait_until(lambda: owners() == {"a", "b"}, 60, lambda: f"owners {owners()} {consumers.describe()}")
        append(buffer, rest[len(rest) // 2 :])
        wait_until(
            lambda: committed_ticks(buffer) >= len(events) and buffer.backlog() == 0,
            120,
            lambda: f"committed {committed_ticks(buffer)} of {len(events)}, backlog {buffer.backlog()}",
        )
        outputs = [consumers.stop(p) for p in (survivor, restarted)]
        committed, final = committed_ticks(buffer), states(buffer)
    finally:
        consumers.kill_all()
        buffer.reset()

    # 0 lost, 0 folded twice: every tick written to the buffer is in exactly one partition's committed state.
    assert committed == len(events), (committed, len(events))
    # The survivor took the dead one's partition; the restarted one its share (a stall under load may move it on).
    assert outputs[0]["acquired"] >= 2 and outputs[1]["acquired"] >= 1, outputs
    assert all(o["refill_errors"] == 0 for o in outputs), outputs
    for sym in STREAM_SYMBOLS:
        price, (bid, ask), volume = expected_values(stream_market, sent, sym, STREAM_DAY)
        st = final[sym]
        assert (st["last_price"], st["bid"], st["ask"]) == (price, bid, ask), sym
        assert st["day_volume"] == pytest.approx(volume), sym
    newest = min(max(e["t"] for e in sent("T", s)) for s in STREAM_SYMBOLS)
    through = newest - MINUTE_MS - 2_000
    assert assert_bars_are_the_truth(tmp_path, stream_market, STREAM_SYMBOLS, STREAM_DAY, through - through % MINUTE_MS)
    assert_quotes_unique(tmp_path)
