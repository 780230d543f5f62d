"""The precedence of ``ohlcv_minute``'s origins in the store: the order, its SQL twin, de-duplication, part file names,
compaction and the landing's skip of rows already stored at equal or higher precedence. The end-to-end proof with the
simulators and Feast is ``tests/stream/test_minute_precedence.py``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from fixtures.store import dataset_frame

from ingestion.datasets import CREATED_TS, OHLCV_DAILY, OHLCV_MINUTE
from ingestion.jobs.landing import Batch, Landing, land
from ingestion.jobs.summary import JobSummary
from ingestion.store.asof.sql import ident, literal
from ingestion.store.compact import compact
from ingestion.store.offline import OfflineWriter, dedupe_on_key, part_files, read_dataset
from ingestion.store.precedence import FALLBACK, MINUTE_BARS, REFILL, REST, STREAM, precedence_of
from ingestion.store.superseded import unstored

KEY = list(OHLCV_MINUTE.key)
EARLY, LATE = pd.Timestamp("2030-01-01", tz="UTC"), pd.Timestamp("2030-01-02", tz="UTC")


def _bars(origin: str, created: pd.Timestamp = EARLY, symbols: tuple[str, ...] = ("AAPL",), n: int = 5) -> pd.DataFrame:
    """``n`` minute bars per symbol from 2024-03-04 14:30 UTC of one origin; ``volume`` names the origin."""
    frame = dataset_frame(OHLCV_MINUTE, list(symbols), "2024-03-04 14:31:15", n, freq="min")
    frame["window_start"] = frame["event_timestamp"] - pd.Timedelta(seconds=75)
    tag = {FALLBACK: 1.0, STREAM: 2.0, REFILL: 3.0, REST: 4.0}[origin]
    prices = dict.fromkeys(("open", "high", "low", "close", "vwap"), 100.0)  # a bar the quality checks pass
    return frame.assign(source=origin, volume=tag, adjusted=False, transactions=1, **prices, **{CREATED_TS: created})


def test_the_order_and_its_sql_agree_on_every_origin() -> None:
    assert precedence_of(OHLCV_MINUTE) is MINUTE_BARS and precedence_of(OHLCV_DAILY) is None
    origins = pd.Series([REST, REFILL, STREAM, FALLBACK, None, "someone_else"], dtype="object")
    # Highest first: REST, refill, stream, fallback; a row without an origin is the column's default (REST); an
    # unknown origin ranks below all.
    assert MINUTE_BARS.ranks(origins).tolist() == [4, 3, 2, 1, 4, 0]
    sql = MINUTE_BARS.sql(ident, literal)
    with duckdb.connect() as con:
        con.register("origins", pd.DataFrame({"source": origins}))
        ranked = con.sql(f"SELECT {sql} AS r FROM origins").fetchall()  # noqa: S608 (our own literals)
    assert [r[0] for r in ranked] == [4, 3, 2, 1, 4, 0]


def test_dedupe_ranks_origin_before_write_time_for_minute_bars_only() -> None:
    rest, stream = _bars(REST, EARLY), _bars(STREAM, LATE)
    kept = dedupe_on_key(OHLCV_MINUTE, pd.concat([stream, rest]))
    assert len(kept) == 5 and (kept["source"] == REST).all()
    # A dataset without an order keeps Feast's rule: the newest write.
    daily = dataset_frame(OHLCV_DAILY, ["AAPL"], "2024-03-04", 3)
    newer = daily.assign(**{CREATED_TS: LATE, "source": FALLBACK})
    assert (dedupe_on_key(OHLCV_DAILY, pd.concat([newer, daily]))["source"] == FALLBACK).all()


def test_two_origins_of_the_same_keys_never_share_a_file_and_compact_keeps_the_winner(tmp_path: Path) -> None:
    writer = OfflineWriter(tmp_path, fsync=False)
    writer.append(OHLCV_MINUTE, _bars(REFILL, EARLY), use_watermark=False)
    # The same keys streamed later: a file of its own, not a replacement of the refill's (part names digest keys).
    writer.append(OHLCV_MINUTE, _bars(STREAM, LATE), use_watermark=False)
    assert len(part_files(tmp_path, OHLCV_MINUTE)) == 2
    assert len(read_dataset(tmp_path, OHLCV_MINUTE)) == 10
    resolved = read_dataset(tmp_path, OHLCV_MINUTE, resolved=True)
    assert len(resolved) == 5 and (resolved["source"] == REFILL).all()
    # The same origin again replaces its own file (a rerun of a batch).
    writer.append(OHLCV_MINUTE, _bars(STREAM, LATE + pd.Timedelta(hours=1)), use_watermark=False)
    assert len(part_files(tmp_path, OHLCV_MINUTE)) == 2
    result = compact(tmp_path, OHLCV_MINUTE, fsync=False)
    assert (result.rows_before, result.rows_after) == (10, 5)
    stored = read_dataset(tmp_path, OHLCV_MINUTE)
    assert (stored["source"] == REFILL).all() and (stored["volume"] == 3.0).all()


@pytest.mark.parametrize(
    ("stored", "incoming", "written"),
    [(STREAM, REFILL, 5), (REST, REFILL, 0), (REFILL, REFILL, 0), (REST, STREAM, 0), (FALLBACK, REST, 5)],
)
def test_unstored_keeps_only_rows_that_outrank_the_stored_ones(
    tmp_path: Path, stored: str, incoming: str, written: int
) -> None:
    OfflineWriter(tmp_path, fsync=False).append(OHLCV_MINUTE, _bars(stored), use_watermark=False)
    kept, skipped = unstored(tmp_path, OHLCV_MINUTE, _bars(incoming, LATE))
    assert (len(kept), skipped) == (written, 5 - written)


def test_unstored_sees_new_files_and_other_symbols_pass(tmp_path: Path) -> None:
    writer = OfflineWriter(tmp_path, fsync=False)
    writer.append(OHLCV_MINUTE, _bars(REST, symbols=("AAPL",)), use_watermark=False)
    # MSFT's rows are new; the lookup has now read (and kept) the AAPL file's symbol range.
    assert unstored(tmp_path, OHLCV_MINUTE, _bars(REST, symbols=("AAPL", "MSFT")))[1] == 5
    writer.append(OHLCV_MINUTE, _bars(REST, symbols=("MSFT",)), use_watermark=False)
    assert unstored(tmp_path, OHLCV_MINUTE, _bars(REST, symbols=("AAPL", "MSFT")))[1] == 10
    # A row of a stored key at another minute is new.
    later = _bars(REST, symbols=("AAPL",), n=6)
    assert len(unstored(tmp_path, OHLCV_MINUTE, later)[0]) == 1


def test_landing_minute_bars_twice_writes_once_and_keeps_them_on_record(tmp_path: Path) -> None:
    landing = Landing.for_writer(OfflineWriter(tmp_path, fsync=False))
    batch = Batch("polygon aggs minute", {OHLCV_MINUTE.name: _bars(REST).drop(columns=CREATED_TS)})
    first = land(landing, batch, JobSummary("first"), EARLY)
    summary = JobSummary("again")
    again = land(landing, batch, summary, LATE)
    assert (first.written[OHLCV_MINUTE.name], again.written[OHLCV_MINUTE.name]) == (5, 0)
    assert summary.duplicates_skipped[OHLCV_MINUTE.name] == 5
    # The rows are on record (a caller records coverage from them), with the stored rows unchanged.
    assert len(again.frames[OHLCV_MINUTE.name]) == 5
    stored = read_dataset(tmp_path, OHLCV_MINUTE)
    assert len(stored) == 5 and (stored[CREATED_TS] == EARLY).all()
