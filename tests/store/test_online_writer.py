"""The fast online writer against real Redis and real Feast: same bytes, stock reads, Feast's dedup rule.

The rows here are from 2024 and reads null values older than their view's ttl, so each read is made at an instant
just after the rows it checks (``read_at``, the store's replay setting).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import FeatureStore
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import ETF_FLOW_DAILY, OHLCV_DAILY, OPTIONS_FLOW_DAILY, REALTIME_QUOTES, Dataset
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import OnlineWriter, encode_values, materialize_latest, timestamp_fields


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url
    return open_store(applied_repo, applied_repo.redis_url)


@pytest.fixture(scope="module")
def writer(store: FeatureStore) -> OnlineWriter:
    return OnlineWriter(store)


def _read_after(store: FeatureStore, *frames: pd.DataFrame) -> None:
    """Judge TTLs just after the newest row of ``frames`` (the rows are historical)."""
    newest = max(f["event_timestamp"].max() for f in frames)
    store.config.online_store.read_at = (newest + timedelta(minutes=1)).to_pydatetime()


def _online(store: FeatureStore, features: object, symbols: list[str]) -> pd.DataFrame:
    frame = store.get_online_features(features=features, entity_rows=[{"symbol": s} for s in symbols]).to_df()  # type: ignore[arg-type]
    return frame.set_index("symbol")


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        ("DOUBLE", [1.5, None, float("nan"), 0.0, -2.25e300]),
        ("INT64", [3, None, 0, -1, 2**40]),
        ("BOOL", [True, False, None]),
        ("STRING", ["ab", None, "", "ünï"]),
        ("UNIX_TIMESTAMP", [datetime(2024, 1, 1, 12, 30, tzinfo=UTC), None]),
    ],
)
def test_values_encode_like_feast(value_type: str, values: list[object]) -> None:
    expected = [p.SerializeToString() for p in python_values_to_proto_values(values, ValueType[value_type])]
    assert encode_values(value_type, pd.Series(values)) == expected


def test_timestamps_encode_like_protobuf() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamps = pd.to_datetime(
        ["2024-01-02 21:00:00", "2024-01-02 21:00:00.000123", "1970-01-01"], utc=True, format="ISO8601"
    )
    _, _, encoded = timestamp_fields(stamps.as_unit("us").asi8)
    for stamp, got in zip(stamps, encoded, strict=True):
        proto = Timestamp()
        proto.FromDatetime(stamp.to_pydatetime())
        assert got == proto.SerializeToString()


def _dump(client: redis.Redis, keys: list[bytes]) -> list[dict[bytes, bytes]]:
    return [client.hgetall(k) for k in keys]


def _without_slices(hashes: list[dict[bytes, bytes]]) -> list[dict[bytes, bytes]]:
    return [{k: v for k, v in h.items() if not k.startswith(b"_vec:")} for h in hashes]


def test_hashes_are_byte_identical_to_feast_writes(
    applied_repo: Settings, store: FeatureStore, writer: OnlineWriter, redis_url: str
) -> None:
    """Stock Feast's RedisOnlineStore writes the same per-view bytes; ours adds the vector slices beside them."""
    from ingestion.bench.online_read import stock_store

    frame = dataset_frame(OHLCV_DAILY, ["BYTA", "BYTB", "BYTC"], "2024-03-01 21:00", 3, seed=3)
    latest = frame.sort_values("event_timestamp").drop_duplicates("symbol", keep="last")
    client = redis.Redis.from_url(redis_url)
    keys = [writer.entity_key("symbol", s) for s in latest["symbol"]]
    client.delete(*keys)
    assert applied_repo.redis_url
    stock_store(applied_repo, applied_repo.redis_url).write_to_online_store("ohlcv_daily", latest)
    by_feast = _dump(client, keys)
    client.delete(*keys)
    result = writer.write("ohlcv_daily", frame)
    assert (result.rows_in, result.entities, result.written) == (9, 3, 3)
    ours = _dump(client, keys)
    assert _without_slices(ours) == by_feast
    assert all(len(h) == len(OHLCV_DAILY.features) + 1 for h in by_feast)
    # One slice per precompute service reading ohlcv_daily (daily_model, intraday_model).
    assert all(sorted(k for k in h if k.startswith(b"_vec:")) == [
        b"_vec:daily_model:ohlcv_daily", b"_vec:intraday_model:ohlcv_daily"] for h in ours)  # fmt: skip
    # Feast's own write path (push, materialize) goes through our store class too: same hashes, slices included.
    client.delete(*keys)
    store.write_to_online_store("ohlcv_daily", latest)
    assert _dump(client, keys) == ours


