"""Materialization intervals: our writes record them, so Feast's freshness and incremental materialize are right.

``materialize_latest`` records its exact interval; a stream write through :class:`OnlineWriter` records
``[oldest, newest]`` of what it wrote, throttled per view, with :meth:`OnlineWriter.close` recording what is pending.
"""

from __future__ import annotations

import pytest
from feast import FeatureStore
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.store.feast_repo import open_store
from ingestion.store.online import OnlineWriter


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url
    return open_store(applied_repo, applied_repo.redis_url)


def _newest_end(store: FeatureStore) -> object:
    store.registry.refresh(store.project)
    view = store.registry.get_feature_view("ohlcv_daily", store.project, allow_cache=False)
    return max(end for _, end in view.materialization_intervals)


def test_writer_records_the_materialization_interval(store: FeatureStore) -> None:
    """A stream write through the writer records its interval, so Feast's freshness sees the view materialized."""
    frame = dataset_frame(OHLCV_DAILY, ["TTLREC"], "2024-06-09 20:00", 1, seed=12)
    writer = OnlineWriter(store, record_every_s=3600.0)
    writer.write("ohlcv_daily", frame)
    writer.close()
    assert _newest_end(store) >= frame["event_timestamp"].max().to_pydatetime()


def test_writes_between_records_are_kept_for_the_next_one(store: FeatureStore) -> None:
    """Within the throttle nothing is recorded; the next due write (or close) records the whole span."""
    now = [0.0]
    writer = OnlineWriter(store, record_every_s=60.0, clock=lambda: now[0])
    first = dataset_frame(OHLCV_DAILY, ["INTA"], "2024-07-01 20:00", 1, seed=13)
    second = dataset_frame(OHLCV_DAILY, ["INTA"], "2024-07-02 20:00", 1, seed=14)
    third = dataset_frame(OHLCV_DAILY, ["INTA"], "2024-07-03 20:00", 1, seed=15)
    writer.write("ohlcv_daily", first)  # first write: recorded at once
    assert _newest_end(store) >= first["event_timestamp"].max().to_pydatetime()
    now[0] = 10.0
    writer.write("ohlcv_daily", second)  # 10 s later: pending
    now[0] = 100.0
    writer.write("ohlcv_daily", third)  # 100 s: due, records through the third
    assert _newest_end(store) >= third["event_timestamp"].max().to_pydatetime()
    writer.close()
