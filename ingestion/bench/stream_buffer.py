"""The stream through the durable tick buffer, for :mod:`ingestion.bench.stream`: receive -> online latency at a paced
tick rate with a reader and ``consumers`` bridge consumer **processes** (one group, Redis Streams between them).

The reader runs in the benchmark's process (fed by the same feeder process as the other rows); each consumer is
``python -m ingestion.bench.stream_buffer --consumer NAME ...`` writing into the same Redis (Feast's bytes) and
Parquet as the in-process bridge, so the rows compare like with like. Latency is per tick, from the reader's receive
time of its frame to the end of the consumer's online write (wall clocks of one machine); the consumers print their
latency histograms and the benchmark merges them. Throughput is ticks over the time from the first frame received to
the last tick a consumer read from the buffer, as the in-process row counts to the last tick it took in (the tail
from there to Redis is in the latency); the same clock run to the last online write is reported beside it. The run
then waits until every entry is acknowledged, i.e. written offline too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

PARTITIONS = 8


def consumer_main(name: str, buffer_name: str, partitions: int, data_dir: Path) -> None:
    """A consumer process: until SIGTERM, then its summary and latency histogram (nonzero buckets) as JSON."""
    from ingestion.config import settings
    from ingestion.shutdown import on_signals
    from ingestion.store.feast_repo import open_store
    from ingestion.store.offline import OfflineWriter
    from ingestion.store.online import OnlineWriter
    from ingestion.store.redis_conn import connect
    from ingestion.stream.aggregator import session_bounds
    from ingestion.stream.buffer import TickBuffer
    from ingestion.stream.consumer import BufferConsumer
    from ingestion.stream.heap import freeze_startup_heap

    s = settings()
    assert s.redis_url is not None
    writer = _Timed(OnlineWriter(open_store(s, s.redis_url)))
    writer.inner.layout("realtime_quotes")  # resolve the view before any tick counts
    session_bounds(1_709_562_600_000)  # and load the exchange calendar
    buffer = TickBuffer(connect(s.redis_url), buffer_name, partitions)
    consumer = BufferConsumer(buffer, name, writer, OfflineWriter(data_dir), None, flush_interval_ms=100)
    freeze_startup_heap()  # as `stream --role bridge` does before its loop
    print("READY", flush=True)
    with on_signals(lambda _signum: consumer.stop()):
        consumer.run()
    counts = consumer.recv_latency.counts
    buckets = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
    report = {
        "summary": consumer.summary(),
        "histogram": buckets,
        "last_write_ns": writer.last_ns,
        "last_read_ns": consumer.stats.last_read_ns,
    }
    print(json.dumps(report), flush=True)


class _Timed:
    """An online sink that remembers when its last write returned (epoch ns): the end of the throughput clock."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last_ns = 0

    def write(self, view: str, frame: Any) -> Any:
        result = self.inner.write(view, frame)
        self.last_ns = time.time_ns()
        return result


def run_buffered(
    url: str, events: int, redis_url: str, repo_data_dir: Path, data_dir: Path, consumers: int = 2
) -> dict[str, Any]:
    """Ticks/s and per-tick receive -> online latency through the buffer with ``consumers`` consumer processes
    (``repo_data_dir`` holds the applied registry; ``data_dir`` gets their Parquet)."""
    import redis

    from ingestion.polygon.websocket import Backoff, PolygonWebSocketClient
    from ingestion.stream.bridge import LatencyHistogram
    from ingestion.stream.buffer import TickBuffer
    from ingestion.stream.heap import frozen_heap
    from ingestion.stream.reader import BufferReader

    name = f"bench-{uuid.uuid4().hex[:8]}"
    buffer = TickBuffer(redis.Redis.from_url(redis_url), name, PARTITIONS)
    buffer.setup()
    env = {**os.environ, "REDIS_URL": redis_url, "FEAST_DATA_DIR": str(repo_data_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ingestion.bench.stream_buffer", "--consumer", f"c{i}", name, str(data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(consumers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":
                raise RuntimeError("a buffer consumer did not start")
        deadline = time.monotonic() + 120
        share = -(-PARTITIONS // consumers)
        while not all(len([p for p in range(PARTITIONS) if buffer.owner(p) == f"c{i}"]) > 0 for i in range(consumers)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the consumers did not share the {PARTITIONS} partitions ({share} each)")
            time.sleep(0.1)
        # The feeder closes after one replay; a reconnect would replay it again into the buffer, so none happens here.
        client = PolygonWebSocketClient(api_key="bench", ws_url=url, backoff=Backoff(initial=3600, cap=3600))
        client.subscribe("T.*,Q.*")
        reader = BufferReader(client, buffer)
        # The clock starts at the first frame received, as for the in-process bridge.
        client.track_receipts()
        with frozen_heap():  # as `stream --role reader` does
            reader.run(seconds=600, until=lambda: reader.stats.trades + reader.stats.quotes >= events)
        t0_ns = reader.first_receipt_ns
        deadline = time.monotonic() + 600
        while buffer.backlog() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # every entry acknowledged: online and offline writes done
        merged = LatencyHistogram()
        per_consumer = []
        last_ns = last_read_ns = 0
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=120)
            report = json.loads(out.strip().splitlines()[-1])
            per_consumer.append(report["summary"]["ticks"])
            print(f"buffer consumer: {json.dumps(report['summary'])}", file=sys.stderr)
            last_ns = max(last_ns, report["last_write_ns"])
            last_read_ns = max(last_read_ns, report["last_read_ns"])
            for bucket, count in report["histogram"].items():
                merged.counts[int(bucket)] += count
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        buffer.reset()
    if sum(per_consumer) != events:
        raise RuntimeError(f"the consumers committed {sum(per_consumer)} of {events} ticks")
    return {
        # As the in-process bridge's row: ticks over first receipt -> last tick taken in (by a consumer, here); what
        # it then takes to reach Redis is the latency below, and to_last_write the same clock run to the last write.
        "ticks_per_s": events / ((last_read_ns - t0_ns) / 1e9),
        "ticks_per_s_to_last_write": events / ((last_ns - t0_ns) / 1e9),
        "p50_ms": merged.percentile(50),
        "p99_ms": merged.percentile(99),
        "ticks_per_consumer": per_consumer,
        "reader_append_lag_p99_ms": reader.append_lag.percentile(99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion.bench.stream_buffer")
    parser.add_argument("--consumer", required=True)
    parser.add_argument("buffer")
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
    consumer_main(args.consumer, args.buffer, PARTITIONS, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
