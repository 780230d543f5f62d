"""Stock Feast (duckdb offline store) reads the part files: a point-in-time join over two symbols."""

from __future__ import annotations

import pandas as pd
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.store.compact import compact
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter


def test_get_historical_features_point_in_time_over_part_files(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    symbols = ["HISA", "HISB"]
    # Daily closes at 21:00 UTC, written in three batches that straddle a month boundary (several part files).
    frame = dataset_frame(OHLCV_DAILY, symbols, "2024-02-26 21:00", 8, seed=21)
    writer = OfflineWriter(applied_repo.data_dir)
    for cut in (frame.iloc[[0, 1, 8, 9]], frame.iloc[[2, 3, 4, 10, 11, 12]], frame.iloc[[5, 6, 7, 13, 14, 15]]):
        writer.append(OHLCV_DAILY, cut)
    store = open_store(applied_repo, applied_repo.redis_url)
    entity = pd.DataFrame(
        {
            "symbol": ["HISA", "HISA", "HISB", "HISB", "HISA"],
            # 15:00 UTC is mid-session: the row must see the previous day's close, never the same day's.
            "event_timestamp": pd.to_datetime(
                ["2024-02-28 15:00", "2024-02-28 21:00", "2024-03-02 15:00", "2024-03-04 22:00", "2024-02-20 15:00"],
                utc=True,
            ),
            "row": [0, 1, 2, 3, 4],
        }
    )
    got = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close", "ohlcv_daily:volume"]).to_df()
    got = got.set_index("row").sort_index()
    by_key = frame.set_index(["symbol", "event_timestamp"])

    def close_at(symbol: str, day: str) -> float:
        return float(by_key.loc[(symbol, pd.Timestamp(f"{day} 21:00", tz="UTC")), "close"])

    assert got.loc[0, "close"] == close_at("HISA", "2024-02-27")
    assert got.loc[1, "close"] == close_at("HISA", "2024-02-28")  # knowable at exactly its event time
    assert got.loc[2, "close"] == close_at("HISB", "2024-03-01")
    assert got.loc[3, "close"] == close_at("HISB", "2024-03-04")
    assert pd.isna(got.loc[4, "close"])  # before any data: null, not dropped
    assert len(got) == 5

    # Compaction changes no answer.
    compact(applied_repo.data_dir, OHLCV_DAILY)
    again = store.get_historical_features(
        entity_df=entity, features=["ohlcv_daily:close", "ohlcv_daily:volume"]
    ).to_df()
    pd.testing.assert_frame_equal(again.set_index("row").sort_index()[["close", "volume"]], got[["close", "volume"]])
