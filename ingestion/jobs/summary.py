"""What a job did, counted as it goes and printed as one table at the end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class JobSummary:
    """Counters of one job run. ``rows`` etc. are keyed by dataset name; ``errors`` by symbol or source.

    Workers of one job count from several threads: they count through the ``add_*`` methods, which hold the
    summary's own lock, and read the fields once the job is over.
    """

    job: str
    started: float = field(default_factory=time.monotonic)
    rows_written: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    duplicates_skipped: Counter[str] = field(default_factory=Counter)
    chunks_skipped: int = 0
    online_keys: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    cache_hits: int = 0
    missing_minutes: int = 0
    fallback_rows: Counter[str] = field(default_factory=Counter)
    quality_failures: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    datasets_touched: set[str] = field(default_factory=set)

    ended: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_rows(
        self,
        *,
        written: Mapping[str, int],
        quarantined: Mapping[str, int],
        duplicates: Mapping[str, int],
        fallback: Mapping[str, int],
        failures: Mapping[str, int],
        missing_minutes: int,
    ) -> None:
        """Count one landed batch: rows written, quarantined, skipped as duplicates and served by a fallback vendor
        per dataset, failed quality checks per rule, and minutes missing from the session calendar."""
        with self._lock:
            self.rows_written.update(written)
            self.quarantined.update(quarantined)
            self.duplicates_skipped.update(duplicates)
            self.fallback_rows.update(fallback)
            self.quality_failures.update(failures)
            self.missing_minutes += missing_minutes

    def add_calls(self, calls: int = 1) -> None:
        with self._lock:
            self.api_calls += calls

    def add_cache_hits(self, hits: int) -> None:
        with self._lock:
            self.cache_hits += hits

    def add_skipped(self, chunks: int) -> None:
        """Count units a run found already done (coverage) and did not fetch."""
        with self._lock:
            self.chunks_skipped += chunks

    def add_error(self, where: str, message: str) -> None:
        with self._lock:
            self.errors[where] = message

    def add_note(self, note: str) -> None:
        """Something the reader of the summary must know about how the run went (printed before the errors)."""
        with self._lock:
            self.notes.append(note)

    def add_online(self, dataset: str, keys: int) -> None:
        with self._lock:
            self.online_keys[dataset] += keys

    def touch(self, datasets: Iterable[str]) -> None:
        """Name datasets whose latest values the online write should load."""
        with self._lock:
            self.datasets_touched.update(datasets)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def finish(self) -> JobSummary:
        """Stop the job's clock (the table may be printed later)."""
        self.ended = time.monotonic()
        return self

    @property
    def ok(self) -> bool:
        return not self.errors

    def table(self) -> str:
        """A plain-text table: one row per dataset, then totals and errors."""
        datasets = sorted(
            set(self.rows_written) | set(self.quarantined) | set(self.duplicates_skipped) | set(self.online_keys)
        )
        header = f"{'dataset':<22}{'written':>10}{'quarantined':>13}{'duplicates':>12}{'online keys':>13}"
        lines = [f"== {self.job} summary", header, "-" * len(header)]
        for name in datasets:
            lines.append(
                f"{name:<22}{self.rows_written[name]:>10}{self.quarantined[name]:>13}"
                f"{self.duplicates_skipped[name]:>12}{self.online_keys[name]:>13}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"api calls {self.api_calls}, cache hits {self.cache_hits}, chunks already done {self.chunks_skipped}, "
            f"missing minutes {self.missing_minutes}, time {self.seconds:.1f} s"
        )
        if any(self.fallback_rows.values()):
            served = ", ".join(f"{k}={v}" for k, v in sorted(self.fallback_rows.items()) if v)
            lines.append(f"rows from the fallback source (Polygon unavailable): {served}")
        if any(self.quality_failures.values()):
            failed = sorted((k, v) for k, v in self.quality_failures.items() if v)
            lines.append("quality failures: " + ", ".join(f"{k}={v}" for k, v in failed))
        lines.extend(self.notes)
        for where, message in sorted(self.errors.items()):
            lines.append(f"error {where}: {message}")
        # Error text can echo what a vendor sent back (a key included): printed reports pass the redacting filter too.
        from ingestion.http.redaction import redact_text

        return redact_text("\n".join(lines), limit=None)
