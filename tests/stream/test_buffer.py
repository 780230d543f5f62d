"""The durable tick buffer in one process: reader and consumers on threads, a real redis-server, the WebSocket and REST
simulators, real Feast reads. The kill -9 test with real processes is ``test_buffer_kill.py``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from buffer_checks import assert_bars_are_the_truth, assert_online_is_the_truth, assert_quotes_unique, wait_until
from fixtures.stream import STREAM_DAY, STREAM_REPLAY, STREAM_SYMBOLS, MakeClient

from ingestion.config import Settings
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_ws import PolygonWsServer
from ingestion.store.offline import OfflineWriter, part_files
from ingestion.store.online import OnlineWriter
from ingestion.stream import snapshot
from ingestion.stream.aggregator import MINUTE_MS, Aggregator
from ingestion.stream.bridge import subscription_topics
from ingestion.stream.buffer import TickBuffer
from ingestion.stream.consumer import BufferConsumer
from ingestion.stream.reader import BufferReader
from ingestion.stream.refill import MinuteFetcher, Refiller

LATENESS_MS = 2_000


@pytest.fixture
def tick_buffer(redis_url: str) -> Iterator[TickBuffer]:
    """A buffer of two partitions (AAPL -> 0, MSFT -> 1) under a name of its own, deleted afterwards."""
    buffer = TickBuffer(redis.Redis.from_url(redis_url), name=f"test-{uuid.uuid4().hex[:8]}", partitions=2)
    buffer.setup()
    yield buffer
    buffer.reset()


@dataclass
class Rig:
    """What every buffered run here uses: simulators, Feast, a buffer, a data dir (Redis flushed first)."""

    make_ws: Any
    make_client: MakeClient
    store: Any
    repo: Settings
    fetch: MinuteFetcher
    market: Market
    buffer: TickBuffer
    data_dir: Path


@pytest.fixture
def rig(
    make_polygon_ws: Any,
    make_ws_client: MakeClient,
    stream_store: Any,
    applied_repo: Settings,
    redis_client: redis.Redis,
    rest_fetcher: MinuteFetcher,
    stream_market: Market,
    tick_buffer: TickBuffer,
    tmp_path: Path,
) -> Rig:
    del redis_client  # flushed: no row of another test is online
    return Rig(make_polygon_ws, make_ws_client, stream_store, applied_repo, rest_fetcher, stream_market, tick_buffer,
               tmp_path)  # fmt: skip


class Running:
    """A reader or consumer running on a thread; ``join`` re-raises what it raised."""

    def __init__(self, target: Any) -> None:
        self.error: BaseException | None = None
        self.result: Any = None

        def main() -> None:
            try:
                self.result = target()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the thread did not stop"
        if self.error is not None:
            raise self.error
        return self.result


def consumer(rig: Rig, name: str, **kwargs: Any) -> BufferConsumer:
    # Its own Redis connection and its own FeatureStore, as a process would have (a store's registry cache is not
    # shared between threads).
    from ingestion.store.feast_repo import open_store

    buffer = rig.buffer
    mine = TickBuffer(redis.Redis(connection_pool=buffer.r.connection_pool), buffer.name, buffer.partitions)
    assert rig.repo.redis_url is not None
    store = open_store(rig.repo, rig.repo.redis_url)
    kwargs.setdefault("commit_interval_s", 0.3)
    return BufferConsumer(
        mine,
        name,
        OnlineWriter(store),
        OfflineWriter(rig.data_dir, fsync=False),
        Refiller(rig.fetch),
        flush_interval_ms=50,
        lease_ms=1_500,
        lateness_ms=LATENESS_MS,
        record_ids=True,
        **kwargs,
    )


def start_reader(rig: Rig) -> tuple[PolygonWsServer, BufferReader, Running]:
    """A fresh WebSocket simulator replaying STREAM_REPLAY, and a reader feeding the rig's buffer from it."""
    server = rig.make_ws(replay=STREAM_REPLAY)
    client = rig.make_client(server)
    client.subscribe(subscription_topics(STREAM_SYMBOLS))
    reader = BufferReader(client, rig.buffer)
    return server, reader, Running(lambda: reader.run(seconds=120))


def assert_run_is_the_truth(rig: Rig, server: PolygonWsServer) -> None:
    assert_quotes_unique(rig.data_dir)
    assert_online_is_the_truth(rig.store, rig.market, server.sent, STREAM_SYMBOLS, STREAM_DAY)
    through = last_closed_minute(server)
    assert assert_bars_are_the_truth(rig.data_dir, rig.market, STREAM_SYMBOLS, STREAM_DAY, through)


