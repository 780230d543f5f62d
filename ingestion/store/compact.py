"""Compaction: merge the small part files of each month into one file, without changing a row.

Per partition (``<dataset>/<YYYY-MM>``): read every visible file, keep one row per ``Dataset.key`` (newest
``created_timestamp``, the same rule Feast applies, so exact re-writes collapse and nothing a reader could see
changes), sort by symbol and time, write ``compact-<digest>.parquet`` atomically, then delete the inputs.

The merged file records the names of the files it replaces in its Parquet metadata (``ingestion.replaces``). If
compaction is killed between the rename and the deletes, the next run finishes the job first: it deletes the listed
files that are older than the merged file. A reader in that short window sees both copies of a key, with equal
values and the same event time; Feast's point-in-time join picks one, and :func:`read_dataset` callers that need
exact counts run after compaction. Input files are snapshotted at the start, so an append that lands meanwhile is
left for the next run. Deleting inputs can break a query that already listed them: schedule compaction away from
training reads.

On object storage neither window exists: the merged file and the retirement of its inputs become visible in one
manifest (:mod:`ingestion.store.compact_objects`), and the inputs are deleted only ``PURGE_AFTER`` later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.datasets import Dataset, get
from ingestion.store.objectstore import Root
from ingestion.store.offline import (
    COMPACT_PREFIX,
    dataset_dir,
    dedupe_on_key,
    fsync_dir,
    partitions,
    sort_columns,
    to_table,
    visible_files,
    write_parquet_atomic,
)

REPLACES_KEY = "ingestion.replaces"
PURGE_AFTER = timedelta(hours=1)
"""How long retired objects stay on object storage: a query that listed the manifests before a compaction still
reads its inputs for that long (longer than any training read here; a local compaction deletes them at once)."""


@dataclass
class CompactResult:
    """What :func:`compact` did over one dataset. Counts are files and rows."""

    dataset: str
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    recovered_deletes: int = 0
    purged: int = 0
    """Objects deleted on object storage: inputs (and their manifests) retired by a compaction ``purge_after`` ago."""

    @property
    def duplicates_removed(self) -> int:
        return self.rows_before - self.rows_after


def _replaced_by(path: Path) -> list[str]:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(REPLACES_KEY.encode())
    return [str(n) for n in json.loads(raw)] if raw else []


def finish_interrupted(folder: Path) -> int:
    """Delete inputs that a merged file in ``folder`` replaced but a killed compaction left behind."""
    deleted = 0
    for merged in sorted(folder.glob(f"{COMPACT_PREFIX}*.parquet")):
        if not merged.exists():  # deleted a moment ago as the input of a later merge
            continue
        merged_mtime = merged.stat().st_mtime_ns
        for name in _replaced_by(merged):
            stale = folder / name
            # An input newer than the merge is a re-written batch, not a leftover: keep it.
            if stale != merged and stale.exists() and stale.stat().st_mtime_ns <= merged_mtime:
                stale.unlink()
                deleted += 1
    if deleted:
        fsync_dir(folder)
    return deleted


def compact_partition(
    ds: Dataset, folder: Path, *, min_files: int = 2, fsync: bool = True
) -> tuple[int, int, int, int]:
    """Merge one partition folder; returns (files_before, files_after, rows_before, rows_after)."""
    inputs = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if len(inputs) < min_files:
        rows = sum(pq.read_metadata(p).num_rows for p in inputs)
        return len(inputs), len(inputs), rows, rows
    names = [p.name for p in inputs]
    tables = [pq.read_table(p, schema=ds.arrow_schema()) for p in inputs]
    merged = merge_tables(ds, tables)
    target = folder / merged_name(names)
    write_parquet_atomic(merged, target, fsync=fsync, metadata={REPLACES_KEY: json.dumps(names)})
    for path in inputs:
        if path != target:
            path.unlink(missing_ok=True)
    if fsync:
        fsync_dir(folder)
    return len(inputs), 1, sum(t.num_rows for t in tables), merged.num_rows


def merge_tables(ds: Dataset, tables: Sequence[pa.Table]) -> pa.Table:
    """The rows of ``tables`` with one row per ``Dataset.key`` (the rule every reader applies), sorted as a part
    file is: what a merged file holds, on disk or on object storage."""
    frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return to_table(ds, dedupe_on_key(ds, frame).sort_values(sort_columns(ds), kind="stable"))


def merged_name(inputs: Sequence[str]) -> str:
    """The merged file's name: a digest of what it replaces, so a rerun of a killed compaction writes it again."""
    digest = hashlib.blake2b("\n".join(inputs).encode(), digest_size=12).hexdigest()
    return f"{COMPACT_PREFIX}{digest}.parquet"


def compact(
    data_dir: Root,
    dataset: Dataset | str,
    *,
    only: Iterable[str] | None = None,
    min_files: int = 2,
    fsync: bool = True,
    purge_after: timedelta = PURGE_AFTER,
) -> CompactResult:
    """Compact every partition of a dataset (or the ``YYYY-MM`` partitions in ``only``) with at least ``min_files``.

    On object storage (:mod:`ingestion.store.compact_objects`) the merged file replaces its inputs through one
    manifest, and the objects earlier compactions retired at least ``purge_after`` ago are deleted.
    """
    ds = get(dataset) if isinstance(dataset, str) else dataset
    result = CompactResult(dataset=ds.name)
    wanted = set(only) if only is not None else None
    if isinstance(data_dir, Path):
        months = partitions(data_dir, ds)
    else:
        from ingestion.store import compact_objects

        months = compact_objects.partitions(data_dir, ds)
    for name in months:
        if wanted is not None and name not in wanted:
            continue
        if isinstance(data_dir, Path):
            folder = dataset_dir(data_dir, ds) / name
            result.recovered_deletes += finish_interrupted(folder)
            counts = compact_partition(ds, folder, min_files=min_files, fsync=fsync)
        else:
            counts = compact_objects.compact_partition(ds, data_dir, name, min_files=min_files)
        before, after, rows_before, rows_after = counts
        result.files_before += before
        result.files_after += after
        result.rows_before += rows_before
        result.rows_after += rows_after
        if after < before:
            result.partitions_compacted += 1
    if not isinstance(data_dir, Path):
        result.purged = compact_objects.purge_retired(data_dir, ds, older_than=purge_after)
    return result


def file_count(data_dir: Root, dataset: Dataset | str) -> int:
    """Visible part files of a dataset, local or on object storage (a small helper for summaries)."""
    return len(visible_files(data_dir, dataset))


__all__ = [
    "PURGE_AFTER",
    "REPLACES_KEY",
    "CompactResult",
    "compact",
    "compact_partition",
    "file_count",
    "finish_interrupted",
    "merge_tables",
    "merged_name",
]
