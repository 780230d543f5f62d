import datetime as dt
from pathlib import Path

from ingestion.jobs.coverage import Coverage, merge, missing

D = dt.date


def test_merge_joins_touching_and_overlapping() -> None:
    assert merge(
        [(D(2024, 3, 1), D(2024, 3, 31)), (D(2024, 1, 1), D(2024, 2, 29)), (D(2024, 3, 10), D(2024, 4, 2))]
    ) == [(D(2024, 1, 1), D(2024, 4, 2))]


def test_missing_parts() -> None:
    covered = [(D(2024, 2, 1), D(2024, 2, 29)), (D(2024, 4, 1), D(2024, 4, 30))]
    assert missing((D(2024, 1, 15), D(2024, 5, 5)), covered) == [
        (D(2024, 1, 15), D(2024, 1, 31)),
        (D(2024, 3, 1), D(2024, 3, 31)),
        (D(2024, 5, 1), D(2024, 5, 5)),
    ]
    assert missing((D(2024, 2, 3), D(2024, 2, 20)), covered) == []
    assert missing((D(2024, 6, 1), D(2024, 6, 2)), []) == [(D(2024, 6, 1), D(2024, 6, 2))]


def test_persisted_across_instances(tmp_path: Path) -> None:
    Coverage(tmp_path).add("ohlcv_daily", "AAPL", (D(2024, 1, 1), D(2024, 1, 31)))
    Coverage(tmp_path).add("ohlcv_daily", "AAPL", (D(2024, 2, 1), D(2024, 2, 10)))
    assert Coverage(tmp_path).get("ohlcv_daily", "AAPL") == [(D(2024, 1, 1), D(2024, 2, 10))]
    assert Coverage(tmp_path).get("ohlcv_daily", "MSFT") == []
