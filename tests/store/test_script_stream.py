"""The bulk write's script stream against a real redis-server: every batch answered, script cache loss survived,
errors raised with the connection left clean, and the writer's chunked path writing every entity once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from feast import FeatureStore
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import REALTIME_QUOTES
from ingestion.store.feast_online import EnvRedisOnlineStore
from ingestion.store.feast_repo import open_store
from ingestion.store.online import OnlineWriter
from ingestion.store.online.sender import ScriptStream

# Writes ARGV[1] to each key that has no value yet; returns how many it wrote. Like the store's compare-and-set, a
# call that already ran changes nothing the second time, which is what makes a resend after NOSCRIPT safe.
SET_IF_ABSENT = """
local written = 0
for k = 1, #KEYS do
  if redis.call('SETNX', KEYS[k], ARGV[1]) == 1 then written = written + 1 end
end
return written
"""


def _batches(prefix: str, batches: int, calls: int, keys: int) -> Iterator[list[tuple[list[bytes], list[bytes]]]]:
    for b in range(batches):
        yield [([f"{prefix}:{b}:{c}:{k}".encode() for k in range(keys)], [f"v{b}".encode()]) for c in range(calls)]


def test_every_batch_is_answered_and_summed(redis_client: redis.Redis) -> None:
    stream = ScriptStream(redis_client, SET_IF_ABSENT)
    for batch in _batches("sum", batches=12, calls=20, keys=7):
        stream.send(batch)
    assert stream.finish() == 12 * 20 * 7
    assert redis_client.dbsize() == 12 * 20 * 7
    assert redis_client.get("sum:11:19:6") == b"v11"


def test_a_flushed_script_cache_is_reloaded_and_nothing_is_lost_or_counted_twice(redis_client: redis.Redis) -> None:
    stream = ScriptStream(redis_client, SET_IF_ABSENT)
    redis_client.script_flush()  # as after a server restart: every queued EVALSHA answers NOSCRIPT
    for batch in _batches("flush", batches=6, calls=10, keys=5):
        stream.send(batch)
    assert stream.finish() == 6 * 10 * 5
    assert redis_client.dbsize() == 6 * 10 * 5


def test_a_script_error_is_raised_and_the_client_stays_usable(redis_client: redis.Redis) -> None:
    redis_client.hset("wrongtype", "f", "v")  # INCR on a hash key is a WRONGTYPE error inside the script
    stream = ScriptStream(redis_client, "return redis.call('INCR', KEYS[1])")
    stream.send([([b"fine:1"], [])])
    stream.send([([b"wrongtype"], [])])
    stream.send([([b"fine:2"], [])])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        stream.finish()
    assert redis_client.get("fine:1") == b"1"
    assert redis_client.ping()  # the pool hands out a clean connection, not one with unread replies


def test_abort_drops_the_connection_and_the_client_stays_usable(redis_client: redis.Redis) -> None:
    stream = ScriptStream(redis_client, SET_IF_ABSENT)
    for batch in _batches("abort", batches=3, calls=5, keys=5):
        stream.send(batch)
    stream.abort()
    redis_client.set("after", "1")
    assert redis_client.get("after") == b"1"


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url
    return open_store(applied_repo, applied_repo.redis_url)


def test_chunked_write_covers_every_entity_whatever_the_call_size(store: FeatureStore, redis_url: str) -> None:
    """Entities spanning several encode chunks and send batches, with a call size that divides neither."""
    from ingestion.store.online import writer as writer_module

    symbols = [f"CH{i:05d}" for i in range(1_500)]
    frame = dataset_frame(REALTIME_QUOTES, symbols, "2024-03-01 15:00", 2, freq="s", seed=3)
    client = redis.Redis.from_url(redis_url)
    writer = OnlineWriter(store, client=client, keys_per_call=97, record_every_s=None)
    original = writer_module.ENCODE_CHUNK
    writer_module.ENCODE_CHUNK = 400
    try:
        first = writer.write("realtime_quotes", frame)
        again = writer.write("realtime_quotes", frame)
    finally:
        writer_module.ENCODE_CHUNK = original
    assert (first.entities, first.written) == (1_500, 1_500)
    assert (again.entities, again.written) == (1_500, 0)  # equal event times: nothing newer
    layout = writer.layout("realtime_quotes")
    assert client.exists(*(writer.entity_key(layout.join_key, s) for s in symbols)) == 1_500


def test_a_failing_chunk_source_aborts_the_write_and_the_client_stays_usable(
    store: FeatureStore, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    writer = OnlineWriter(store, client=client, record_every_s=None)
    frame = dataset_frame(REALTIME_QUOTES, ["FAILA", "FAILB"], "2024-03-01 15:00", 1, freq="s", seed=2)
    prepared = writer.prepare("realtime_quotes", frame)

    def chunks() -> Iterator[object]:
        yield prepared
        raise RuntimeError("encoding failed")

    with pytest.raises(RuntimeError, match="encoding failed"):
        EnvRedisOnlineStore.write_chunks(writer.online, writer.config, chunks())  # type: ignore[arg-type]
    assert client.ping()
