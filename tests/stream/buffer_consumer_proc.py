"""A bridge consumer of the tick buffer as a bare process, for ``test_buffer_kill_fast.py``: the real
:class:`~ingestion.stream.consumer.BufferConsumer` with the Parquet writer and the REST refiller, but no Feast online
store (importing Feast costs a process 10-15 s on a loaded machine; the consumer's online state is its checkpoint).

    python buffer_consumer_proc.py REDIS_URL BUFFER PARTITIONS CONSUMER DATA_DIR REST_URL LEASE_MS

SIGTERM commits and hands the partitions over; the summary is printed as one JSON line at the end."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import redis

from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store.offline import OfflineWriter
from ingestion.stream.buffer import TickBuffer
from ingestion.stream.consumer import BufferConsumer
from ingestion.stream.refill import Refiller, rest_minute_fetcher


def main(argv: list[str]) -> int:
    url, name, partitions, consumer, data_dir, rest_url, lease_ms = argv
    buffer = TickBuffer(redis.Redis.from_url(url), name, int(partitions))
    rest = PolygonRESTClient(api_key=POLYGON_SIM_KEY, base_url=rest_url, use_cache=False)
    bridge = BufferConsumer(
        buffer,
        consumer,
        None,
        OfflineWriter(Path(data_dir), fsync=False),
        Refiller(rest_minute_fetcher(rest)),
        flush_interval_ms=50,
        commit_interval_s=0.3,
        lease_ms=int(lease_ms),
    )
    signal.signal(signal.SIGTERM, lambda _signum, _frame: bridge.stop())
    bridge.run()
    print(json.dumps(bridge.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
