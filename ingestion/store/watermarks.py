"""Persisted progress per (dataset, symbol): the newest event time already durable in the offline store.

The offline writer drops rows at or below a symbol's watermark and advances it only after the part file holding
the rows has been renamed into place and fsynced. So a crash between the two leaves the watermark behind the data,
never ahead of it, and the rerun rewrites the same part file (see :mod:`ingestion.store.offline`).

Storage is one SQLite file (``<data_dir>/state/watermarks.sqlite``) rather than one JSON file per key: an upsert of
many symbols is a single atomic transaction (the stream bridge advances hundreds of symbols per micro-batch), and
SQLite's locking makes a backfill and the bridge safe to run side by side. ``synchronous=FULL`` makes a committed
watermark survive a power cut, which is the whole point of keeping it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import pandas as pd

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermark (
    dataset TEXT NOT NULL,
    symbol TEXT NOT NULL,
    event_us INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset, symbol)
)
"""


def _to_us(ts: datetime | pd.Timestamp) -> int:
    """Epoch microseconds (UTC) of an aware timestamp; naive ones are refused so no local time slips in."""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ValueError("watermarks take timezone-aware UTC timestamps")
    return int(stamp.value // 1000)


def _from_us(us: int) -> pd.Timestamp:
    return pd.Timestamp(us * 1000, tz="UTC")


class Watermarks:
    """The watermark table. Values are UTC ``pd.Timestamp`` with microsecond precision (the offline store's)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "watermarks.sqlite"
        # isolation_level=None: we open transactions ourselves, so an upsert of many rows is one commit.
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        # One connection shared by the threads of a job (backfill workers): sqlite3 connections are not safe for
        # concurrent use, and an explicit BEGIN from two threads at once fails, so every use takes this lock.
        self._lock = threading.Lock()

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Watermarks:
        """The watermarks of a data dir (kept in ``<data_dir>/state``, like ``Settings.state_dir``)."""
        return cls(data_dir / "state")

    def get(self, dataset: str, symbol: str) -> pd.Timestamp | None:
        """The watermark of one (dataset, symbol), or None when nothing was written yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT event_us FROM watermark WHERE dataset = ? AND symbol = ?", (dataset, symbol)
            ).fetchone()
        return None if row is None else _from_us(int(row[0]))

    def get_many(self, dataset: str, symbols: Iterable[str]) -> dict[str, pd.Timestamp]:
        """Watermarks of several symbols of one dataset; symbols with none are absent from the result."""
        wanted = sorted(set(symbols))
        found: dict[str, pd.Timestamp] = {}
        # Chunked to stay under SQLite's bound-parameter limit.
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT symbol, event_us FROM watermark WHERE dataset = ? AND symbol IN ({marks})",  # noqa: S608
                    (dataset, *chunk),
                ).fetchall()
            found.update({str(s): _from_us(int(us)) for s, us in rows})
        return found

    def all(self, dataset: str) -> dict[str, pd.Timestamp]:
        with self._lock:
            rows = self._db.execute("SELECT symbol, event_us FROM watermark WHERE dataset = ?", (dataset,)).fetchall()
        return {str(s): _from_us(int(us)) for s, us in rows}

    def advance(self, dataset: str, marks: Mapping[str, datetime | pd.Timestamp]) -> None:
        """Raise the watermarks of several symbols in one atomic transaction. A watermark never moves back."""
        if not marks:
            return
        now = datetime.now(UTC).isoformat()
        rows = [(dataset, symbol, _to_us(ts), now) for symbol, ts in marks.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO watermark (dataset, symbol, event_us, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (dataset, symbol) DO UPDATE SET event_us = excluded.event_us, "
                    "updated_at = excluded.updated_at WHERE excluded.event_us > watermark.event_us",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def reset(self, dataset: str, symbols: Iterable[str] | None = None) -> None:
        """Forget watermarks (all of a dataset, or some symbols), e.g. to re-ingest a range on purpose."""
        with self._lock:
            if symbols is None:
                self._db.execute("DELETE FROM watermark WHERE dataset = ?", (dataset,))
                return
            pairs = [(dataset, s) for s in symbols]
            self._db.executemany("DELETE FROM watermark WHERE dataset = ? AND symbol = ?", pairs)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Watermarks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["Watermarks"]
