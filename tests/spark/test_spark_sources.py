"""How the Spark store sees the repo's sources, without starting Spark: the folder it reads, the dataset whose
schema it applies, and the origin-ranked created time (checked against the ASOF store's order in pure Python)."""

from __future__ import annotations

import pytest

from ingestion import datasets
from ingestion.store.precedence import MINUTE_BARS
from ingestion.store.spark_store import RANK_SHIFT, _dataset_of, ranked_created, spark_path


@pytest.mark.parametrize(
    ("path", "folder", "dataset"),
    [
        ("/d/offline/ohlcv_daily/**/*.parquet", "/d/offline/ohlcv_daily", "ohlcv_daily"),
        (
            "s3://bucket/pre/fix/offline/ohlcv_minute/**/*.parquet",
            "s3a://bucket/pre/fix/offline/ohlcv_minute",
            "ohlcv_minute",
        ),
        ("/logs/log-1.parquet", "/logs/log-1.parquet", None),
    ],
)
def test_spark_reads_the_dataset_folder(path: str, folder: str, dataset: str | None) -> None:
    assert spark_path(path) == folder
    found = _dataset_of(folder)
    assert (found.name if found else None) == dataset


def test_only_minute_bars_rank_their_created_time() -> None:
    assert ranked_created(datasets.OHLCV_DAILY, "created_timestamp") is None
    sql = ranked_created(datasets.OHLCV_MINUTE, "created_timestamp")
    assert sql is not None and f"* {RANK_SHIFT} +" in sql
    # Each origin's WHEN arm carries the rank the ASOF store uses, so the shifted order is its (rank, created) order.
    for origin in MINUTE_BARS.lowest_first:
        assert f"WHEN '{origin}' THEN {MINUTE_BARS.rank(origin)}" in sql
    # The shift outweighs any write time up to 2128 (unix micros), so the rank always decides first.
    assert RANK_SHIFT > 5_000_000_000_000_000
