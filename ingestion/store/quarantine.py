"""The quarantine: rows that failed validation, stored with their reason and source in the ``quarantine`` dataset.

Rejected rows go through the same offline writer as good rows (same layout, atomic part files), so nothing is
dropped silently and a rerun does not duplicate them: the part file name is a digest of the rows' key
(dataset, source, payload), which does not include the quarantine time. There is no symbol column, so no watermark.

The quarantine is append-only. A row that a replay (:mod:`ingestion.jobs.replay`) landed keeps its quarantine row and
gains a record in ``quarantine_replays``, which hides it from :meth:`Quarantine.pending`; a row that a replay refused
for a new reason is written again under the same key, and the newest row of a key is the one read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from ingestion.datasets import EVENT_TS, QUARANTINE, QUARANTINE_REPLAYS
from ingestion.rejects import Rejected
from ingestion.store.objectstore import Root
from ingestion.store.offline import AppendResult, OfflineWriter, dedupe_on_key, read_dataset

_KEY = list(QUARANTINE.key)
_RECORD = ["dataset", "source", "reason", "payload"]


def rejects_frame(rejects: Sequence[Rejected], at: datetime) -> pd.DataFrame:
    """Rejected records as rows of the quarantine dataset, stamped ``at`` (UTC)."""
    return pd.DataFrame(
        {
            "dataset": [r.dataset for r in rejects],
            "source": [r.source for r in rejects],
            "reason": [r.reason for r in rejects],
            "payload": [r.payload_json() for r in rejects],
            EVENT_TS: pd.Series([at] * len(rejects), dtype="datetime64[us, UTC]"),
        }
    )


class Quarantine:
    """Writes :class:`~ingestion.rejects.Rejected` rows under ``<data_dir>/offline/quarantine`` and counts them."""

    def __init__(self, data_dir: Root, *, writer: OfflineWriter | None = None) -> None:
        self.data_dir = data_dir
        self.writer = writer or OfflineWriter(data_dir)

    def write(self, rejects: Sequence[Rejected], *, at: datetime | None = None) -> AppendResult:
        """Store the rejected rows (``at`` defaults to now, UTC). Empty input writes nothing."""
        if not rejects:
            return AppendResult(dataset=QUARANTINE.name)
        return self.writer.append(QUARANTINE, rejects_frame(rejects, at or datetime.now(UTC)))

    def read(self) -> pd.DataFrame:
        """Every quarantined row, one per (dataset, source, payload)."""
        return dedupe_on_key(QUARANTINE, read_dataset(self.data_dir, QUARANTINE)).reset_index(drop=True)

    def rows(
        self, *, dataset: str | None = None, reason: str | None = None, include_replayed: bool = False
    ) -> pd.DataFrame:
        """Quarantined rows with a ``replayed`` column; rows a replay landed only with ``include_replayed``.

        ``dataset`` keeps the rows meant for that dataset, ``reason`` those whose reason contains that text.
        """
        frame = self.read()
        if dataset is not None:
            frame = frame[frame["dataset"] == dataset]
        if reason is not None:
            frame = frame[frame["reason"].str.contains(reason, regex=False)]
        replays = dedupe_on_key(QUARANTINE_REPLAYS, read_dataset(self.data_dir, QUARANTINE_REPLAYS))
        done = frame.merge(replays[_KEY], on=_KEY, how="left", indicator=True)["_merge"].eq("both").to_numpy()
        frame = frame.assign(replayed=done)
        return (frame if include_replayed else frame[~done]).reset_index(drop=True)

    def pending(self, *, dataset: str | None = None, reason: str | None = None) -> pd.DataFrame:
        """Quarantined rows no replay has landed (see :meth:`rows`)."""
        return self.rows(dataset=dataset, reason=reason)

    def requeue(self, rows: pd.DataFrame, *, at: datetime) -> AppendResult:
        """Quarantine ``rows`` (quarantine rows with a new ``reason``) again under their key, stamped ``at``."""
        return self.writer.append(QUARANTINE, _stamped(rows, at))

    def mark_replayed(self, rows: pd.DataFrame, *, at: datetime) -> AppendResult:
        """Record that a replay landed ``rows`` (quarantine rows, with the reason they had) at ``at``."""
        return self.writer.append(QUARANTINE_REPLAYS, _stamped(rows, at))

    def counts(self) -> dict[tuple[str, str], int]:
        """Quarantined rows by (dataset, reason)."""
        frame = self.read()
        if frame.empty:
            return {}
        grouped = frame.groupby(["dataset", "reason"], sort=True).size()
        return {(str(d), str(r)): int(n) for (d, r), n in grouped.items()}

    def counts_by_dataset(self) -> dict[str, int]:
        """Quarantined rows by target dataset."""
        totals: dict[str, int] = {}
        for (dataset, _), n in self.counts().items():
            totals[dataset] = totals.get(dataset, 0) + n
        return totals


def _stamped(rows: pd.DataFrame, at: datetime) -> pd.DataFrame:
    return rows.loc[:, _RECORD].assign(**{EVENT_TS: pd.Timestamp(at)})


__all__ = ["Quarantine", "rejects_frame"]
