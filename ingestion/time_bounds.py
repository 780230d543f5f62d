"""The instants and dates a vendor row may carry: from 1970-01-01 up to, not including, 2100-01-01 (UTC).

No market datum of this project lies outside that range, and values far outside it do harm before any check runs:
pandas holds instants as int64 nanoseconds, so a bar stamped in the year 9999 raises ``OutOfBoundsDatetime``
deep inside a parser and ends a whole backfill. The parsers test every instant against these bounds first and
quarantine the row that fails, with its reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

EARLIEST: Final = pd.Timestamp("1970-01-01", tz="UTC")
LATEST: Final = pd.Timestamp("2100-01-01", tz="UTC")
"""Exclusive upper bound."""
EARLIEST_MS: Final = 0
LATEST_MS: Final = int(LATEST.value // 1_000_000)
RANGE_TEXT: Final = "1970-01-01..2099-12-31"


def ms_in_range(t_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mask of epoch-millisecond instants inside the bounds."""
    return np.asarray((t_ms >= EARLIEST_MS) & (t_ms < LATEST_MS), dtype=np.bool_)


def check_instant(ts: pd.Timestamp) -> pd.Timestamp:
    """``ts`` (tz-aware) when inside the bounds; ValueError naming the bounds otherwise."""
    if not EARLIEST <= ts < LATEST:
        raise ValueError(f"{ts.isoformat()} is outside {RANGE_TEXT}")
    return ts


def check_date(day: dt.date) -> dt.date:
    """``day`` when inside the bounds; ValueError naming the bounds otherwise."""
    if not EARLIEST.date() <= day < LATEST.date():
        raise ValueError(f"{day.isoformat()} is outside {RANGE_TEXT}")
    return day
