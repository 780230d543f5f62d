"""The New York Stock Exchange session calendar (holidays, half days), from ``exchange_calendars``.

A maintained calendar beats a hand-written one: half days and one-off closures (national days of mourning) are
exactly what a home-made list gets wrong, and a wrong close time is a lookahead bug. Dates are New York trading
days; every returned instant is UTC.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

NEW_YORK = "America/New_York"
_FIRST = "2000-01-03"


@lru_cache(maxsize=1)
def _calendar() -> Any:
    import exchange_calendars as xc

    # The default window starts 20 years back; history from 2000 covers any backfill a user will ask for.
    return xc.get_calendar("XNYS", start=_FIRST)


def as_date(value: str | dt.date | dt.datetime | int) -> dt.date:
    """A calendar date from ``YYYY-MM-DD``, a ``date``, a ``datetime`` (its own date) or epoch milliseconds (the New
    York date of that instant, as Polygon's ``from``/``to`` accept)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int):
        return new_york_date(pd.Timestamp(value, unit="ms", tz="UTC"))
    return dt.date.fromisoformat(value)


def _day(value: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(value).normalize().tz_localize(None)


def sessions(start: str | dt.date, end: str | dt.date) -> pd.DatetimeIndex:
    """Trading days from ``start`` to ``end`` inclusive (naive dates)."""
    first, last = _day(start), _day(end)
    if last < first:
        return pd.DatetimeIndex([])
    cal = _calendar()
    last = min(last, cal.last_session)
    first = max(first, cal.first_session)
    if last < first:
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(cal.sessions_in_range(first, last))


def is_session(day: str | dt.date) -> bool:
    return bool(_calendar().is_session(_day(day)))


def session_open(day: str | dt.date) -> pd.Timestamp:
    """Regular-hours open of a trading day, UTC."""
    return pd.Timestamp(_calendar().session_open(_day(day)))


def session_close(day: str | dt.date) -> pd.Timestamp:
    """Regular-hours close of a trading day (16:00 New York, or the early close), UTC."""
    return pd.Timestamp(_calendar().session_close(_day(day)))


def session_closes(days: Any) -> np.ndarray:
    """Vectorised :func:`session_close` for an array of dates: returns ``datetime64[us]`` UTC values.

    Raises ``ValueError`` naming the first date that is not a trading day: a daily row on a non-session day has no
    close to be stamped with, and guessing one would be inventing data.
    """
    return _at_sessions(days, _calendar().closes)


def _at_sessions(days: Any, times: pd.Series) -> np.ndarray:
    idx = pd.DatetimeIndex(pd.to_datetime(days)).tz_localize(None).normalize()
    found = times.reindex(idx)
    missing = found.isna()
    if missing.any():
        raise ValueError(f"{idx[missing][0].date()} is not an NYSE trading day")
    values: np.ndarray = found.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return values


def session_opens(days: Any) -> np.ndarray:
    """Vectorised :func:`session_open` (``datetime64[us]`` UTC values); refuses a non-session like
    :func:`session_closes`."""
    return _at_sessions(days, _calendar().opens)


def next_sessions(days: Any) -> pd.DatetimeIndex:
    """The trading day after each date (naive dates; the date itself need not be a trading day)."""
    idx = pd.DatetimeIndex(pd.to_datetime(days)).tz_localize(None).normalize()
    if len(idx) == 0:
        return pd.DatetimeIndex([])
    # Ten days past the last date always hold a session (the longest closure since 1900 was four sessions).
    later = sessions(idx.min().date(), (idx.max() + pd.Timedelta(days=10)).date())
    return pd.DatetimeIndex(later[later.searchsorted(idx, side="right")])


def previous_session(day: str | dt.date) -> pd.Timestamp:
    """The trading day before ``day`` (``day`` itself need not be a trading day)."""
    cal = _calendar()
    if is_session(day):
        return pd.Timestamp(cal.previous_session(_day(day)))
    return pd.Timestamp(cal.date_to_session(_day(day), direction="previous"))


def session_minute_starts_ms(days: list[dt.date]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised regular-session minutes of many trading days: (minute starts in epoch ms UTC, index of the day).

    The simulators build years of minute bars at once; a per-day date_range would dominate their start-up time.
    """
    cal = _calendar()
    idx = pd.DatetimeIndex([_day(d) for d in days])
    opens = cal.opens.reindex(idx).dt.tz_convert("UTC").astype("int64").to_numpy() // 1_000_000
    closes = cal.closes.reindex(idx).dt.tz_convert("UTC").astype("int64").to_numpy() // 1_000_000
    counts = (closes - opens) // 60_000
    day_idx = np.repeat(np.arange(len(days)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.repeat(opens, counts) + (np.arange(int(counts.sum())) - first) * 60_000
    return starts.astype(np.int64), day_idx.astype(np.int64)


def session_minutes(day: str | dt.date) -> pd.DatetimeIndex:
    """Start of every regular-hours minute of a trading day, UTC."""
    return pd.date_range(session_open(day), session_close(day), freq="1min", inclusive="left")


def new_york_date(ts: pd.Timestamp) -> dt.date:
    """The New York calendar date of an instant."""
    return pd.Timestamp(ts).tz_convert(NEW_YORK).date()  # type: ignore[no-any-return]
