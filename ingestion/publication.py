"""When a dataset's values are published: one rule per dataset, and the only code that turns it into times.

A dataset's :class:`PublicationRule` (set once in :mod:`ingestion.datasets`) says where the vendor's day ends and
what the event time of a row is; a publication delay (the dataset's ``publication_delay``, overridable with
``FEAST_PUBLICATION_DELAYS``, see :func:`ingestion.config.publication_delays`) is added on top for the vendor's own
processing and late reports. Every event timestamp a parser or aggregate stamps comes from here:

* :func:`published_days` stamps a daily row (a day's bar, flow, prints or ETF flow) at the end of its vendor day plus
  the delay;
* :func:`published_at` stamps a row that carries its own instant (a bar's window end, a filing, a tick) with that
  instant plus the delay;
* :func:`day_of` assigns a record with an instant (a flow alert, a dark-pool print) to the trading day whose vendor
  day it falls in: the first day whose end is at or after it. A record after the end rolls forward, never back;
* :func:`last_final_day` is the last New York date whose rows are all published at an instant: coverage never
  records a day before it is final, so a bar fetched minutes after the close is fetched again.

Anchors, and why (facts in ``docs/point-in-time.md`` and the vendor README):

* ``NEW_YORK_TIME`` (daily bars and dark-pool prints at 20:00): Polygon's daily volume counts extended-hours trades
  until 20:00 New York, and FINRA's trade reporting facilities, where off-exchange prints are reported, close then;
  a print reported late is still in the day's row, which is published after the last report can land.
* ``SESSION_CLOSE`` plus an offset (options flow, close + 15 min): ETF options trade until 16:15 (13:15 on a half
  day), so the day's options volume is not final at the equity close.
* ``NEXT_OPEN`` (ETF flows): creations and redemptions of day D are published by the issuers overnight; the next
  session's open is the first instant the day's figure is sure to be out.
* ``WINDOW_END`` (minute bars, day end 20:00, the end of the last extended-hours minute) and ``RECORD_TIME``
  (insider filings, ticks; the day ends at New York midnight): the row's own instant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion import calendar

if TYPE_CHECKING:
    from ingestion.datasets import Dataset

Int64Array = npt.NDArray[np.int64]
_US = np.timedelta64(1, "us")
# Sessions searched past a date for the day that holds a record: the longest NYSE closure since 1900 lasted four
# sessions (September 2001), so ten calendar days always hold the next one.
_LOOKAHEAD_DAYS = 10


class Anchor(Enum):
    """Where a vendor's day ends (and, for instant rows, what the row's own time is)."""

    WINDOW_END = "end of the bar's window"
    SESSION_CLOSE = "session close"
    NEW_YORK_TIME = "New York wall time of the trading day"
    NEXT_OPEN = "open of the next session"
    RECORD_TIME = "the record's own time"


@dataclass(frozen=True)
class PublicationRule:
    """Where a dataset's vendor day ends. ``offset`` shifts a session-close anchor; ``wall_time`` is the New York
    time of a ``NEW_YORK_TIME`` anchor, and the day end of a ``WINDOW_END`` dataset (its last window's end).
    ``RECORD_TIME`` days end at New York midnight."""

    anchor: Anchor
    offset: timedelta = timedelta(0)
    wall_time: dt.time | None = None

    def describe(self) -> str:
        if self.anchor is Anchor.SESSION_CLOSE:
            minutes = int(self.offset.total_seconds() // 60)
            return f"session close + {minutes} min" if minutes else "session close"
        if self.anchor is Anchor.NEW_YORK_TIME and self.wall_time is not None:
            return f"{self.wall_time:%H:%M} New York of the trading day"
        return str(self.anchor.value)

    def day_ends_us(self, days: Any) -> Int64Array:
        """End of the vendor day of each New York date (epoch microseconds UTC). Every anchor but ``WINDOW_END`` and
        ``RECORD_TIME`` needs sessions (``ValueError`` names the first date that is not one)."""
        idx = _naive_days(days)
        if len(idx) == 0:
            return np.empty(0, dtype=np.int64)
        if self.anchor is Anchor.SESSION_CLOSE:
            return _epoch_us(calendar.session_closes(idx)) + _micros(self.offset)
        if self.anchor in (Anchor.NEXT_OPEN, Anchor.NEW_YORK_TIME):
            calendar.session_closes(idx)  # a daily row dated on no session has no day to be published with: refuse
        if self.anchor is Anchor.NEXT_OPEN:
            return _epoch_us(calendar.session_opens(calendar.next_sessions(idx)))
        if self.wall_time is not None:
            return _new_york_us(idx + pd.Timedelta(hours=self.wall_time.hour, minutes=self.wall_time.minute))
        return _new_york_us(idx + pd.Timedelta(days=1))


DEFAULT_RULE = PublicationRule(Anchor.RECORD_TIME)
"""The rule of a dataset that names none (raw vendor records, reference data): each row at its own time, and a day
final once it is over."""


def rule_of(dataset: Dataset) -> PublicationRule:
    return dataset.publication or DEFAULT_RULE


def delay(dataset: Dataset) -> timedelta:
    """The dataset's publication delay: ``FEAST_PUBLICATION_DELAYS`` if it names the dataset, else its default."""
    from ingestion.config import publication_delays

    return publication_delays().get(dataset.name, dataset.publication_delay)


def describe(dataset: Dataset) -> str:
    """The rule and its delay in a few words, e.g. ``20:00 New York of the trading day, delay 15 min``."""
    return f"{rule_of(dataset).describe()}, delay {_human(delay(dataset))}"


def day_ends(dataset: Dataset, days: Any) -> Int64Array:
    """End of each date's vendor day (epoch us UTC): records up to it belong to the day."""
    return rule_of(dataset).day_ends_us(days)


def published_days(dataset: Dataset, days: Any) -> pd.Series:
    """Event time (``datetime64[us, UTC]``) of a daily row of each date: its vendor day's end plus the delay."""
    values = day_ends(dataset, days) + _micros(delay(dataset))
    index = days.index if isinstance(days, pd.Series) else None
    return pd.Series(values.astype("datetime64[us]"), index=index).dt.tz_localize("UTC")


def published_at(dataset: Dataset, instants_us: Int64Array) -> Int64Array:
    """Event time (epoch us UTC) of rows that carry their own instant: the instant plus the delay."""
    return np.asarray(instants_us, dtype=np.int64) + _micros(delay(dataset))


def day_of(dataset: Dataset, instants: pd.Series) -> list[dt.date]:
    """For each UTC instant, the trading day whose vendor day holds it: the first session whose day end is at or
    after it. Raises ``ValueError`` on a missing instant (a record with no time has no day)."""
    values = pd.Series(instants).astype("datetime64[us, UTC]")
    if values.isna().any():
        raise ValueError("cannot assign a trading day to a missing timestamp")
    if values.empty:
        return []
    first = calendar.new_york_date(values.min()) - dt.timedelta(days=1)
    last = calendar.new_york_date(values.max()) + dt.timedelta(days=_LOOKAHEAD_DAYS)
    days = calendar.sessions(first, last)
    ends = day_ends(dataset, days)
    at = values.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
    idx = np.searchsorted(ends, at, side="left")
    if (idx >= len(days)).any():
        raise ValueError(f"no NYSE session known after {values.max()}")
    return [d.date() for d in days[idx]]


def day_final(dataset: Dataset, days: Any) -> Int64Array:
    """The instant (epoch us UTC) by which every row dated each session is published."""
    return day_ends(dataset, days) + _micros(delay(dataset))


def last_final_day(dataset: Dataset, now: pd.Timestamp) -> dt.date:
    """The latest New York date ``D`` such that every row of every date up to ``D`` is published at ``now``.

    A session is final at its vendor day's end plus the delay; a day without a session has no rows, and is final
    once it is over and the sessions before it are. So before Friday's daily bars are final on Friday evening, the
    last final day is Thursday; on Saturday it is Friday (not Sunday: Sunday is not over).
    """
    today = calendar.new_york_date(now)
    window = calendar.sessions(today - dt.timedelta(days=2 * _LOOKAHEAD_DAYS), today + dt.timedelta(days=1))
    finals = day_final(dataset, window)
    pending = np.flatnonzero(finals > now.value // 1000)
    first_pending = window[pending[0]].date() if len(pending) else today + dt.timedelta(days=2)
    # A day not over yet may still gain rows unless it is a session already final.
    last_over = today if calendar.is_session(today) and first_pending > today else today - dt.timedelta(days=1)
    return min(first_pending - dt.timedelta(days=1), last_over)


def _naive_days(days: Any) -> pd.DatetimeIndex:
    idx = days if isinstance(days, pd.DatetimeIndex) else pd.DatetimeIndex(pd.to_datetime(list(days)))
    return idx.tz_localize(None).normalize() if idx.tz is not None else idx.normalize()


def _epoch_us(values: np.ndarray) -> Int64Array:
    return np.asarray(values.astype("datetime64[us]").astype(np.int64))


def _new_york_us(local: pd.DatetimeIndex) -> Int64Array:
    utc = local.tz_localize(calendar.NEW_YORK).tz_convert("UTC").tz_localize(None)
    return _epoch_us(utc.to_numpy())


def _micros(delta: timedelta) -> int:
    return int(np.timedelta64(delta) // _US)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60} min"
    return f"{seconds} s"


__all__ = [
    "DEFAULT_RULE",
    "Anchor",
    "PublicationRule",
    "day_ends",
    "day_final",
    "day_of",
    "delay",
    "describe",
    "last_final_day",
    "published_at",
    "published_days",
    "rule_of",
]
