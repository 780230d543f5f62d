"""Which date ranges of a (dataset, symbol) a backfill has completed, persisted as merged intervals.

The offline writer's watermark says how far the newest data reaches; a backfill also needs to know *which* older
ranges are done, because a user may load June first and January later. Each completed chunk is recorded here after
its rows are durable, and a run fetches only the parts of its range not yet covered. So re-running a range fetches
nothing, a wider range fetches only what is missing, and an interrupted run resumes at the first missing chunk.

Two runs may record units of one dataset at the same time (two backfills in two processes): each record is a
read-modify-write of the dataset's file under an OS file lock, or on object storage (``FEAST_DATA_DIR=s3://...``)
a compare-and-swap on the object's ETag (:mod:`ingestion.store.records`), so neither loses the other's units.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.store.objectstore import Root
from ingestion.store.records import read_record, update_record

Interval = tuple[dt.date, dt.date]

MARKET = "*"
"""The symbol of a market-wide record: units of every ticker the vendor answered at once (the grouped daily path,
:mod:`ingestion.jobs.universe`). It is kept in its dataset's file, so it covers each ticker for that dataset only: a
grouped daily run covers ``ohlcv_daily`` of AAPL, never its minute bars."""


def merge(intervals: list[Interval]) -> list[Interval]:
    """Union of inclusive date intervals; touching intervals (end + 1 day = next start) are joined."""
    out: list[Interval] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def missing(wanted: Interval, covered: list[Interval]) -> list[Interval]:
    """The parts of ``wanted`` not inside any ``covered`` interval, in order."""
    lo, hi = wanted
    gaps: list[Interval] = []
    cursor = lo
    for c_lo, c_hi in merge(covered):
        if c_hi < cursor:
            continue
        if c_lo > hi:
            break
        if c_lo > cursor:
            gaps.append((cursor, min(hi, c_lo - dt.timedelta(days=1))))
        cursor = max(cursor, c_hi + dt.timedelta(days=1))
        if cursor > hi:
            break
    if cursor <= hi:
        gaps.append((cursor, hi))
    return gaps


class Coverage:
    """Completed intervals per (dataset, symbol), one small JSON file per dataset under ``state_dir/coverage``
    (a local folder, or a prefix on object storage)."""

    def __init__(self, state_dir: Root) -> None:
        self._dir = state_dir / "coverage"

    def _path(self, dataset: str) -> Root:
        return self._dir / f"{dataset}.json"

    def get(self, dataset: str, symbol: str) -> list[Interval]:
        # No lock: the file (or object) is replaced whole, so a reader sees one complete version.
        raw = read_record(self._path(dataset)) or {}
        return _intervals(raw.get(symbol, []))

    def covered(self, dataset: str, symbol: str) -> list[Interval]:
        """What is done for ``symbol`` in ``dataset``: its own intervals and the market-wide ones (:data:`MARKET`),
        merged; one read, so both come from one version of the file."""
        raw = read_record(self._path(dataset)) or {}
        return merge([*_intervals(raw.get(symbol, [])), *_intervals(raw.get(MARKET, []))])

    def add(self, dataset: str, symbol: str, interval: Interval) -> None:
        """Record ``interval`` as complete (call only after its rows are durable)."""

        def record(data: dict[str, Any]) -> None:
            spans = merge([*_intervals(data.get(symbol, [])), interval])
            data[symbol] = [[a.isoformat(), b.isoformat()] for a, b in spans]

        update_record(self._path(dataset), record)


def _intervals(spans: list[Any]) -> list[Interval]:
    return [(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in spans]
