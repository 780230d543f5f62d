"""Feature-server logs (Feast feature logging) as Parquet under a logging destination's folder.

Feast's logger flushes logs in chunks and calls ``write_logged_features`` once per chunk; each call appends. So every
call writes new files named ``log-<uuid>.parquet`` (log rows have no key to name a file by, and two flushes must
never replace each other), written like every part file: a hidden temp file, fsync, rename, so a reader never sees
half a file. With ``partition_by`` the rows go to ``<column>=<value>/`` folders, as Feast's file destinations lay them
out, and the partition columns stay in the files too: our reads never take columns from folder names (feast-notes
pitfall 8), so Feast's log retrieval through this store sees every column.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from ingestion.store.offline import write_parquet_atomic

LOG_PREFIX = "log-"
# Hive's name for a null partition value, which Spark, DuckDB and pyarrow all read back as null.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _partition_folder(values: dict[str, object]) -> str:
    parts = [f"{name}={NULL_PARTITION if v is None else quote(str(v), safe='')}" for name, v in values.items()]
    return "/".join(parts)


def _rows_of(table: pa.Table, values: dict[str, object]) -> pa.Table:
    mask: pa.ChunkedArray | None = None
    for name, value in values.items():
        column = table[name]
        match = pc.is_null(column) if value is None else pc.equal(column, pa.scalar(value, column.type))
        mask = match if mask is None else pc.and_(mask, match)
    return table.filter(mask)


def write_log_batch(table: pa.Table, folder: Path, partition_by: Sequence[str] | None = None) -> list[Path]:
    """Append ``table`` under ``folder`` as new Parquet files (one per partition value); returns the files."""
    if table.num_rows == 0:
        return []
    name = f"{LOG_PREFIX}{uuid.uuid4().hex}.parquet"
    if not partition_by:
        target = folder / name
        write_parquet_atomic(table, target)
        return [target]
    missing = [c for c in partition_by if c not in table.column_names]
    if missing:
        raise ValueError(f"logged batch lacks partition columns {missing}")
    written = []
    for values in table.group_by(list(partition_by)).aggregate([]).to_pylist():
        target = folder / _partition_folder(values) / name
        write_parquet_atomic(_rows_of(table, values), target)
        written.append(target)
    return written


__all__ = ["LOG_PREFIX", "write_log_batch"]
