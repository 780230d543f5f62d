"""Landing: the one way fetched rows reach the offline store, for backfills and the stream's REST refill alike.

``checks -> quarantine -> offline append -> metrics -> summary``: every frame of a :class:`Batch` passes its
dataset's quality checks (:func:`~ingestion.jobs.quality.check_dataset`), refused rows go to the quarantine with
their reason, the rest are appended as part files named by their keys (no watermark: a unit fetched again replaces
its own files; ``ohlcv_minute``, whose origins have an order, skips rows whose key is stored at equal or higher
precedence: :mod:`ingestion.store.superseded`), and the counts go to the Prometheus metrics (with a quarantine-spike
alert) and the job's summary.
Recording coverage is the caller's business, and only after :func:`land` returned: then the rows are durable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ingestion.config import Settings
from ingestion.datasets import CREATED_TS
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.quality import QualityReport, check_dataset
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import Rejected
from ingestion.store.offline import OfflineWriter
from ingestion.store.quarantine import Quarantine
from ingestion.store.superseded import unstored

SPIKE_MIN_ROWS = 10
"""A batch is a quarantine spike when at least this many of its rows, and no fewer than it wrote, were refused."""


@dataclass
class Batch:
    """What a source fetched for one unit of work: rows per dataset name and the rows it refused on the way.

    ``source`` names vendor and endpoint for the rows the checks refuse; ``reports`` carries, per dataset, checks
    the source ran itself (duplicates dropped, minutes missing from the calendar); ``fallback_rows`` counts rows per
    dataset that came from a second vendor because the first was unavailable.
    """

    source: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    reports: dict[str, QualityReport] = field(default_factory=dict)
    fallback_rows: Counter[str] = field(default_factory=Counter)


@dataclass
class Landed:
    """What :func:`land` stored: the rows per dataset (as checked and stamped, those already stored at equal or
    higher precedence included: they are on record) and the counts (``written``: rows appended now)."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    written: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)


@dataclass
class Landing:
    """Where landed rows go: the Parquet offline store and the quarantine beside it."""

    offline: OfflineWriter
    quarantine: Quarantine

    @classmethod
    def for_writer(cls, offline: OfflineWriter) -> Landing:
        """The quarantine in the same data directory, written through the same writer."""
        return cls(offline, Quarantine(offline.root, writer=offline))


@dataclass
class Sinks(Landing):
    """A backfill's landing plus the record of the units it completed."""

    coverage: Coverage

    @classmethod
    def for_settings(cls, s: Settings) -> Sinks:
        offline = OfflineWriter(s.offline_root)
        return cls(offline, Quarantine(s.offline_root, writer=offline), Coverage(s.state_root))


def land(sinks: Landing, batch: Batch, summary: JobSummary, created: pd.Timestamp) -> Landed:
    """Check, quarantine, append and count ``batch``; its stored rows carry ``created`` (UTC) as write time."""
    landed = Landed()
    rejected = list(batch.rejected)
    report = QualityReport()
    duplicates: Counter[str] = Counter()
    for name, frame in batch.frames.items():
        good, refused, checked = check_dataset(name, frame, batch.source)
        rejected += refused
        checked.merge(batch.reports.get(name, QualityReport()))
        report.merge(checked)
        good = good.assign(**{CREATED_TS: created})
        fresh, superseded = unstored(sinks.offline.root, name, good)
        result = sinks.offline.append(name, fresh, use_watermark=False)
        landed.frames[name] = good
        landed.written[name] += result.written
        duplicates[name] += result.duplicates_in_batch + checked.duplicates + superseded
    # The good rows first: a crash in between leaves a rerun that quarantines the same rows (keyed, no duplicate).
    sinks.quarantine.write(rejected)
    landed.quarantined.update(r.dataset for r in rejected)
    record_rows(landed.written, landed.quarantined)
    summary.add_rows(
        written=landed.written,
        quarantined=landed.quarantined,
        duplicates=duplicates,
        fallback=batch.fallback_rows,
        failures=report.failures,
        missing_minutes=report.total_missing_minutes,
    )
    return landed


def record_rows(written: Counter[str], quarantined: Counter[str]) -> None:
    """Count a batch's rows into the pipeline metrics, and raise an alert when it is mostly quarantined.

    Rows are counted per dataset they were meant for (a vendor's raw dataset for rows a parser refused); the spike
    compares the whole batch, because a refused raw row would have fed a differently named dataset.
    """
    from ingestion.ops.alerts import QUARANTINE_SPIKE, raise_alert
    from ingestion.ops.metrics import pipeline_metrics

    metrics = pipeline_metrics()
    for name, n in written.items():
        metrics.rows_written.labels(name).inc(n)
    for name, n in quarantined.items():
        metrics.rows_quarantined.labels(name).inc(n)
    refused, stored = sum(quarantined.values()), sum(written.values())
    if refused and refused >= max(SPIKE_MIN_ROWS, stored):
        names = ", ".join(sorted(quarantined))
        raise_alert(QUARANTINE_SPIKE, f"{names}: {refused} rows quarantined against {stored} written",
                    dataset=names, quarantined=refused, written=stored)  # fmt: skip


__all__ = ["Batch", "Landed", "Landing", "Sinks", "land", "record_rows"]
