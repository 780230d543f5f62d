"""``compact`` on object storage: merge a month's committed part files into one, replacing them through a manifest.

The merge itself is the local one (:func:`ingestion.store.compact.merge_tables`: one row per key, by the rule every
reader applies, so no answer changes). What differs is how the merged file takes the inputs' place, since S3 has
no rename and a delete is visible at once:

1. The inputs are the month's visible versions (:func:`ingestion.store.offline_objects.committed_versions`), each
   read whole with its ETag. A file rewritten since its commit (an ETag no manifest names: a writer between its
   ``PUT`` and its manifest) is left out and left visible: its rows are not committed yet.
2. The merged file is written once under its final name (a digest of the inputs' names and ETags, so a rerun of a
   killed compaction writes the same object again), invisible until step 3.
3. One manifest commits the merged file and retires exactly the input versions read
   (:mod:`ingestion.store.offline_objects`): readers switch from all inputs to the merged file in that one ``PUT``,
   never seeing both or neither. A writer that rewrites an input's name later commits a new version, which stays
   visible beside the merged file; readers resolve the key as always (newest write).
4. Retired objects are deleted only ``purge_after`` later (:func:`purge_retired`), so a query that listed the
   manifests just before the switch can still read the inputs. Then the batch manifests all of whose versions are
   retired go too; the replacing manifests stay (a few hundred bytes a month), because they are what keeps a
   retired version retired.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.datasets import Dataset
from ingestion.store import offline_objects
from ingestion.store.compact import REPLACES_KEY, merge_tables, merged_name
from ingestion.store.objectstore import Conflict, ObjectRoot
from ingestion.store.offline_objects import Etag, Manifest


def _folder(root: ObjectRoot, ds: Dataset) -> ObjectRoot:
    return root / "offline" / ds.name


def partitions(root: ObjectRoot, ds: Dataset) -> list[str]:
    """The ``YYYY-MM`` partitions holding visible files of a dataset, sorted."""
    return sorted({name.split("/", 1)[0] for name in offline_objects.committed_versions(_folder(root, ds))})


def compact_partition(
    ds: Dataset, root: ObjectRoot, partition: str, *, min_files: int = 2
) -> tuple[int, int, int, int]:
    """Merge one partition; returns (files_before, files_after, rows_before, rows_after) of its visible files."""
    folder = _folder(root, ds)
    versions = offline_objects.committed_versions(folder, partition)
    if len(versions) < min_files:
        rows = sum(_rows(folder / name) for name in versions)
        return len(versions), len(versions), rows, rows
    tables: list[pa.Table] = []
    replaces: dict[str, set[Etag]] = {}
    for name, committed in versions.items():
        found = (folder / name).get()
        if found is None:
            continue  # purged by a concurrent compaction that retired it: its rows are in that merged file
        data, etag = found
        if None not in committed and etag not in committed:
            continue  # rewritten and not committed yet (step 1)
        tables.append(pq.read_table(pa.BufferReader(data), schema=ds.arrow_schema()))
        known: set[Etag] = {e for e in committed if e is not None}
        replaces[name] = known | {etag}
    rows_before = sum(t.num_rows for t in tables)
    if len(tables) < min_files:
        return len(versions), len(versions), rows_before, rows_before
    merged = merge_tables(ds, tables)
    inputs = sorted(replaces)
    target = folder / partition / merged_name([f"{n}@{','.join(sorted(str(e) for e in replaces[n]))}" for n in inputs])
    etag = offline_objects.write_part(target, merged, metadata={REPLACES_KEY: json.dumps(inputs)})
    offline_objects.commit(folder, {target: etag}, replaces=replaces)
    return len(versions), len(versions) - len(tables) + 1, rows_before, merged.num_rows


def purge_retired(root: ObjectRoot, ds: Dataset, *, older_than: timedelta) -> int:
    """Delete the objects that compactions at least ``older_than`` ago retired, and the batch manifests all of
    whose versions they retired; returns how many objects were deleted (step 4)."""
    folder = _folder(root, ds)
    found = offline_objects.manifests(folder)
    cutoff = time.time() - older_than.total_seconds()
    retirements: dict[str, set[Etag]] = {}
    for manifest in found.values():
        if manifest.replaces and manifest.at <= cutoff:
            for name, etags in manifest.replaces.items():
                retirements.setdefault(name, set()).update(etags)
    if not retirements:
        return 0
    retired = Manifest({}, {name: frozenset(etags) for name, etags in retirements.items()})
    visible = offline_objects.committed_versions(folder)
    purged = 0
    for name, retired_etags in sorted(retirements.items()):
        if name in visible:
            continue  # a later version of this name is committed: the object is live
        current = (folder / name).head()
        if current is not None and (current in retired_etags or None in retired_etags):
            # Conditional: a writer that has just rewritten the name (not committed yet) keeps its object.
            with contextlib.suppress(Conflict):
                (folder / name).delete(if_match=current)
                purged += 1
    for obj, manifest in found.items():
        if manifest.files and not manifest.replaces and all(retired.retires(n, e) for n, e in manifest.files.items()):
            obj.delete()
            purged += 1
    return purged


def _rows(obj: ObjectRoot) -> int:
    return int(pq.read_metadata(obj.fs_path, filesystem=obj.filesystem()).num_rows)


__all__ = ["compact_partition", "partitions", "purge_retired"]
