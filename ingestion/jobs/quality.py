"""Data-quality checks on bars before they are stored: invariants, time order, and session-calendar gaps.

A bar that breaks an invariant is rejected with its reason (it goes to quarantine), never repaired. A missing
minute is *reported* and never filled: a minute with no trade has no bar at the vendor either, and an invented bar
would be a fabricated price.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ingestion import calendar
from ingestion.datasets import ENTITY_KEY, OHLCV_DAILY, OHLCV_MINUTE
from ingestion.rejects import Rejected


@dataclass
class QualityReport:
    """Counts of failed checks, and minutes missing per (symbol, session day)."""

    failures: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    missing_minutes: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total_missing_minutes(self) -> int:
        return sum(self.missing_minutes.values())

    def merge(self, other: QualityReport) -> None:
        self.failures.update(other.failures)
        self.duplicates += other.duplicates
        for k, v in other.missing_minutes.items():
            self.missing_minutes[k] = self.missing_minutes.get(k, 0) + v


_RULES: tuple[tuple[str, str], ...] = (
    ("price_not_positive", "open, high, low and close must be > 0"),
    ("high_below_open_or_close", "high must be >= open and close"),
    ("low_above_open_or_close", "low must be <= open and close"),
    ("negative_volume", "volume must be >= 0"),
    ("vwap_outside_range", "vwap must lie within [low, high]"),
)


def check_bars(bars: pd.DataFrame, *, dataset: str, source: str) -> tuple[pd.DataFrame, list[Rejected], QualityReport]:
    """Split ``bars`` into rows that pass every invariant and rejected rows; de-duplicate by (symbol, window_start).

    Returns the good rows sorted by symbol and window start (so time is monotonic per symbol), the rejects with the
    first rule each broke, and a report.
    """
    report = QualityReport()
    o, h, lo, c = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    v = bars["volume"].to_numpy(dtype=float)
    vw = bars["vwap"].to_numpy(dtype=float) if "vwap" in bars else np.full(len(bars), np.nan)
    # A small tolerance: vendors round vwap and prices independently.
    eps = 1e-6 * np.maximum(np.abs(h), 1.0)
    broken = {
        "price_not_positive": ~((o > 0) & (h > 0) & (lo > 0) & (c > 0)),
        "high_below_open_or_close": h + eps < np.maximum(o, c),
        "low_above_open_or_close": lo - eps > np.minimum(o, c),
        "negative_volume": ~(v >= 0),
        "vwap_outside_range": ~np.isnan(vw) & ((vw < lo - eps) | (vw > h + eps)),
    }
    reasons = dict(_RULES)
    first_rule = np.full(len(bars), "", dtype=object)
    for name, mask in broken.items():
        mask = np.asarray(mask) & (first_rule == "")
        first_rule[mask] = name
        report.failures[name] += int(mask.sum())
    bad = first_rule != ""
    rejected = [
        Rejected(dataset, source, f"{rule}: {reasons[rule]}", row)
        for rule, row in zip(first_rule[bad], bars[bad].to_dict("records"), strict=True)
    ]
    good = bars[~bad].sort_values([ENTITY_KEY, "window_start"], kind="stable")
    deduped = good.drop_duplicates([ENTITY_KEY, "window_start"], keep="last")
    report.duplicates = len(good) - len(deduped)
    return deduped.reset_index(drop=True), rejected, report


def minute_gaps(bars: pd.DataFrame, start: str, end: str) -> dict[tuple[str, str], int]:
    """Regular-session minutes with no bar, per (symbol, session day) between ``start`` and ``end`` (dates).

    Only symbols present in ``bars`` are checked; a symbol with no bar at all on a session day counts every minute.
    """
    missing: dict[tuple[str, str], int] = {}
    days = calendar.sessions(start, end)
    if bars.empty or len(days) == 0:
        return missing
    expected = pd.DatetimeIndex(np.concatenate([calendar.session_minutes(d).asi8 for d in days])).tz_localize("UTC")
    starts = pd.to_datetime(bars["window_start"], utc=True)
    symbols = bars[ENTITY_KEY].to_numpy()
    for symbol in pd.unique(symbols):
        absent = expected.difference(pd.DatetimeIndex(starts[symbols == symbol]))
        if len(absent):
            per_day = pd.Series(1, index=absent.tz_convert(calendar.NEW_YORK).date).groupby(level=0).sum()
            for day, count in per_day.items():
                missing[(str(symbol), str(day))] = int(count)
    return missing


Check = Callable[..., tuple[pd.DataFrame, list[Rejected], QualityReport]]
"""``check(frame, *, dataset, source)``: the rows that pass, the rows refused with their reason, and a report."""

CHECKS: dict[str, Check] = {OHLCV_DAILY.name: check_bars, OHLCV_MINUTE.name: check_bars}
"""The checks every row of a dataset passes before it is stored, whichever source fetched it."""


def check_dataset(dataset: str, frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[Rejected], QualityReport]:
    """Run ``dataset``'s checks on ``frame`` (rows of datasets without checks pass as they are).

    Checks are idempotent: rows that passed once pass again unchanged, so a source that had to check early (daily
    bars are checked before their derived features are computed) loses nothing to the second pass.
    """
    check = CHECKS.get(dataset)
    if check is None or frame.empty:
        return frame, [], QualityReport()
    return check(frame, dataset=dataset, source=source)
