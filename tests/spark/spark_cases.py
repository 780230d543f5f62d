"""Conformance cases for the Spark offline store against ours: rows written by the project's writer, entity frames
aimed at every boundary, and a cell-by-cell comparison of the two answers.

The rows of each view and symbol sit on the boundaries the two stores could disagree on:

* **month boundaries**: the last microsecond of a month and the first of the next, which land in two partition
  folders;
* **sub-second times**: rows and entity instants a microsecond apart (each read at the row's time minus 1 us,
  exactly, and plus 1 us);
* **ties on event time**: a second write of a row's event time with other values and a newer ``created_timestamp``,
  in a later part file (the newer write must win); for ``ohlcv_minute`` also a lower origin written later
  (:mod:`ingestion.store.precedence`: the higher origin must still win), always at the first symbol's newest minute;
* **ttl**: entity instants at exactly ``event + ttl`` (still visible) and a microsecond later (null);
* several views in one retrieval, unknown symbols, instants before any row, repeated entity rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion import datasets
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, Dataset
from ingestion.store.offline import OfflineWriter
from ingestion.store.precedence import STREAM

ROW_ID = "row_id"
US = pd.Timedelta(microseconds=1)
MONTH_END = pd.Timestamp("2024-01-31 23:59:59.999999", tz="UTC")
# One view per kind of ttl and key: daily bars, minute bars (origin precedence), ticks (8 h), filings (180 days).
VIEWS: tuple[Dataset, ...] = (
    datasets.OHLCV_DAILY,
    datasets.OHLCV_MINUTE,
    datasets.REALTIME_QUOTES,
    datasets.INSIDER_ACTIVITY,
)


def _value(dtype: pa.DataType, rng: np.random.Generator) -> object:
    if pa.types.is_floating(dtype):
        return None if rng.random() < 0.1 else float(rng.normal(100, 20))
    if pa.types.is_integer(dtype):
        return None if rng.random() < 0.1 else int(rng.integers(0, 1_000_000))
    if pa.types.is_boolean(dtype):
        return bool(rng.random() < 0.5)
    if pa.types.is_string(dtype):
        return "polygon"
    raise AssertionError(f"no generator for {dtype}")


def _row(ds: Dataset, symbol: str, event: pd.Timestamp, created: pd.Timestamp, rng: np.random.Generator) -> dict:
    row: dict[str, object] = {ENTITY_KEY: symbol, EVENT_TS: event, CREATED_TS: created}
    for col in ds.columns:
        if col.name in row:
            continue
        if col.name == "window_start":
            # Part of the bar key: a distinct window per row, so ties on event time are distinct keys.
            row[col.name] = event - pd.Timedelta(minutes=1) - rng.integers(0, 10**6) * US
        elif col.name == "adjusted":
            row[col.name] = False
        elif pa.types.is_date32(col.dtype):
            row[col.name] = event.date()
        else:
            row[col.name] = _value(col.dtype, rng)
    return row


def event_times(ds: Dataset, rng: np.random.Generator, extra: int = 0) -> list[pd.Timestamp]:
    """A symbol's event times: both sides of a month boundary, a burst a microsecond apart, the ttl's edge."""
    assert ds.ttl is not None
    base = MONTH_END + pd.Timedelta(days=3, hours=14, minutes=30, microseconds=123_456)
    times = [MONTH_END - pd.Timedelta(days=2), MONTH_END, MONTH_END + US, base, base + US, base + 2 * US]
    # A last row after a silence longer than the ttl, so instants between read null.
    times.append(base + pd.Timedelta(ds.ttl) * 2)
    for _ in range(extra):
        times.append(MONTH_END + pd.Timedelta(seconds=int(rng.integers(-40 * 86_400, 40 * 86_400))) + 7 * US)
    return sorted(set(times))


def write_case(
    data_dir: Path,
    symbols: list[str],
    seed: int,
    extra: int = 0,
    views: tuple[Dataset, ...] = VIEWS,
) -> dict[str, pd.DataFrame]:
    """Write each view's rows for ``symbols`` through the project's writer (``extra`` more at random times per
    symbol); returns the rows per view."""
    rng = np.random.default_rng(seed)
    writer = OfflineWriter(data_dir, fsync=False)
    written: dict[str, pd.DataFrame] = {}
    first_write = MONTH_END - pd.Timedelta(days=90)
    for ds in views:
        rows, ties = [], []
        for symbol in symbols:
            times = event_times(ds, rng, extra)
            for event in times:
                rows.append(_row(ds, symbol, event, first_write, rng))
                tie = rng.random() < 0.4
                # The first symbol's newest minute always has one: what materialization (one row per symbol) writes
                # for it is decided by origin precedence.
                if tie or (ds is datasets.OHLCV_MINUTE and symbol == symbols[0] and event == times[-1]):
                    # Same event time, other values, written later: the newer write wins in both stores.
                    ties.append(_row(ds, symbol, event, first_write + pd.Timedelta(days=1), rng))
                    if ds is datasets.OHLCV_MINUTE:
                        # A stream bar of the same minute written later still: the REST bar outranks it.
                        late = _row(ds, symbol, event, first_write + pd.Timedelta(days=2), rng)
                        ties.append({**late, "source": STREAM})
        frame = pd.DataFrame(rows)
        writer.append(ds, frame, use_watermark=False)
        if ties:
            # A later batch, hence other part files beside the first ones.
            writer.append(ds, pd.DataFrame(ties), use_watermark=False)
        written[ds.name] = pd.concat([frame, pd.DataFrame(ties)], ignore_index=True)
    return written


def contested_newest(written: pd.DataFrame) -> int:
    """How many symbols' newest minute has a stream bar written after its REST bar: what materialization serves
    (one row per symbol) is then decided by origin precedence."""
    newest = written[written[EVENT_TS] == written.groupby(ENTITY_KEY)[EVENT_TS].transform("max")]
    return int(newest.loc[newest["source"] == STREAM, ENTITY_KEY].nunique())


def entity_frame(written: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """Entity rows at each written event time minus 1 us, exactly and plus 1 us, at ``event + ttl`` and 1 us
    later, before any data, for unknown symbols, and a few repeated rows; ``row_id`` numbers them."""
    rng = np.random.default_rng(seed + 1)
    instants: list[tuple[str, pd.Timestamp]] = []
    for name, rows in written.items():
        ttl = pd.Timedelta(datasets.get(name).ttl)
        for symbol, event in zip(rows[ENTITY_KEY], rows[EVENT_TS], strict=True):
            for t in (event - US, event, event + US, event + ttl, event + ttl + US):
                instants.append((symbol, t))
    instants += [("AAA", MONTH_END - pd.Timedelta(days=400)), ("NOPE", MONTH_END), ("NOPE", MONTH_END + US)]
    frame = pd.DataFrame(instants, columns=[ENTITY_KEY, EVENT_TS]).drop_duplicates()
    repeats = frame.sample(n=min(5, len(frame)), random_state=int(rng.integers(0, 2**31)))
    frame = pd.concat([frame, repeats], ignore_index=True)
    frame[ROW_ID] = np.arange(len(frame), dtype=np.int64)
    return frame


def feature_refs(views: tuple[Dataset, ...] = VIEWS) -> list[str]:
    return [f"{ds.name}:{c.name}" for ds in views for c in ds.features]


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """A retrieval frame in entity order with UTC-aware times and every number as a nullable float: Spark returns
    rows in its own order, naive UTC times and float64 for integer features with nulls."""
    out = frame.sort_values(ROW_ID, kind="stable").reset_index(drop=True)
    out[EVENT_TS] = pd.to_datetime(out[EVENT_TS], utc=True)
    for col in out.columns:
        if col not in (ENTITY_KEY, EVENT_TS) and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype("Float64")
    return out


def mismatches(ours: pd.DataFrame, spark: pd.DataFrame) -> list[tuple[int, str, object, object]]:
    """Every cell where the two answers differ, as (row_id, column, ours, spark); nulls are equal to nulls."""
    a, b = normalized(ours), normalized(spark)
    if len(a) != len(b) or list(a[ROW_ID]) != list(b[ROW_ID]):
        return [(-1, "rows", len(a), len(b))]
    assert set(a.columns) == set(b.columns), (sorted(a.columns), sorted(b.columns))
    out: list[tuple[int, str, object, object]] = []
    for col in a.columns:
        x, y = a[col], b[col]
        same = (x.isna() & y.isna()) | (x == y).fillna(False)
        for i in np.flatnonzero(~same.to_numpy(dtype=bool)):
            out.append((int(a[ROW_ID].iloc[i]), col, x.iloc[i], y.iloc[i]))
    return out


def nulls_at_ttl_edge(frame: pd.DataFrame, view: Dataset) -> tuple[int, int]:
    """(non-null, null) counts of a view's first feature, so a test can check both outcomes occur."""
    col = f"{view.name}__{view.features[0].name}"
    values = frame[col]
    return int(values.notna().sum()), int(values.isna().sum())


__all__ = [
    "ROW_ID",
    "VIEWS",
    "contested_newest",
    "entity_frame",
    "event_times",
    "feature_refs",
    "mismatches",
    "normalized",
    "nulls_at_ttl_edge",
    "write_case",
]
