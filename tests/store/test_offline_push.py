"""Rows pushed to the offline store through Feast land as ordinary part files: every reader and ``compact`` see them."""

from __future__ import annotations

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import ENTITY_KEY, EVENT_TS, REALTIME_QUOTES
from ingestion.store.compact import compact
from ingestion.store.offline import PART_PREFIX, dataset_dir, frames_equal_ignoring_write_time, read_dataset


def test_offline_push_is_seen_by_read_dataset_retrieval_and_compact(store: FeatureStore, asof_repo: Settings) -> None:
    s = asof_repo  # the `store` fixture empties its offline folders first
    # Two symbols over a month boundary (two partitions), pushed in two calls into a view with no files yet.
    rows = dataset_frame(REALTIME_QUOTES, ["PSHA", "PSHB"], "2024-04-30 23:58", 4, freq="min", seed=5)
    first, second = rows.iloc[::2], rows.iloc[1::2]
    for batch in (first, second):
        store.push("realtime_quotes_push", batch, to=PushMode.OFFLINE)

    files = sorted(dataset_dir(s.data_dir, REALTIME_QUOTES).rglob("*.parquet"))
    assert {f.parent.name for f in files} == {"2024-04", "2024-05"}
    assert all(f.name.startswith(PART_PREFIX) for f in files)
    assert frames_equal_ignoring_write_time(read_dataset(s.data_dir, REALTIME_QUOTES), rows, REALTIME_QUOTES)

    entity = rows[[ENTITY_KEY, EVENT_TS]].reset_index(drop=True)
    got = store.get_historical_features(entity_df=entity, features=["realtime_quotes:last_price"]).to_df()
    expected = entity.merge(rows[[ENTITY_KEY, EVENT_TS, "last_price"]], on=[ENTITY_KEY, EVENT_TS])
    merged = got.merge(expected, on=[ENTITY_KEY, EVENT_TS], suffixes=("", "_pushed"))
    assert len(merged) == len(rows)
    pd.testing.assert_series_equal(merged["last_price"], merged["last_price_pushed"], check_names=False)

    result = compact(s.data_dir, REALTIME_QUOTES, fsync=False)
    assert (result.files_before, result.files_after) == (len(files), 2)
    assert result.rows_after == len(rows)
    assert frames_equal_ignoring_write_time(read_dataset(s.data_dir, REALTIME_QUOTES), rows, REALTIME_QUOTES)
