"""When a Polygon bar is published: after its window is over and final, in UTC microseconds.

Polygon stamps an aggregate with ``t`` = epoch **milliseconds** UTC at the **start** of its window, and stamps daily
and longer bars at New York midnight. A bar is published when its window is final, by the rules of
:data:`~ingestion.datasets.OHLCV_MINUTE` and :data:`~ingestion.datasets.OHLCV_DAILY` (:mod:`ingestion.publication`):

* second / minute / hour bars: ``start + multiplier x span`` plus the minute bars' publication delay (late trades
  still change a bar for a few seconds after its window);
* day / week / month / quarter / year bars: the end of Polygon's day of the **last NYSE session** in the window
  (20:00 New York: the daily volume counts extended hours) plus the daily bars' delay. Stamping a daily bar at its
  midnight start would hand a whole session of future prices to every training row; at the 16:00 close, four hours
  of volume.

A calendar window with no session in it (a weekend-only window, a date before the calendar starts) has no close; the
caller quarantines such rows rather than inventing a time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE

FIXED_SPANS_US: dict[str, int] = {"second": 1_000_000, "minute": 60_000_000, "hour": 3_600_000_000}
CALENDAR_SPANS = frozenset({"day", "week", "month", "quarter", "year"})
TIMESPANS = frozenset(FIXED_SPANS_US) | CALENDAR_SPANS

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def check_span(timespan: str, multiplier: int) -> None:
    """Refuse a timespan/multiplier pair Polygon does not serve (a programming error, so ValueError)."""
    if timespan not in TIMESPANS:
        raise ValueError(f"unknown timespan {timespan!r}; expected one of {', '.join(sorted(TIMESPANS))}")
    if multiplier < 1:
        raise ValueError(f"multiplier must be >= 1, got {multiplier}")


def new_york_days(t_ms: Int64Array) -> pd.DatetimeIndex:
    """The New York calendar date (naive midnight) of each epoch-ms UTC instant."""
    utc = pd.DatetimeIndex(pd.to_datetime(t_ms, unit="ms", utc=True))
    return utc.tz_convert(calendar.NEW_YORK).tz_localize(None).normalize()


def new_york_midnight_us(days: pd.DatetimeIndex) -> Int64Array:
    """Epoch microseconds UTC of New York midnight of each naive date (how Polygon stamps a daily bar's start)."""
    local = days.tz_localize(calendar.NEW_YORK).tz_convert("UTC").tz_localize(None)
    return np.asarray(local.to_numpy().astype("datetime64[us]").astype(np.int64))


def window_ends_us(start_ms: Int64Array, timespan: str, multiplier: int) -> tuple[Int64Array, BoolArray]:
    """Publication time of each bar (epoch us UTC) and a mask of rows that have one (see the module docstring)."""
    check_span(timespan, multiplier)
    start_us = start_ms * 1000
    fixed = FIXED_SPANS_US.get(timespan)
    if fixed is not None:
        ends = publication.published_at(OHLCV_MINUTE, start_us + multiplier * fixed)
        return ends, np.ones(len(start_ms), dtype=np.bool_)
    if len(start_ms) == 0:
        return np.empty(0, dtype=np.int64), np.ones(0, dtype=np.bool_)
    days = new_york_days(start_ms)
    window_stop = days + _offset(timespan, multiplier)  # first New York date after the window
    sessions = calendar.sessions(days.min().date(), (window_stop.max() - pd.Timedelta(days=1)).date())
    ends = np.zeros(len(start_ms), dtype=np.int64)
    if len(sessions) == 0:
        return ends, np.zeros(len(start_ms), dtype=np.bool_)
    closes = publication.day_final(OHLCV_DAILY, sessions)
    last = sessions.searchsorted(window_stop, side="left") - 1
    has = last >= 0
    safe = np.where(has, last, 0)
    ok = has & (np.asarray(sessions[safe]) >= np.asarray(days))
    ends[ok] = closes[safe[ok]]
    return ends, ok


def _offset(timespan: str, multiplier: int) -> pd.DateOffset:
    if timespan == "day":
        return pd.DateOffset(days=multiplier)
    if timespan == "week":
        return pd.DateOffset(weeks=multiplier)
    if timespan == "month":
        return pd.DateOffset(months=multiplier)
    if timespan == "quarter":
        return pd.DateOffset(months=3 * multiplier)
    return pd.DateOffset(years=multiplier)
