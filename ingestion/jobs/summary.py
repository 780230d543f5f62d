"""What a job did, counted as it goes and printed as one table at the end."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class JobSummary:
    """Counters of one job run. ``rows`` etc. are keyed by dataset name; ``errors`` by symbol or source."""

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
    datasets_touched: set[str] = field(default_factory=set)

    ended: float | None = None

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
        for where, message in sorted(self.errors.items()):
            lines.append(f"error {where}: {message}")
        return "\n".join(lines)
