"""The offline store: append-only, partitioned Parquet part files that Feast's duckdb offline store reads directly.

Layout::

    <data_dir>/offline/<dataset>/<YYYY-MM>/part-<digest>.parquet      one file per appended batch and month
    <data_dir>/offline/<dataset>/<YYYY-MM>/compact-<digest>.parquet   written by ingestion.store.compact

* **Partition = calendar month (UTC) of ``event_timestamp``.** A month of daily bars for 500 symbols is about
  10k rows, of minute bars about 4M rows (about 100 MB after compaction): files stay a sensible size and
  compaction works one month at a time. Folder names are plain ``2024-03``, never ``key=value``: DuckDB would
  detect hive partitions and fail to merge a ``symbol`` folder with the ``symbol`` column (feast-notes pitfall 8).
* **Schema** is exactly ``Dataset.arrow_schema()``: the dataset's column order (Feast checks it, pitfall 7) and
  ``timestamp[us, UTC]`` (DuckDB refuses pandas' nanosecond timestamps, pitfall 2). Timestamps finer than a
  microsecond are floored to it.
* **O(batch) appends.** A batch becomes new files; existing files are never read or rewritten (Feast's offline push
  rewrites the whole file on every call, pitfall 4).

Crash safety and idempotency, in four parts:

1. **Atomic files.** Each file is written to a hidden ``.<name>.<pid>.<thread>.tmp`` beside its target, fsynced, renamed
   over the target and the folder fsynced. Neither Feast's glob (``*.parquet``) nor :func:`read_dataset` sees temp
   files, so a reader or a ``kill -9`` never meets half a file; a dead writer only leaves a temp file behind,
   which :func:`remove_stale_temp_files` sweeps.
2. **Deterministic names.** A part file's name is a digest of the dataset and the key columns of its rows (not of
   ``created_timestamp``, which changes between runs). Writing the same batch again *replaces its own file* instead
   of adding a copy.
3. **Watermark after durability.** Per (dataset, symbol), :class:`~ingestion.store.watermarks.Watermarks` holds the
   newest event time already on disk. It is advanced only after every file of the batch is renamed and fsynced;
   rows at or below it are dropped before writing. A crash before the advance makes the rerun produce the same
   rows, hence the same file names (point 2); a crash after it makes the rerun skip them.
4. **Key de-duplication as the backstop.** Within a batch, and again when compaction merges a month, rows with the
   same ``Dataset.key`` keep the newest ``created_timestamp`` (Feast's own tie-break). This covers the one case the
   first three cannot: a batch cut differently on the rerun *and* killed between its file and its watermark.

So a run killed at any point and run again ends with exactly the rows of an uninterrupted run (tests/store kill
the writer with SIGKILL at random points to check it).

On object storage (a data dir ``s3://bucket/prefix``) the same layout is written without renames: each part is one
``PUT`` under its final name and a batch becomes visible through one manifest (:mod:`ingestion.store.offline_objects`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, Dataset, get
from ingestion.store import offline_objects, precedence
from ingestion.store.objectstore import ObjectRoot, Root
from ingestion.store.watermarks_objects import AnyWatermarks, watermarks_for

PARTITION_FORMAT = "%Y-%m"
PART_PREFIX = "part-"
COMPACT_PREFIX = "compact-"
PARQUET_COMPRESSION = "zstd"


def _dataset(dataset: Dataset | str) -> Dataset:
    return get(dataset) if isinstance(dataset, str) else dataset


def dataset_dir(data_dir: Path, dataset: Dataset | str) -> Path:
    """``<data_dir>/offline/<dataset>``: the folder Feast's glob (``feast_repo.offline_glob``) reads below."""
    return data_dir / "offline" / _dataset(dataset).name


def dataset_root(root: Root, dataset: Dataset | str) -> Root:
    """:func:`dataset_dir` for a local data dir or an object-storage root."""
    return root / "offline" / _dataset(dataset).name


def locate(folder: Path) -> tuple[Path, Dataset]:
    """The data dir and dataset of a dataset folder: the inverse of :func:`dataset_dir` (``ValueError`` when
    ``folder`` is not ``<data_dir>/offline/<dataset>``)."""
    if folder.parent.name != "offline":
        raise ValueError(f"{folder} is not a dataset folder (<data_dir>/offline/<dataset>)")
    try:
        return folder.parent.parent, get(folder.name)
    except KeyError as e:
        raise ValueError(f"{folder}: {e.args[0]}") from None


def part_files(data_dir: Path, dataset: Dataset | str, partition: str | None = None) -> list[Path]:
    """Every visible part file of a dataset (or of one partition), sorted; temp files are excluded."""
    root = dataset_dir(data_dir, dataset)
    pattern = f"{partition}/*.parquet" if partition else "*/*.parquet"
    return sorted(p for p in root.glob(pattern) if not p.name.startswith("."))


