"""Pre-computed vectors: written with the per-view values in one atomic step, read by stock get_online_features.

The threaded test races writers (our fast writer and Feast's own write path, both through our store class) on
the same symbols with interleaved event times, while a reader takes atomic snapshots of each hash. In every
snapshot the vector's slice must carry exactly the view's stored event time and values: never older.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest
import redis
from feast import FeatureStore
from feast.protos.feast.core.PrecomputedFeatureVector_pb2 import PrecomputedFeatureVector
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY, REALTIME_QUOTES
from ingestion.store.feast_repo import open_store
from ingestion.store.online import OnlineWriter
from ingestion.store.online.layout import names_header, segment_field

SYMBOLS = ["VECA", "VECB", "VECC"]


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url
    return open_store(applied_repo, applied_repo.redis_url)


def _snapshot_ok(client: redis.Redis, writer: OnlineWriter, symbol: str) -> bool:
    """One atomic HMGET: the daily_model slice of ohlcv_daily against the view's own fields."""
    layout = writer.layout("ohlcv_daily")
    key = writer.entity_key("symbol", symbol)
    fields = [segment_field("daily_model", "ohlcv_daily"), layout.ts_field, *layout.fields]
    slice_, ts, *values = client.hmget(key, fields)
    if ts is None:
        return slice_ is None
    vector = PrecomputedFeatureVector.FromString(names_header(layout.features) + slice_)
    (stamp,) = vector.fv_timestamps
    return stamp.event_timestamp.SerializeToString() == ts and [v.SerializeToString() for v in vector.values] == [
        v or b"" for v in values
    ]


def test_a_vector_is_never_older_than_its_views_under_concurrent_writers(store: FeatureStore, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    check = OnlineWriter(store, record_every_s=None)
    client.delete(*[check.entity_key("symbol", s) for s in SYMBOLS])
    rounds, writers = 60, 3
    base = pd.Timestamp("2024-06-03 20:00", tz="UTC")
    failures: list[str] = []
    done = threading.Event()

    def write(k: int) -> None:
        writer = OnlineWriter(store, record_every_s=None)
        for i in range(rounds):
            frame = dataset_frame(OHLCV_DAILY, SYMBOLS, base, 1, seed=100 * k + i)
            # Interleaved event times: writer k owns every writers-th second, so writes race and lose both ways.
            frame["event_timestamp"] = base + timedelta(seconds=writers * i + k)
            if k == 0:
                store.write_to_online_store("ohlcv_daily", frame)  # Feast's path, through our store class
            else:
                writer.write("ohlcv_daily", frame)

    def read() -> None:
        while not done.is_set():
            for symbol in SYMBOLS:
                if not _snapshot_ok(client, check, symbol):
                    failures.append(symbol)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert failures == []
    assert all(_snapshot_ok(client, check, s) for s in SYMBOLS)

    # Stock get_online_features of the service (the vector) equals the per-view read of the same features.
    store.config.online_store.read_at = (base + timedelta(days=1)).to_pydatetime()
    service = store.get_feature_service("daily_model")
    rows = [{"symbol": s} for s in SYMBOLS]
    by_vector = store.get_online_features(features=service, entity_rows=rows).to_dict()
    refs = [f"ohlcv_daily:{c.name}" for c in OHLCV_DAILY.features]
    by_view = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    assert {k: by_vector[k] for k in by_view} == by_view


def test_every_write_path_keeps_the_vector_current(store: FeatureStore, redis_url: str) -> None:
    """Our writer, Feast's push path and a later newer write: the service read follows each one."""
    writer = OnlineWriter(store, record_every_s=None)
    frame = dataset_frame(REALTIME_QUOTES, ["VECQ"], "2024-06-03 15:00", 2, freq="s", seed=7, null_share=0.0)
    store.config.online_store.read_at = (frame["event_timestamp"].max() + timedelta(minutes=1)).to_pydatetime()
    service = store.get_feature_service("intraday_model")
    writer.write("realtime_quotes", frame.iloc[[0]])
    first = store.get_online_features(features=service, entity_rows=[{"symbol": "VECQ"}]).to_dict()
    assert first["last_price"] == [frame["last_price"].iloc[0]]
    store.write_to_online_store("realtime_quotes", frame.iloc[[1]])
    second = store.get_online_features(features=service, entity_rows=[{"symbol": "VECQ"}]).to_dict()
    assert second["last_price"] == [frame["last_price"].iloc[1]]
    # An unknown symbol reads as nulls (Feast's own vector path would raise for a missing vector).
    none = store.get_online_features(features=service, entity_rows=[{"symbol": "VECNONE"}]).to_dict()
    assert none["last_price"] == [None]


def test_feast_precompute_refreshes_only_current_slices(store: FeatureStore, redis_url: str) -> None:
    """``write_precomputed_vector`` (Feast's ``precompute``): a slice from an older snapshot is not written back."""
    client = redis.Redis.from_url(redis_url)
    writer = OnlineWriter(store, record_every_s=None)
    frame = dataset_frame(OHLCV_DAILY, ["VECP"], "2024-06-03 20:00", 2, seed=8, null_share=0.0)
    writer.write("ohlcv_daily", frame.iloc[[0]])
    key = writer.entity_key("symbol", "VECP")
    field = segment_field("daily_model", "ohlcv_daily")
    old_slice = client.hget(key, field)
    client.hdel(key, field)  # as if written before slices existed
    store.precompute_feature_service("daily_model")
    # Slices go out a batch at a time; the store's next read sends the last batch.
    store.get_online_features(features=["ohlcv_daily:close"], entity_rows=[{"symbol": "VECP"}])
    assert client.hget(key, field) == old_slice
    writer.write("ohlcv_daily", frame.iloc[[1]])
    newer = client.hget(key, field)
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from ingestion.store.feast_online import EnvRedisOnlineStore

    online = EnvRedisOnlineStore()
    # A stale snapshot: the first row's slice, parsed back into the vector Feast's precompute would have written.
    names = [f"ohlcv_daily__{c.name}" for c in OHLCV_DAILY.features]
    stale = PrecomputedFeatureVector.FromString(names_header(names) + old_slice)
    entity = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val="VECP")])
    online.write_precomputed_vector(store.config, "daily_model", store.project, entity, stale.SerializeToString())
    assert online.flush_precomputed() == 0
    assert client.hget(key, field) == newer
