"""Small JSON state files that several processes update: read-modify-write under an OS lock, atomic replace.

Coverage records and the data dir's environment record are rewritten whole on each change. Two runs side by side
(two backfills, a backfill and the demo) would each read the file, add their part and write it back, and the second
write would lose the first's change: a lock held only inside one process does not stop another process. So every
update holds ``flock`` on a lock file beside the JSON (``<name>.lock``; the JSON itself is replaced on each write, so
it cannot carry the lock), re-reads the file under the lock, and renames a complete new file into place. Readers need
no lock: a rename is atomic, so they see the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    """The decoded file, or None when there is none."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` to ``path`` through a fsynced temp file renamed into place (mode 0600, as mkstemp makes it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (created 0600 when missing) while the block runs.

    ``flock`` locks belong to an open file description, so two threads of one process exclude each other too, and
    the kernel releases the lock when a holder dies (a run killed with SIGKILL never leaves a stale lock).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def update_json(path: Path) -> Iterator[dict[str, Any]]:
    """Read ``path`` (``{}`` when absent) under its lock, let the block change the dict, and write it back if it
    changed."""
    with file_lock(path):
        current = read_json(path)
        if current is not None and not isinstance(current, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        data: dict[str, Any] = current or {}
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            write_json_atomic(path, data)
