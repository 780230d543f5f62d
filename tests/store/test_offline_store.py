"""The append-only Parquet store: layout, schema, watermarks, idempotent reruns, compaction and the quarantine."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fixtures.store import dataset_frame

from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE, QUARANTINE, REALTIME_QUOTES
from ingestion.rejects import Rejected
from ingestion.store.compact import REPLACES_KEY, compact
from ingestion.store.feast_repo import offline_glob
from ingestion.store.offline import (
    OfflineWriter,
    count_duplicates,
    frames_equal_ignoring_write_time,
    part_files,
    read_dataset,
    remove_stale_temp_files,
)
from ingestion.store.quarantine import Quarantine
from ingestion.store.watermarks import Watermarks


def test_append_writes_monthly_parts_in_dataset_schema(store_dir: Path) -> None:
    frame = dataset_frame(OHLCV_DAILY, ["AAPL", "MSFT"], "2024-01-20", 20)
    result = OfflineWriter(store_dir).append(OHLCV_DAILY, frame.iloc[::-1])
    assert result.written == 40
    files = part_files(store_dir, OHLCV_DAILY)
    assert sorted(f.parent.name for f in files) == ["2024-01", "2024-02"]
    for f in files:
        assert "=" not in str(f.relative_to(store_dir))
        assert pq.read_schema(f).remove_metadata().equals(OHLCV_DAILY.arrow_schema())
        assert pq.read_schema(f).field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    back = read_dataset(store_dir, OHLCV_DAILY)
    assert list(back.columns) == OHLCV_DAILY.column_names
    assert frames_equal_ignoring_write_time(back, frame, OHLCV_DAILY)


def test_files_read_through_feast_glob_with_duckdb(store_dir: Path) -> None:
    frame = dataset_frame(OHLCV_MINUTE, ["AAPL", "MSFT"], "2024-03-29 19:00", 600, freq="min")
    OfflineWriter(store_dir).append(OHLCV_MINUTE, frame)
    glob = offline_glob(store_dir, OHLCV_MINUTE)
    with duckdb.connect() as con:
        count, symbols = con.execute("SELECT count(*), count(DISTINCT symbol) FROM read_parquet(?)", [glob]).fetchone()  # type: ignore[misc]
    assert (count, symbols) == (1200, 2)


def test_read_filters_by_symbol_and_half_open_range(store_dir: Path) -> None:
    frame = dataset_frame(OHLCV_DAILY, ["AAPL", "MSFT", "SPY"], "2024-01-01", 10)
    OfflineWriter(store_dir).append(OHLCV_DAILY, frame)
    got = read_dataset(
        store_dir, OHLCV_DAILY, symbols=["SPY"], start="2024-01-03", end=pd.Timestamp("2024-01-05", tz="UTC")
    )
    assert got["symbol"].tolist() == ["SPY", "SPY"]
    assert got["event_timestamp"].dt.day.tolist() == [3, 4]


def test_rerun_of_same_batch_adds_no_row(store_dir: Path) -> None:
    frame = dataset_frame(OHLCV_DAILY, ["AAPL", "MSFT"], "2024-01-01", 30)
    writer = OfflineWriter(store_dir)
    writer.append(OHLCV_DAILY, frame)
    again = writer.append(OHLCV_DAILY, frame)
    assert (again.written, again.skipped_watermark) == (0, 60)
    # Without the watermark (a crash before it advanced), the same batch replaces its own files.
    forced = writer.append(
        OHLCV_DAILY, frame.assign(created_timestamp=pd.Timestamp("2031-01-01", tz="UTC")), use_watermark=False
    )
    assert forced.written == 60
    back = read_dataset(store_dir, OHLCV_DAILY)
    assert len(back) == 60
    assert count_duplicates(back, OHLCV_DAILY) == 0
    assert (back["created_timestamp"] == pd.Timestamp("2031-01-01", tz="UTC")).all()


def test_watermark_skips_only_old_rows_per_symbol(store_dir: Path) -> None:
    writer = OfflineWriter(store_dir)
    writer.append(OHLCV_DAILY, dataset_frame(OHLCV_DAILY, ["AAPL"], "2024-01-01", 10))
    both = dataset_frame(OHLCV_DAILY, ["AAPL", "MSFT"], "2024-01-01", 15)
    result = writer.append(OHLCV_DAILY, both)
    assert (result.skipped_watermark, result.written) == (10, 20)
    marks = Watermarks.for_data_dir(store_dir).all(OHLCV_DAILY.name)
    assert marks == {s: pd.Timestamp("2024-01-15", tz="UTC") for s in ("AAPL", "MSFT")}


def test_watermark_never_moves_back(store_dir: Path) -> None:
    marks = Watermarks.for_data_dir(store_dir)
    marks.advance("x", {"A": pd.Timestamp("2024-02-01", tz="UTC")})
    marks.advance("x", {"A": pd.Timestamp("2024-01-01", tz="UTC"), "B": pd.Timestamp("2024-01-01", tz="UTC")})
    assert marks.get("x", "A") == pd.Timestamp("2024-02-01", tz="UTC")
    assert marks.get("x", "B") == pd.Timestamp("2024-01-01", tz="UTC")
    assert marks.get("x", "C") is None


def test_duplicate_keys_in_a_batch_keep_newest_created(store_dir: Path) -> None:
    frame = dataset_frame(REALTIME_QUOTES, ["AAPL"], "2024-01-02 15:00", 5, freq="s")
    newer = frame.iloc[[2]].assign(created_timestamp=pd.Timestamp("2031-01-01", tz="UTC"), last_price=-1.0)
    result = OfflineWriter(store_dir).append(REALTIME_QUOTES, pd.concat([newer, frame]))
    assert result.duplicates_in_batch == 1
    back = read_dataset(store_dir, REALTIME_QUOTES)
    assert len(back) == 5
    assert back.loc[2, "last_price"] == -1.0


def test_compaction_keeps_every_row_and_collapses_duplicates(store_dir: Path) -> None:
    writer = OfflineWriter(store_dir)
    frame = dataset_frame(OHLCV_MINUTE, ["AAPL", "MSFT"], "2024-01-31 23:00", 120, freq="min")
    for start in range(0, 120, 10):
        writer.append(OHLCV_MINUTE, pd.concat([frame.iloc[start : start + 10], frame.iloc[120 + start : 130 + start]]))
    # A copy of one batch written with a different cut: the one case only compaction de-duplicates.
    writer.append(OHLCV_MINUTE, frame.iloc[5:15], use_watermark=False)
    before = read_dataset(store_dir, OHLCV_MINUTE)
    assert count_duplicates(before, OHLCV_MINUTE) == 10
    files_before = len(part_files(store_dir, OHLCV_MINUTE))
    result = compact(store_dir, OHLCV_MINUTE)
    after = read_dataset(store_dir, OHLCV_MINUTE)
    assert result.files_before == files_before
    assert result.files_after == 2  # one per month: January and February
    assert result.duplicates_removed == 10
    assert count_duplicates(after, OHLCV_MINUTE) == 0
    assert frames_equal_ignoring_write_time(after, frame, OHLCV_MINUTE)
    again = compact(store_dir, OHLCV_MINUTE)
    assert (again.partitions_compacted, again.files_after) == (0, 2)


def test_compaction_finishes_an_interrupted_merge(store_dir: Path) -> None:
    writer = OfflineWriter(store_dir)
    frame = dataset_frame(OHLCV_DAILY, ["AAPL"], "2024-01-01", 20)
    writer.append(OHLCV_DAILY, frame.iloc[:10])
    writer.append(OHLCV_DAILY, frame.iloc[10:])
    inputs = part_files(store_dir, OHLCV_DAILY)
    saved = {p: p.read_bytes() for p in inputs}
    compact(store_dir, OHLCV_DAILY)
    # Simulate a kill after the merged file's rename but before the deletes: the inputs are back, older.
    for path, data in saved.items():
        path.write_bytes(data)
    merged = next(p for p in part_files(store_dir, OHLCV_DAILY) if p.name.startswith("compact-"))
    names = pq.read_schema(merged).metadata[REPLACES_KEY.encode()]
    assert all(p.name.encode() in names for p in inputs)
    for path in inputs:
        stamp = merged.stat().st_mtime_ns - 1_000_000
        os.utime(path, ns=(stamp, stamp))
    assert count_duplicates(read_dataset(store_dir, OHLCV_DAILY), OHLCV_DAILY) == 20
    result = compact(store_dir, OHLCV_DAILY)
    assert result.recovered_deletes == 2
    assert part_files(store_dir, OHLCV_DAILY) == [merged]
    assert frames_equal_ignoring_write_time(read_dataset(store_dir, OHLCV_DAILY), frame, OHLCV_DAILY)


def test_temp_files_are_invisible_and_swept(store_dir: Path) -> None:
    OfflineWriter(store_dir).append(OHLCV_DAILY, dataset_frame(OHLCV_DAILY, ["AAPL"], "2024-01-01", 3))
    folder = part_files(store_dir, OHLCV_DAILY)[0].parent
    (folder / ".part-dead.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    assert len(read_dataset(store_dir, OHLCV_DAILY)) == 3
    assert remove_stale_temp_files(store_dir, OHLCV_DAILY) == 1


def test_empty_dataset_reads_as_empty_frame(store_dir: Path) -> None:
    frame = read_dataset(store_dir, OHLCV_DAILY)
    assert frame.empty
    assert list(frame.columns) == OHLCV_DAILY.column_names


def test_quarantine_writes_rejects_and_counts_them(store_dir: Path) -> None:
    rejects = [
        Rejected("ohlcv_daily", "polygon:/v2/aggs", "high < low", {"t": 1, "h": 1.0, "l": 2.0}),
        Rejected("ohlcv_daily", "polygon:/v2/aggs", "high < low", {"t": 2, "h": 1.0, "l": 2.0}),
        Rejected("ohlcv_daily", "polygon:/v2/aggs", "negative volume", {"t": 3, "v": -1}),
        Rejected("dark_pool_daily", "uw:/api/darkpool", "missing price", {"id": "x"}),
    ]
    quarantine = Quarantine(store_dir)
    quarantine.write(rejects)
    quarantine.write(rejects)  # a rerun quarantines the same rows again: still one copy each
    assert quarantine.counts() == {
        ("dark_pool_daily", "missing price"): 1,
        ("ohlcv_daily", "high < low"): 2,
        ("ohlcv_daily", "negative volume"): 1,
    }
    assert quarantine.counts_by_dataset() == {"dark_pool_daily": 1, "ohlcv_daily": 3}
    stored = read_dataset(store_dir, QUARANTINE)
    assert len(stored) == 4
    assert set(stored["payload"]) == {r.payload_json() for r in rejects}


def test_append_takes_an_arrow_table_in_any_column_order(store_dir: Path) -> None:
    from ingestion.store.offline import to_table

    frame = dataset_frame(OHLCV_DAILY, ["AAPL"], "2024-01-01", 4)
    table = to_table(OHLCV_DAILY, frame)
    shuffled = table.select(list(reversed(table.column_names)))
    assert OfflineWriter(store_dir).append(OHLCV_DAILY, shuffled).written == 4
    assert frames_equal_ignoring_write_time(read_dataset(store_dir, OHLCV_DAILY), frame, OHLCV_DAILY)


def test_one_writer_shared_by_threads_keeps_every_row(store_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    writer = OfflineWriter(store_dir)
    symbols = [f"T{i:02d}" for i in range(16)]
    frames = [dataset_frame(OHLCV_DAILY, [s], "2024-01-01", 40, seed=i) for i, s in enumerate(symbols)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda f: writer.append(OHLCV_DAILY, f), frames))
    assert sum(r.written for r in results) == 640
    back = read_dataset(store_dir, OHLCV_DAILY)
    assert (len(back), count_duplicates(back, OHLCV_DAILY)) == (640, 0)
    assert len(Watermarks.for_data_dir(store_dir).all(OHLCV_DAILY.name)) == 16
