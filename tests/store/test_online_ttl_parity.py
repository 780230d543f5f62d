"""TTL parity: online reads null a value older than its view's ttl at the read instant, exactly as the offline join.

Real Redis, real Feast (``feast apply``), our online store class and our offline store on the same rows: one row
a microsecond too old for ``ohlcv_daily``'s 5-day ttl, one exactly at the edge (kept by both: the rule is
``event_timestamp >= read instant - ttl``), both read at one fixed instant through every read path.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from feast import FeatureStore
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import materialize_latest

READ_AT = pd.Timestamp("2024-06-10 12:00:00", tz="UTC")
TTL = OHLCV_DAILY.ttl
STALE, EDGE, FRESH = "TTLSTALE", "TTLEDGE", "TTLFRESH"


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url and TTL is not None
    store = open_store(applied_repo, applied_repo.redis_url)
    frame = dataset_frame(OHLCV_DAILY, [STALE, EDGE, FRESH], "2024-06-01", 1, seed=11, null_share=0.0)
    frame["event_timestamp"] = [
        READ_AT - TTL - timedelta(microseconds=1),
        READ_AT - TTL,
        READ_AT - timedelta(hours=1),
    ]
    OfflineWriter(applied_repo.data_dir).append(OHLCV_DAILY, frame)
    # The session's applied repo may hold other tests' bars too; each of ours is read back by the tests below.
    assert materialize_latest(store, OHLCV_DAILY, applied_repo.data_dir).written >= 3
    store.config.online_store.read_at = READ_AT.to_pydatetime()
    return store


def _closes(frame: pd.DataFrame) -> dict[str, object]:
    return {s: (None if pd.isna(v) else v) for s, v in zip(frame["symbol"], frame["close"], strict=True)}


def test_a_value_older_than_its_ttl_is_null_online_and_offline(store: FeatureStore) -> None:
    symbols = [STALE, EDGE, FRESH]
    entity = pd.DataFrame({"symbol": symbols, "event_timestamp": [READ_AT] * 3})
    offline = _closes(store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df())
    rows = [{"symbol": s} for s in symbols]
    by_refs = _closes(store.get_online_features(features=["ohlcv_daily:close"], entity_rows=rows).to_df())
    # The service reads its pre-computed vector: the same rule applied to the view's slice.
    by_service = _closes(
        store.get_online_features(features=store.get_feature_service("daily_model"), entity_rows=rows).to_df()
    )
    assert offline[STALE] is None and offline[EDGE] is not None and offline[FRESH] is not None
    assert by_refs == offline
    assert by_service == offline


def test_the_stale_value_is_still_stored_and_served_to_an_earlier_read_instant(store: FeatureStore) -> None:
    """Nothing is deleted: TTL is judged at read, so a replay of an earlier instant sees the value."""
    before = store.config.online_store.read_at
    try:
        store.config.online_store.read_at = (READ_AT - timedelta(days=1)).to_pydatetime()
        got = store.get_online_features(features=["ohlcv_daily:close"], entity_rows=[{"symbol": STALE}]).to_dict()
        assert got["close"][0] is not None
    finally:
        store.config.online_store.read_at = before


def test_expired_values_carry_outside_max_age_status(store: FeatureStore) -> None:
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    response = store.get_online_features(features=["ohlcv_daily:close"], entity_rows=[{"symbol": STALE}])
    names = list(response.proto.metadata.feature_names.val)
    vector = response.proto.results[names.index("close")]
    assert vector.statuses[0] == FieldStatus.OUTSIDE_MAX_AGE
    assert not vector.values[0].HasField("double_val")
