"""The offline layout on object storage: part files written once under their final name, made visible by a manifest.

Same layout as on disk (``<root>/offline/<dataset>/<YYYY-MM>/part-<digest>.parquet``), same names, same bytes. What
differs is how a batch becomes visible, because S3 has no rename:

1. Each part file of a batch is written whole by one ``PUT`` under its final name (a reader never sees half an
   object). Writing the same rows again (same digest) replaces the object whole, as the local rename does.
2. Then one **manifest**, ``<dataset>/_commits/<digest>.json``, names the batch's files and the ETag of the version
   it wrote of each (``{"files": [...], "etags": {name: etag}}``); it is written with ``If-None-Match: *``, so it is
   created once and never changed. Its digest covers names and ETags: a rerun that writes the same bytes finds its
   manifest there and is done, a rerun that rewrites a file commits that new version.
3. Readers read only files named by a manifest. A batch that spans several months is therefore seen whole or not
   at all, and a writer killed between its parts and its manifest leaves files no reader sees; the rerun writes
   the same names again and commits them.

**Replacement** (``compact``, :mod:`ingestion.store.compact_objects`) is one more manifest of the same kind that
also *retires* versions: ``{"files": [merged], "etags": ..., "replaces": {name: [etag, ...]}}``. A version named by
some manifest is visible unless a manifest retires it, so the merged file and the retirement of its inputs appear in
one ``PUT``: a reader that lists the manifests before it sees the inputs only, after it the merged file only, never
both or neither. Retiring a *version* rather than a name keeps a later rewrite of the same name (a quarantine
requeue, a deliberate correction) visible. A manifest without ETags (written before they were recorded) is retired
by name.

Manifests are immutable, so a process caches every manifest it has read and later reads fetch only new ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ingestion.store.objectstore import Conflict, ObjectRoot

COMMITS = "_commits"
PARQUET_COMPRESSION = "zstd"
_READERS = 16
"""Manifests fetched in parallel on a cold read (each is a small GET; latency, not bandwidth, bounds them)."""

Etag = str | None
"""The ETag of one committed version of a file; None in manifests written before ETags were recorded."""


@dataclass(frozen=True)
class Manifest:
    """One commit: the file versions it makes visible and those it retires (names relative to the dataset root)."""

    files: Mapping[str, Etag]
    replaces: Mapping[str, frozenset[Etag]] = field(default_factory=dict)
    at: float = 0.0
    """When it was written (epoch seconds, writer's clock; 0 when unknown): ``compact`` purges what it retired
    only a grace period later."""

    def retires(self, name: str, etag: Etag) -> bool:
        versions = self.replaces.get(name)
        # A version of unknown ETag is retired by any retirement of its name (it predates ETags).
        return versions is not None and (etag is None or etag in versions or None in versions)


_seen: dict[str, Manifest] = {}
_seen_lock = threading.Lock()


def write_part(target: ObjectRoot, table: pa.Table, *, metadata: dict[str, str] | None = None) -> str:
    """One Parquet object, written whole by a single ``PUT`` under its final name; returns its ETag."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return target.put(sink.getvalue().to_pybytes())


def commit(
    dataset_root: ObjectRoot,
    files: Mapping[ObjectRoot, str],
    *,
    replaces: Mapping[str, Iterable[Etag]] | None = None,
) -> ObjectRoot:
    """Make the written ``files`` (object -> ETag of the version written, below ``dataset_root``) visible together,
    retiring the ``replaces`` versions (name -> ETags) in the same step: one manifest, created once."""
    versions = {_relative(dataset_root, f): etag for f, etag in files.items()}
    retired = {name: sorted(e for e in etags if e is not None) for name, etags in (replaces or {}).items()}
    body: dict[str, object] = {"files": sorted(versions), "etags": dict(sorted(versions.items()))}
    if retired:
        body.update(replaces=dict(sorted(retired.items())), at=time.time())
    identity = {k: v for k, v in body.items() if k != "at"}
    digest = hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=12).hexdigest()
    manifest = dataset_root / COMMITS / f"{digest}.json"
    # Conflict: the same versions were committed before (a rerun that wrote identical bytes): nothing to add.
    with contextlib.suppress(Conflict):
        manifest.put(json.dumps(body).encode(), if_none_match=True)
    return manifest


def manifests(dataset_root: ObjectRoot) -> dict[ObjectRoot, Manifest]:
    """Every manifest of a dataset, by object (cached: a manifest never changes once written)."""
    listed = (dataset_root / COMMITS).list()
    with _seen_lock:
        new = [m for m in listed if m.url not in _seen]
    if new:
        with ThreadPoolExecutor(max_workers=min(_READERS, len(new))) as pool:
            for obj, manifest in zip(new, pool.map(_read_manifest, new), strict=True):
                with _seen_lock:
                    _seen[obj.url] = manifest
    with _seen_lock:
        return {m: _seen[m.url] for m in listed}


def committed_versions(dataset_root: ObjectRoot, partition: str | None = None) -> dict[str, frozenset[Etag]]:
    """The visible files of a dataset (or of one ``YYYY-MM`` partition): name -> the committed, unretired versions."""
    found = list(manifests(dataset_root).values())
    retirements: dict[str, set[Etag]] = {}
    for manifest in found:
        for name, etags in manifest.replaces.items():
            retirements.setdefault(name, set()).update(etags)
    retired = Manifest({}, {name: frozenset(etags) for name, etags in retirements.items()})
    visible: dict[str, set[Etag]] = {}
    for manifest in found:
        for name, etag in manifest.files.items():
            if partition is not None and name.split("/", 1)[0] != partition:
                continue
            if not retired.retires(name, etag):
                visible.setdefault(name, set()).add(etag)
    return {name: frozenset(etags) for name, etags in sorted(visible.items())}


def committed_files(dataset_root: ObjectRoot, partition: str | None = None) -> list[ObjectRoot]:
    """Every visible part file of a dataset (or of one ``YYYY-MM`` partition), sorted by key."""
    return [dataset_root / name for name in committed_versions(dataset_root, partition)]


def scan(files: Sequence[ObjectRoot], schema: pa.Schema) -> pads.Dataset:
    """An Arrow dataset over committed part files (ranged reads through pyarrow's S3 filesystem); DuckDB scans it."""
    if not files:
        return pads.dataset(schema.empty_table())
    return pads.dataset([f.fs_path for f in files], schema=schema, format="parquet", filesystem=files[0].filesystem())


def _read_manifest(obj: ObjectRoot) -> Manifest:
    raw = obj.read_json()
    if raw is None:
        # Purged since it was listed (``compact`` deletes manifests all of whose versions are retired).
        return Manifest({})
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, list):
        raise ValueError(f"{obj} is not a batch manifest")
    etags = raw.get("etags") or {}
    replaces = raw.get("replaces") or {}
    return Manifest(
        files={str(f): (None if etags.get(f) is None else str(etags[f])) for f in files},
        replaces={str(n): frozenset(str(e) for e in v) or frozenset({None}) for n, v in replaces.items()},
        at=float(raw.get("at") or 0.0),
    )


def _relative(root: ObjectRoot, target: ObjectRoot) -> str:
    prefix = f"{root.url}/"
    if not target.url.startswith(prefix):
        raise ValueError(f"{target} is not below {root}")
    return target.url[len(prefix) :]


__all__ = [
    "COMMITS",
    "Etag",
    "Manifest",
    "commit",
    "committed_files",
    "committed_versions",
    "manifests",
    "scan",
    "write_part",
]
