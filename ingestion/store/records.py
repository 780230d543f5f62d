"""Small JSON records that several writers update (coverage, the data dir's environment), wherever the store lives.

One read-modify-write, two mechanisms: in a local data dir the OS file lock of :mod:`ingestion.store.jsonstate`; on
object storage a compare-and-swap on the object's ETag (:meth:`~ingestion.store.objectstore.ObjectRoot.update_json`),
because a lock on one machine cannot stop a writer on another. ``change`` may run more than once on object storage
(after a lost race it is applied again to the fresh record), so it must only edit the dict it is given, or raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingestion.store.jsonstate import read_json, update_json
from ingestion.store.objectstore import ObjectRoot, Root


def read_record(path: Root) -> Any:
    """The decoded record, or None when there is none (no lock: records are replaced whole)."""
    return path.read_json() if isinstance(path, ObjectRoot) else read_json(path)


def update_record(path: Root, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the record (``{}`` when absent) without losing a concurrent writer's update."""
    if isinstance(path, ObjectRoot):
        path.update_json(change)
        return
    with update_json(path) as data:
        change(data)


__all__ = ["read_record", "update_record"]