def _check_latest(got: pd.DataFrame, frame: pd.DataFrame, dataset: Dataset) -> None:
    latest = frame.sort_values("event_timestamp").drop_duplicates("symbol", keep="last").set_index("symbol")
    for column in dataset.features:
        for symbol in latest.index:
            want, have = latest.loc[symbol, column.name], got.loc[symbol, column.name]
            assert (pd.isna(want) and pd.isna(have)) or want == have, (symbol, column.name)


def test_stock_get_online_features_reads_several_views_and_a_service(store: FeatureStore, writer: OnlineWriter) -> None:
    symbols = ["ONLA", "ONLB"]
    views = (OHLCV_DAILY, OPTIONS_FLOW_DAILY, ETF_FLOW_DAILY, REALTIME_QUOTES)
    frames = {d.name: dataset_frame(d, symbols, "2024-03-01 21:00", 4, seed=i) for i, d in enumerate(views)}
    for dataset in views:
        writer.write(dataset.name, frames[dataset.name])
    _read_after(store, *frames.values())
    for dataset in views:
        refs = [f"{dataset.name}:{c.name}" for c in dataset.features]
        _check_latest(_online(store, refs, symbols), frames[dataset.name], dataset)
    service = _online(store, store.get_feature_service("daily_model"), [*symbols, "NONE"])
    _check_latest(service, frames[OHLCV_DAILY.name], OHLCV_DAILY)
    _check_latest(service, frames[ETF_FLOW_DAILY.name], ETF_FLOW_DAILY)
    assert service.loc["NONE"].isna().all()
    assert service.loc["ONLA", ["dp_volume", "net_value_30d"]].isna().all()  # views never written stay null


def test_older_row_never_overwrites_newer(store: FeatureStore, writer: OnlineWriter) -> None:
    frame = dataset_frame(REALTIME_QUOTES, ["OLDA"], "2024-03-01 15:00", 3, freq="s", seed=9)
    newest = frame.iloc[[2]]
    assert writer.write("realtime_quotes", newest).written == 1
    older = frame.iloc[[0]].assign(last_price=-5.0)
    same_time = newest.assign(last_price=-6.0)
    assert writer.write("realtime_quotes", older).skipped_not_newer == 1
    assert writer.write("realtime_quotes", same_time).written == 0  # Feast skips an equal event time too
    _read_after(store, frame)
    got = _online(store, ["realtime_quotes:last_price"], ["OLDA"])
    assert got.loc["OLDA", "last_price"] == newest["last_price"].iloc[0]
    newer = frame.iloc[[2]].assign(
        event_timestamp=frame["event_timestamp"].iloc[2] + pd.Timedelta(microseconds=1), last_price=7.0
    )
    assert writer.write("realtime_quotes", newer).written == 1
    assert _online(store, ["realtime_quotes:last_price"], ["OLDA"]).loc["OLDA", "last_price"] == 7.0


def test_in_frame_latest_row_wins_whatever_the_order(store: FeatureStore, writer: OnlineWriter) -> None:
    frame = dataset_frame(REALTIME_QUOTES, ["ORDA", "ORDB"], "2024-03-01 15:00", 50, freq="s", seed=4)
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert writer.write("realtime_quotes", shuffled).entities == 2
    _read_after(store, frame)
    _check_latest(
        _online(store, [f"realtime_quotes:{c.name}" for c in REALTIME_QUOTES.features], ["ORDA", "ORDB"]),
        frame,
        REALTIME_QUOTES,
    )


def test_materialize_latest_loads_newest_offline_row(
    applied_repo: Settings, store: FeatureStore, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    frame = dataset_frame(OPTIONS_FLOW_DAILY, ["MATA", "MATB", "MATC"], "2024-01-25 21:00", 12, seed=5)
    OfflineWriter(data_dir).append(OPTIONS_FLOW_DAILY, frame)
    result = materialize_latest(store, OPTIONS_FLOW_DAILY, data_dir)
    assert (result.keys, result.written) == (3, 3)
    _read_after(store, frame)
    got = _online(
        store, [f"options_flow_daily:{c.name}" for c in OPTIONS_FLOW_DAILY.features], ["MATA", "MATB", "MATC"]
    )
    _check_latest(got, frame, OPTIONS_FLOW_DAILY)
    # Through Settings too; a second run finds nothing newer.
    again = materialize_latest(applied_repo, OPTIONS_FLOW_DAILY, data_dir)
    assert (again.keys, again.written) == (3, 0)


def test_vectorised_varints_match_the_scalar_encoding() -> None:
    import numpy as np

    from ingestion.store.online import varint, varints

    edges = [0, 1, 127, 128, 255, 16383, 16384, 2**31 - 1, 2**32, 2**62, 2**63 - 1, -1, -128, -(2**63)]
    rng = np.random.default_rng(0)
    values = np.concatenate([np.array(edges, dtype=np.int64), rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64)])
    assert varints(values) == [varint(int(v)) for v in values]