def caught_up(server: PolygonWsServer, reader: BufferReader, buffer: TickBuffer) -> bool:
    sent = server.sent()
    return (
        server.replay_done.is_set()
        and reader.stats.trades + reader.stats.quotes == len([e for e in sent if e["ev"] in ("T", "Q")])
        and buffer.backlog() == 0
    )


def finish(rig: Rig, server: PolygonWsServer, reader: BufferReader, reading: Running, last: BufferConsumer) -> None:
    """Run ``last`` until every tick sent is committed, then stop the reader and it."""
    running = Running(last.run)
    wait_until(lambda: caught_up(server, reader, rig.buffer), 120, lambda: f"backlog {rig.buffer.backlog()}")
    reader.stop()
    reading.join()
    last.stop()
    running.join()


def last_closed_minute(server: PolygonWsServer) -> int:
    """The last minute every partition's watermark has closed (each partition's watermark is its own symbols')."""
    newest = min(max(e["t"] for e in server.sent(ev="T", symbol=s)) for s in STREAM_SYMBOLS)
    limit = newest - MINUTE_MS - LATENESS_MS
    return limit - limit % MINUTE_MS


def test_aggregator_state_survives_a_snapshot_bit_for_bit(stream_market: Market, polygon_ws: PolygonWsServer) -> None:
    events = [e for e in polygon_ws.truth() if e["ev"] in ("T", "Q")]
    half = len(events) // 2
    whole, resumed = Aggregator(), Aggregator()
    for agg in (whole, resumed):
        agg.on_trades([e for e in events[:half] if e["ev"] == "T"])
        agg.on_quotes([e for e in events[:half] if e["ev"] == "Q"])
        agg.on_gap()
    resumed = snapshot.load(snapshot.dump(resumed), lateness_ms=whole.lateness_ms)
    for agg in (whole, resumed):
        agg.on_trades([e for e in events[half:] if e["ev"] == "T"])
        agg.on_quotes([e for e in events[half:] if e["ev"] == "Q"])
        agg.close_bars()
    stamp = __import__("pandas").Timestamp("2024-03-04T15:00:00Z")
    assert whole.take_rows(stamp).equals(resumed.take_rows(stamp))
    assert whole.take_bars(stamp).equals(resumed.take_bars(stamp))
    assert [(w.start_ms, w.end_ms, w.reason) for w in whole.pending_windows()] == [
        (w.start_ms, w.end_ms, w.reason) for w in resumed.pending_windows()
    ]
    assert snapshot.dump(whole) == snapshot.dump(resumed)


def test_two_consumers_share_the_load_and_write_the_truth(rig: Rig) -> None:
    a, b = consumer(rig, "a"), consumer(rig, "b")
    runs = [Running(a.run), Running(b.run)]
    # Both members hold one partition each before a tick is sent, so the split does not depend on timing.
    wait_until(lambda: len(a.owned) == len(b.owned) == 1, 30, lambda: f"owned a={list(a.owned)} b={list(b.owned)}")
    server, reader, reading = start_reader(rig)
    wait_until(
        lambda: caught_up(server, reader, rig.buffer),
        120,
        lambda: (
            f"reader {reader.stats}, backlog {rig.buffer.backlog()}, errors {[r.error for r in runs]}, "
            f"a {a.summary()}, b {b.summary()}"
        ),
    )
    reader.stop()
    reading.join()
    for c in (a, b):
        c.stop()
    for run in runs:
        run.join()

    ids_a = {(p, i) for p, ids in a.stats.committed_ids.items() for i in ids}
    ids_b = {(p, i) for p, ids in b.stats.committed_ids.items() for i in ids}
    assert len(ids_a) > 0 and len(ids_b) > 0, (len(ids_a), len(ids_b))
    assert not ids_a & ids_b, "an entry was committed by both consumers"
    assert len(ids_a) + len(ids_b) == reader.stats.entries, "committed entries != entries the reader wrote"
    assert a.stats.ticks + b.stats.ticks == reader.stats.trades + reader.stats.quotes
    assert a.stats.refill_errors == b.stats.refill_errors == 0
    assert_run_is_the_truth(rig, server)


class Killed(BaseException):
    """Stands for SIGKILL inside one process: nothing after the raise runs (no commit, no release)."""


