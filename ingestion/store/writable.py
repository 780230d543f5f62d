"""Whether the data dir can be written, checked up front: one clear line instead of a traceback from deep inside.

Every command that fetches or loads data writes into ``FEAST_DATA_DIR`` (part files, coverage, the Feast
registry). On a read-only or misplaced data dir the first of those writes used to fail with an
``OSError`` wherever it happened to be. The check is explicit on purpose: ``os.access`` answers for the permission
bits, and a real probe file answers what ``os.access`` cannot see (a read-only mount, a full disk, and root, for whom
``os.access`` says yes to any mode bits).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ingestion.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def unwritable_reason(path: Path, *, create: bool = True) -> str | None:
    """Why ``path`` cannot serve as a data dir, or None when it can.

    With ``create`` the folder is made when missing (as a command would); without it (``health``, which changes
    nothing) a missing folder is judged by its nearest existing parent.
    """
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        target = path if create else _nearest_existing(path)
        if not target.is_dir():
            return f"{target} is not a directory"
        if not os.access(target, os.W_OK | os.X_OK):
            return "no write permission"
        fd, probe = tempfile.mkstemp(dir=target, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def unwritable_problem(path: Path, *, create: bool = True) -> str | None:
    """:func:`unwritable_reason` as the one line a user reads (what is wrong and how to fix it), or None."""
    reason = unwritable_reason(path, create=create)
    if reason is None:
        return None
    return f"FEAST_DATA_DIR {path} is not writable ({reason}): point it at a directory this user can write"


def require_writable(path: Path) -> None:
    """Raise a one-line :class:`ConfigError` when ``path`` cannot be written as a data dir."""
    problem = unwritable_problem(path)
    if problem is not None:
        raise ConfigError(problem)