def partitions(data_dir: Path, dataset: Dataset | str) -> list[str]:
    """Partition folder names (``YYYY-MM``) of a dataset, sorted."""
    root = dataset_dir(data_dir, dataset)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (POSIX needs the folder itself synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(
    table: pa.Table, target: Path, *, fsync: bool = True, metadata: dict[str, str] | None = None
) -> None:
    """Write ``table`` to ``target`` through a hidden temp file and a rename, so no reader sees a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread, so two writers of the same batch never share a temp file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    try:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_dir(target.parent)


def remove_stale_temp_files(data_dir: Path, dataset: Dataset | str) -> int:
    """Delete temp files left by killed writers; returns how many. Run it when no writer of the dataset is live."""
    removed = 0
    for tmp in dataset_dir(data_dir, dataset).glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def to_table(dataset: Dataset, frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table in the dataset's exact schema (column order, ``timestamp[us, UTC]``)."""
    defaults = dataset.defaults_for(frame.columns)
    missing = [c for c in dataset.column_names if c not in frame.columns and c not in defaults]
    if missing:
        raise ValueError(f"{dataset.name} frame lacks columns {missing}")
    out = frame.assign(**defaults).loc[:, dataset.column_names].copy()
    for column in dataset.columns:
        if pa.types.is_timestamp(column.dtype):
            values = out[column.name]
            if not (isinstance(values.dtype, pd.DatetimeTZDtype) and str(values.dtype.tz) == "UTC"):
                values = pd.to_datetime(values, utc=True)
            if values.dtype.unit == "ns":
                # The store's precision is the microsecond; pandas' default ns would break DuckDB (pitfall 2).
                values = values.dt.floor("us")
            out[column.name] = values
    return pa.Table.from_pandas(out, schema=dataset.arrow_schema(), preserve_index=False)


def empty_frame(dataset: Dataset) -> pd.DataFrame:
    """A zero-row frame with the dataset's columns and dtypes."""
    frame: pd.DataFrame = dataset.arrow_schema().empty_table().to_pandas()
    return frame


def dedupe_on_key(dataset: Dataset, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``Dataset.key``: the highest origin of the dataset's precedence (:mod:`ingestion.store.precedence`,
    ``ohlcv_minute`` only), then the newest ``created_timestamp`` (then the last given) wins, as in Feast."""
    key = list(dataset.key)
    rank = precedence.ranks(dataset, frame)
    ranked = frame if rank is None else frame.assign(**{precedence.RANK_COLUMN: rank})
    by = [*key, *([] if rank is None else [precedence.RANK_COLUMN]), *([CREATED_TS] if CREATED_TS in frame else [])]
    ordered = ranked.sort_values(by, kind="stable").drop_duplicates(subset=key, keep="last")
    return ordered if rank is None else ordered.drop(columns=precedence.RANK_COLUMN)


def sort_columns(dataset: Dataset) -> list[str]:
    """Row order inside a file: by symbol then time when the dataset has a symbol, which helps row-group pruning."""
    first = [ENTITY_KEY] if ENTITY_KEY in dataset.column_names else []
    return [*first, EVENT_TS, *(k for k in dataset.key if k not in (ENTITY_KEY, EVENT_TS))]


@dataclass
class AppendResult:
    """What one :meth:`OfflineWriter.append` did. Counts are rows."""

    dataset: str
    rows_in: int = 0
    written: int = 0
    skipped_watermark: int = 0
    duplicates_in_batch: int = 0
    files: list[Root] = field(default_factory=list)


class OfflineWriter:
    """Appends batches of a dataset as new part files and keeps the per-(dataset, symbol) watermark.

    One writer per process; several processes may write the same dataset (file names never collide unless the
    rows' keys are the same, in which case the newer file replaces the older one whole).
    """

    def __init__(self, data_dir: Root, *, watermarks: AnyWatermarks | None = None, fsync: bool = True) -> None:
        self.root = data_dir
        self.watermarks = watermarks or watermarks_for(data_dir)
        self.fsync = fsync

    @property
    def data_dir(self) -> Path:
        """The local data dir; a writer on object storage has none (its :attr:`root` is an ``s3://`` URL)."""
        if not isinstance(self.root, Path):
            raise TypeError(f"the offline store is on object storage ({self.root}); this step reads local files only")
        return self.root

    def append(
        self, dataset: Dataset | str, frame: pd.DataFrame | pa.Table, *, use_watermark: bool = True
    ) -> AppendResult:
        """Write ``frame`` (the dataset's columns, any order, extra columns ignored) as new part files.

        Rows at or below their symbol's watermark are skipped (``use_watermark=False`` writes them anyway, e.g. a
        deliberate correction). Returns counts and the files written. Cost is O(len(frame)); the work is done in
        Arrow, because pandas' per-call overhead alone would eat the 50 ms budget of a small batch.
        """
        ds = _dataset(dataset)
        result = AppendResult(dataset=ds.name, rows_in=len(frame))
        if len(frame) == 0:
            return result
        if isinstance(frame, pa.Table):
            table = frame.select(ds.column_names).cast(ds.arrow_schema())
        else:
            table = to_table(ds, frame)
        keyed = ENTITY_KEY in ds.column_names
        if keyed and use_watermark:
            table, result.skipped_watermark = self._drop_below_watermark(ds, table)
        before = table.num_rows
        table = dedupe_table(ds, table)
        result.duplicates_in_batch = before - table.num_rows
        if table.num_rows == 0:
            return result
        months = pc.strftime(table[EVENT_TS], format=PARTITION_FORMAT)
        distinct = sorted(pc.unique(months).to_pylist())
        folder = dataset_root(self.root, ds)
        etags: dict[ObjectRoot, str] = {}
        for month in distinct:
            part = table if len(distinct) == 1 else table.filter(pc.equal(months, month))
            part = part.sort_by([(c, "ascending") for c in sort_columns(ds)])
            target = folder / str(month) / f"{PART_PREFIX}{table_digest(ds, part)}.parquet"
            if isinstance(target, ObjectRoot):
                etags[target] = offline_objects.write_part(target, part)
            else:
                write_parquet_atomic(part, target, fsync=self.fsync)
            result.files.append(target)
            result.written += part.num_rows
        if isinstance(folder, ObjectRoot):
            # The batch's files become visible together, or not at all (no rename on object storage).
            offline_objects.commit(folder, etags)
        if keyed:
            # Only now is every row of the batch durable: moving the watermark earlier could lose rows on a crash.
            newest = table.group_by(ENTITY_KEY).aggregate([(EVENT_TS, "max")])
            marks = dict(zip(newest[ENTITY_KEY].to_pylist(), newest[f"{EVENT_TS}_max"].to_pylist(), strict=True))
            self.watermarks.advance(ds.name, marks)
        return result

    def _drop_below_watermark(self, ds: Dataset, table: pa.Table) -> tuple[pa.Table, int]:
        symbols = pc.unique(table[ENTITY_KEY])
        marks = self.watermarks.get_many(ds.name, symbols.to_pylist())
        if not marks:
            return table, 0
        names = list(marks)
        floors = pa.array([marks[n] for n in names], type=ds.column(EVENT_TS).dtype)
        floor = pc.take(floors, pc.index_in(table[ENTITY_KEY], value_set=pa.array(names, pa.string())))
        keep = pc.or_kleene(pc.is_null(floor), pc.greater(table[EVENT_TS], floor))
        kept = table.filter(keep)
        return kept, table.num_rows - kept.num_rows


def dedupe_table(ds: Dataset, table: pa.Table) -> pa.Table:
    """:func:`dedupe_on_key` for an Arrow table; the common no-duplicate case costs one group-by."""
    distinct = table.group_by(list(ds.key)).aggregate([]).num_rows
    if distinct == table.num_rows:
        return table
    return to_table(ds, dedupe_on_key(ds, table.to_pandas()))


def table_digest(ds: Dataset, table: pa.Table) -> str:
    """A digest of the dataset name and the key columns of ``table`` (sorted first, so input order does not count).

    ``created_timestamp`` is left out on purpose: a rerun stamps new write times but must name its file the same.
    A dataset whose origins have an order (:mod:`ingestion.store.precedence`) digests the origin column too: a batch
    of streamed bars must never replace a refill's file that happens to hold the same keys.
    """
    order = precedence.precedence_of(ds)
    names = [*ds.key, *([order.column] if order is not None else [])]
    keys = table.select(names).sort_by([(k, "ascending") for k in names])
    digest = hashlib.blake2b(ds.name.encode(), digest_size=12)
    for name in names:
        column = keys[name].combine_chunks()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            digest.update("\x00".join(str(v) for v in column.to_pylist()).encode())
        else:
            # Fixed-width keys (timestamps, dates, bools, ints) hash by their values, nulls as a sentinel.
            as_int = (
                column.cast(pa.int8())
                if pa.types.is_boolean(column.type)
                else column.view(pa.int32() if column.type.bit_width == 32 else pa.int64())
            )
            digest.update(as_int.fill_null(-1).to_numpy(zero_copy_only=False).tobytes())
        digest.update(b"\x01")
    return digest.hexdigest()


def as_utc(ts: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """``ts`` as a UTC ``Timestamp``; a naive value is taken as UTC."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_dataset(
    data_dir: Root,
    dataset: Dataset | str,
    symbols: Sequence[str] | None = None,
    start: datetime | pd.Timestamp | str | None = None,
    end: datetime | pd.Timestamp | str | None = None,
    *,
    resolved: bool = False,
) -> pd.DataFrame:
    """Rows of a dataset as stored (duplicates included), sorted by symbol and event time; ``resolved``: one row per
    ``Dataset.key``, the one every reader serves (:func:`dedupe_on_key`: precedence, then newest write).

    ``start`` is inclusive and ``end`` exclusive, on ``event_timestamp`` (UTC; naive values are taken as UTC). Reads
    the same files as Feast's glob. Timestamps come back as ``datetime64[us, UTC]``.
    """
    ds = _dataset(dataset)
    source = scan_dataset(data_dir, ds)
    if source is None:
        return empty_frame(ds)
    condition: Any = None

    def both(expr: Any) -> Any:
        return expr if condition is None else condition & expr

    if symbols is not None:
        condition = both(pads.field(ENTITY_KEY).isin(list(symbols)))
    if start is not None:
        condition = both(pads.field(EVENT_TS) >= pa.scalar(as_utc(start), type=ds.column(EVENT_TS).dtype))
    if end is not None:
        condition = both(pads.field(EVENT_TS) < pa.scalar(as_utc(end), type=ds.column(EVENT_TS).dtype))
    table = source.to_table(filter=condition)
    frame: pd.DataFrame = table.to_pandas()
    if resolved:
        frame = dedupe_on_key(ds, frame)
    order = [c for c in sort_columns(ds) if c in frame.columns]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def visible_files(root: Root, dataset: Dataset | str, partition: str | None = None) -> list[Root]:
    """:func:`part_files` for a local data dir or an object-storage root (there: the committed, unretired files)."""
    ds = _dataset(dataset)
    if isinstance(root, Path):
        return list(part_files(root, ds, partition))
    return list(offline_objects.committed_files(root / "offline" / ds.name, partition))


def scan_dataset(root: Root, dataset: Dataset | str) -> pads.Dataset | None:
    """An Arrow dataset over every visible part file of a dataset in the store's schema, or None when it has none:
    the local glob's files, or the committed files on object storage."""
    ds = _dataset(dataset)
    files = visible_files(root, ds)
    if not files:
        return None
    if isinstance(root, Path):
        return pads.dataset([str(f) for f in files], schema=ds.arrow_schema(), format="parquet")
    return offline_objects.scan([f for f in files if isinstance(f, ObjectRoot)], ds.arrow_schema())


def stored_symbols(root: Root, dataset: Dataset | str) -> list[str]:
    """The distinct symbols of a dataset's visible rows, sorted (reads only the symbol column)."""
    source = scan_dataset(root, dataset)
    if source is None:
        return []
    return sorted(str(s) for s in pc.unique(source.to_table(columns=[ENTITY_KEY])[ENTITY_KEY]).to_pylist() if s)


def count_duplicates(frame: pd.DataFrame, dataset: Dataset | str) -> int:
    """Rows beyond the first for each ``Dataset.key`` (0 means no key appears twice)."""
    ds = _dataset(dataset)
    return int(frame.duplicated(subset=list(ds.key)).sum())


def frames_equal_ignoring_write_time(left: pd.DataFrame, right: pd.DataFrame, dataset: Dataset | str) -> bool:
    """True when two reads hold the same rows; ``created_timestamp`` (the write time) is ignored."""
    ds = _dataset(dataset)
    cols = [c for c in ds.column_names if c != CREATED_TS]
    order = list(ds.key)
    # Both sides pass through the store's schema first, so dtype details (ns vs us, int64 vs Int64) do not count.
    a = to_table(ds, left).to_pandas().loc[:, cols].sort_values(order).reset_index(drop=True)
    b = to_table(ds, right).to_pandas().loc[:, cols].sort_values(order).reset_index(drop=True)
    return bool(a.equals(b))


def write_batches(writer: OfflineWriter, dataset: Dataset | str, frames: Iterable[pd.DataFrame]) -> list[AppendResult]:
    """Append several batches in order (a convenience for jobs and tests)."""
    return [writer.append(dataset, f) for f in frames]


__all__ = [
    "COMPACT_PREFIX",
    "PARTITION_FORMAT",
    "PART_PREFIX",
    "AppendResult",
    "OfflineWriter",
    "count_duplicates",
    "dataset_dir",
    "dataset_root",
    "dedupe_on_key",
    "dedupe_table",
    "empty_frame",
    "frames_equal_ignoring_write_time",
    "locate",
    "part_files",
    "partitions",
    "read_dataset",
    "remove_stale_temp_files",
    "scan_dataset",
    "sort_columns",
    "stored_symbols",
    "table_digest",
    "to_table",
    "visible_files",
    "write_batches",
    "write_parquet_atomic",
]
