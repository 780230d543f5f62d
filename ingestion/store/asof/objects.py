"""The ASOF store's reads from an offline store on object storage (a FileSource path ``s3://.../offline/<ds>/**``).

DuckDB joins exactly as for local files; only the scan differs. Its ``httpfs`` extension is not used (it is a
download at run time, and the ``duckdb-extension-httpfs`` wheel stops at DuckDB 1.5.5), so the committed part files
(those a batch manifest names, :mod:`ingestion.store.offline_objects`) are opened as an Arrow dataset through
pyarrow's S3 filesystem and registered on the connection: DuckDB pushes projections and filters into that scan.
Endpoint and credentials come from the standard ``AWS_*`` variables, read when the query runs.
"""

from __future__ import annotations

import duckdb

from ingestion.datasets import Dataset, get
from ingestion.store import offline_objects
from ingestion.store.objectstore import ObjectRoot


def object_dataset(path: str) -> tuple[ObjectRoot, Dataset]:
    """The store root and dataset of ``s3://<root>/offline/<dataset>/**/*.parquet`` (``ValueError`` otherwise)."""
    head = path.split("*", 1)[0].rstrip("/")
    root, offline, name = head.rsplit("/", 2) if head.count("/") >= 4 else ("", "", "")
    if offline != "offline":
        raise ValueError(f"{path}: the ASOF store reads object storage only as <root>/offline/<dataset>/**")
    try:
        return ObjectRoot(root), get(name)
    except KeyError as e:
        raise ValueError(f"{path}: {e.args[0]}") from None


def register_files(con: duckdb.DuckDBPyConnection, path: str, name: str) -> str | None:
    """Register the dataset's committed part files on ``con`` as relation ``name``; None when there are none."""
    root, dataset = object_dataset(path)
    files = offline_objects.committed_files(root / "offline" / dataset.name)
    if not files:
        return None
    # The dataset's own schema: files written before a column was added read it as null (union_by_name's effect).
    con.register(name, offline_objects.scan(files, dataset.arrow_schema()))
    return name


__all__ = ["object_dataset", "register_files"]