def test_a_commit_interrupted_after_its_files_is_replayed_into_the_same_files(rig: Rig) -> None:
    victim = consumer(rig, "solo", commit_interval_s=0.5)
    commits = {"n": 0}
    real_commit = victim.buffer.commit

    def commit_then_die(*args: Any, **kwargs: Any) -> None:
        # The third commit dies after its intent and its part files, before XACK and the checkpoint.
        commits["n"] += 1
        if commits["n"] == 3:
            raise Killed
        real_commit(*args, **kwargs)

    victim.buffer.commit = commit_then_die  # type: ignore[method-assign]
    server, reader, reading = start_reader(rig)
    dying = Running(victim.loop)
    dying.thread.join(120)
    assert isinstance(dying.error, Killed), dying.error
    intents = [rig.buffer.intent(p) for p in range(rig.buffer.partitions)]
    assert any(i is not None for i in intents), "the interrupted commit left no intent"
    files_before = {f.name for f in part_files(rig.data_dir, "realtime_quotes")}

    # The same consumer name restarts (as a restarted process would) and takes its partitions back at once.
    restarted = consumer(rig, "solo")
    finish(rig, server, reader, reading, restarted)

    assert restarted.stats.replayed_commits >= 1
    # The replayed commit rewrote the dead one's files (same rows, same names) rather than adding copies.
    assert files_before <= {f.name for f in part_files(rig.data_dir, "realtime_quotes")}
    assert_run_is_the_truth(rig, server)


def test_a_refill_whose_commit_lost_its_lease_counts_once_when_the_partition_comes_back(rig: Rig) -> None:
    """The kill test's short ``day_volume``: a consumer refilled a seed window, lost the lease before its checkpoint
    (a stalled process), and later took the partition back from the checkpoint before that refill. Its refiller
    must not skip the window's minutes as already counted: the state that counted them was never committed."""
    solo = consumer(rig, "solo")
    real_commit = solo.buffer.commit
    stolen: list[int] = []

    def commit_after_the_lease_expired(partition: int, name: str, ids: Any, ckpt: Any) -> None:
        if solo.stats.refill_windows > 0 and not stolen:
            # The lease expires during the first commit that carries a refill: another consumer's for a moment.
            stolen.append(partition)
            rig.buffer.r.set(rig.buffer.key(partition, "lease"), "thief", px=200)
        real_commit(partition, name, ids, ckpt)

    solo.buffer.commit = commit_after_the_lease_expired  # type: ignore[method-assign]
    server, reader, reading = start_reader(rig)
    finish(rig, server, reader, reading, solo)

    assert stolen and solo.stats.leases_lost == 1 and solo.stats.acquired == 3, solo.summary()
    assert solo.stats.refill_errors == 0
    assert_run_is_the_truth(rig, server)


def test_single_process_mode_streams_through_the_buffer(
    applied_repo: Settings, stream_market: Market, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import io
    import shutil
    from dataclasses import replace

    from ingestion.cli import build_parser
    from ingestion.store.offline import read_dataset
    from ingestion.stream.runner import BufferOptions, StreamOptions, run_stream

    args = build_parser().parse_args(["stream", "--buffer", "redis", "--role", "bridge", "--consumer", "x"])
    assert (args.buffer, args.role, args.consumer, args.buffer_partitions) == ("redis", "bridge", "x", 8)
    from ingestion.commands import stream as command
    from ingestion.errors import ConfigError

    with pytest.raises(ConfigError, match="need --buffer redis"):
        command.run(build_parser().parse_args(["stream", "--role", "bridge"]))
    data_dir = tmp_path_factory.mktemp("stream-buffered")
    shutil.copy(applied_repo.registry_path, data_dir / applied_repo.registry_path.name)
    s = replace(applied_repo, polygon_api_key=None, data_dir=data_dir)
    buffer = BufferOptions(name=f"cli-{uuid.uuid4().hex[:8]}", partitions=2)
    opts = StreamOptions(symbols=list(STREAM_SYMBOLS), seconds=3.0, sim_day=STREAM_DAY, sim_rate=3_000, buffer=buffer)
    out = io.StringIO()
    assert run_stream(s, opts, out) == 0
    text = out.getvalue()
    assert "role all" in text and "Freshness" in text, text
    quotes = read_dataset(data_dir, "realtime_quotes", symbols=list(STREAM_SYMBOLS))
    assert set(quotes["symbol"]) == set(STREAM_SYMBOLS)
    assert_quotes_unique(data_dir)
    TickBuffer(redis.Redis.from_url(str(applied_repo.redis_url)), buffer.name, 2).reset()
