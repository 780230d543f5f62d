"""The offline layout on object storage: part files written once under their final name, made visible by a manifest.

Same layout as on disk (``<root>/offline/<dataset>/<YYYY-MM>/part-<digest>.parquet``), same names, same bytes. What
differs is how a batch becomes visible, because S3 has no rename:

1. Each part file of a batch is written whole by one ``PUT`` under its final name (a reader never sees half an
   object). Writing the same rows again (same digest) replaces the object whole, as the local rename does.
2. Then one **manifest**, ``<dataset>/_commits/<digest of the batch's file names>.json``, lists the batch's files;
   it is written with ``If-None-Match: *``, so it is created once and never changed (a rerun of the same batch
   finds it there and is done).
3. Readers read only files named by a manifest. A batch that spans several months is therefore seen whole or not
   at all, and a writer killed between its parts and its manifest leaves files no reader sees; the rerun writes
   the same names again and commits them.

Manifests are immutable, so a process caches every manifest it has read and later reads fetch only new ones.
``compact`` works on local data dirs only for now: merging files on object storage needs a manifest that retires
others, which this layout leaves for later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ingestion.store.objectstore import Conflict, ObjectRoot

COMMITS = "_commits"
PARQUET_COMPRESSION = "zstd"
_READERS = 16
"""Manifests fetched in parallel on a cold read (each is a small GET; latency, not bandwidth, bounds them)."""

_seen: dict[str, tuple[str, ...]] = {}
_seen_lock = threading.Lock()


def write_part(target: ObjectRoot, table: pa.Table, *, metadata: dict[str, str] | None = None) -> None:
    """One Parquet object, written whole by a single ``PUT`` under its final name."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    target.put(sink.getvalue().to_pybytes())


def commit(dataset_root: ObjectRoot, files: Sequence[ObjectRoot]) -> ObjectRoot:
    """Make ``files`` (already written, below ``dataset_root``) visible together: one manifest, created once."""
    names = sorted(_relative(dataset_root, f) for f in files)
    digest = hashlib.blake2b("\n".join(names).encode(), digest_size=12).hexdigest()
    manifest = dataset_root / COMMITS / f"{digest}.json"
    # Conflict: the same batch was committed before (a rerun), and its manifest names exactly these files.
    with contextlib.suppress(Conflict):
        manifest.put(json.dumps({"files": names}).encode(), if_none_match=True)
    return manifest


def committed_files(dataset_root: ObjectRoot, partition: str | None = None) -> list[ObjectRoot]:
    """Every committed part file of a dataset (or of one ``YYYY-MM`` partition), sorted by key."""
    manifests = (dataset_root / COMMITS).list()
    with _seen_lock:
        new = [m for m in manifests if m.url not in _seen]
    if new:
        with ThreadPoolExecutor(max_workers=min(_READERS, len(new))) as pool:
            for manifest, files in zip(new, pool.map(_read_manifest, new), strict=True):
                with _seen_lock:
                    _seen[manifest.url] = files
    with _seen_lock:
        names = {name for m in manifests for name in _seen[m.url]}
    if partition is not None:
        names = {n for n in names if n.split("/", 1)[0] == partition}
    return [dataset_root / n for n in sorted(names)]


def scan(files: Sequence[ObjectRoot], schema: pa.Schema) -> pads.Dataset:
    """An Arrow dataset over committed part files (ranged reads through pyarrow's S3 filesystem); DuckDB scans it."""
    if not files:
        return pads.dataset(schema.empty_table())
    return pads.dataset([f.fs_path for f in files], schema=schema, format="parquet", filesystem=files[0].filesystem())


def _read_manifest(manifest: ObjectRoot) -> tuple[str, ...]:
    raw = manifest.read_json()
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, list):
        raise ValueError(f"{manifest} is not a batch manifest")
    return tuple(str(f) for f in files)


def _relative(root: ObjectRoot, target: ObjectRoot) -> str:
    prefix = f"{root.url}/"
    if not target.url.startswith(prefix):
        raise ValueError(f"{target} is not below {root}")
    return target.url[len(prefix) :]


__all__ = ["COMMITS", "commit", "committed_files", "scan", "write_part"]
