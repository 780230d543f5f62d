"""A feature service holding an on-demand view: its plain features still obey the ttl online, as offline.

Feast reads a ``precompute_online`` service per view when it holds an on-demand view (no vector); our store must
still null the values older than their view's ttl at the read instant. Real Redis, real Feast, an on-demand view
applied into an isolated registry.

The on-demand view's own output, computed from inputs already expired (null, as offline), is asserted in
``test_online_odfv_stale_inputs.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pytest
from feast import FeatureService, FeatureStore, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import materialize_latest

READ_AT = pd.Timestamp("2024-06-10 12:00:00", tz="UTC")
STALE, FRESH = "ODFVSTALE", "ODFVFRESH"
REFS = ["ohlcv_daily:close", "close_doubled:close_x2"]


@pytest.fixture
def store(make_applied_repo: Callable[[], Settings]) -> FeatureStore:
    settings = make_applied_repo()
    assert settings.redis_url and OHLCV_DAILY.ttl is not None
    store = open_store(settings, settings.redis_url)
    daily = store.get_feature_view("ohlcv_daily")

    @on_demand_feature_view(sources=[daily], schema=[Field(name="close_x2", dtype=Float64)], mode="pandas")  # type: ignore[untyped-decorator]
    def close_doubled(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"close_x2": inputs["close"] * 2.0})

    service = FeatureService(name="with_odfv", features=[daily[["close"]], close_doubled], precompute_online=True)
    store.apply([close_doubled, service])
    frame = dataset_frame(OHLCV_DAILY, [STALE, FRESH], "2024-06-01", 1, seed=5, null_share=0.0)
    frame["event_timestamp"] = [READ_AT - OHLCV_DAILY.ttl - timedelta(seconds=1), READ_AT - timedelta(hours=1)]
    OfflineWriter(settings.data_dir).append(OHLCV_DAILY, frame)
    assert materialize_latest(store, OHLCV_DAILY, settings.data_dir).written == 2
    store.config.online_store.read_at = READ_AT.to_pydatetime()
    return store


def _by_symbol(frame: pd.DataFrame, column: str) -> dict[str, object]:
    return {s: (None if pd.isna(v) else v) for s, v in zip(frame["symbol"], frame[column], strict=True)}


def test_a_service_with_an_on_demand_view_still_nulls_expired_values(store: FeatureStore) -> None:
    entity = pd.DataFrame({"symbol": [STALE, FRESH], "event_timestamp": [READ_AT] * 2})
    offline = _by_symbol(store.get_historical_features(entity_df=entity, features=REFS).to_df(), "close")
    assert offline[STALE] is None and offline[FRESH] is not None
    rows = [{"symbol": STALE}, {"symbol": FRESH}]
    for features in (REFS, store.get_feature_service("with_odfv")):
        online = store.get_online_features(features=features, entity_rows=rows).to_df()
        assert _by_symbol(online, "close") == offline, features
