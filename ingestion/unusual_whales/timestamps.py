"""Every timestamp and date form Unusual Whales sends, turned into UTC instants or New York trading dates.

Forms seen in the spec, its examples and real captures:

* ``"2023-12-12 16:35:52.168490+00:00"``: space-separated ISO with offset (older REST examples).
* ``"2025-10-22T20:27:01.354429Z"``: ISO with ``Z`` (live REST).
* ``"2023-09-08 09:30:00-04:00"`` / ``"2025-10-22T09:30:00-04:00"``: New York wall time with its offset (market tide).
* ``1761164032782`` or ``"1767799940925"``: epoch **milliseconds** (flow-alert ``start_time``/``end_time``, WebSocket
  ``executed_at``); the Kafka stream sends them as strings. Epoch seconds (the ``newer_than`` unit) are accepted too.
* ``"2024-01-22"``: a plain date, which UW always means as a New York trading day.

A timestamp string *without* an offset is refused: UW documents its times as UTC but its market-tide rows are New York
wall time, so guessing the zone of a naive value could shift it by four or five hours, which is a lookahead bug.
So is any instant or date outside 1970..2099 (:mod:`ingestion.time_bounds`): the row is quarantined with that reason
rather than overflowing a timestamp further on.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Final

import pandas as pd

from ingestion.calendar import NEW_YORK
from ingestion.time_bounds import RANGE_TEXT, check_date, check_instant

UTC_DTYPE: Final = "datetime64[us, UTC]"

_PLAIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS = re.compile(r"^-?\d+(\.\d+)?$")
# Offset or Z at the end: "+00:00", "-0400", "Z".
_HAS_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)

# Epoch magnitudes: seconds stay below 1e11 until the year 5138, milliseconds below 1e14, and so on, so the unit of any
# timestamp from 1973 on is unambiguous from its size alone.
_EPOCH_UNITS: Final = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


def epoch_to_utc(value: float) -> pd.Timestamp:
    """An epoch number in seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude) as UTC."""
    if not math.isfinite(value):
        raise ValueError(f"epoch value {value!r} is not finite")
    magnitude = abs(value)
    unit = next((u for limit, u in _EPOCH_UNITS if magnitude < limit), "ns")
    try:
        ts = pd.Timestamp(value, unit=unit, tz="UTC")
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise ValueError(f"epoch value {value!r} is outside {RANGE_TEXT}") from exc
    return check_instant(ts).as_unit("us")


def new_york_day_start(day: dt.date) -> pd.Timestamp:
    """Midnight at the start of a New York calendar day, as a UTC instant."""
    return pd.Timestamp(day).tz_localize(NEW_YORK).tz_convert("UTC").as_unit("us")


def to_utc(value: object) -> pd.Timestamp:
    """One UW timestamp in any of its forms, as a ``Timestamp`` in UTC with microsecond unit.

    A plain date becomes the start of that New York day (see :func:`new_york_day_start`). Raises ``ValueError`` with a
    readable reason for anything else, including booleans, empty strings, offset-less wall times and instants outside
    1970..2099.
    """
    return check_instant(_to_utc(value))


def _to_utc(value: object) -> pd.Timestamp:
    if isinstance(value, bool):
        raise ValueError(f"boolean {value!r} is not a timestamp")
    if isinstance(value, int | float):
        return epoch_to_utc(float(value))
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone")
        return ts.tz_convert("UTC").as_unit("us")
    if isinstance(value, dt.date):
        return new_york_day_start(value)
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} {value!r} is not a timestamp")
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if _DIGITS.match(text):
        return epoch_to_utc(float(text))
    if _PLAIN_DATE.match(text):
        return new_york_day_start(to_date(text))
    if not _HAS_ZONE.search(text):
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    try:
        return pd.Timestamp(text).tz_convert("UTC").as_unit("us")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"cannot parse timestamp {value!r}") from exc


def to_date(value: object) -> dt.date:
    """A UW calendar date (``YYYY-MM-DD``, a New York trading or filing day, 1970..2099). Raises ``ValueError``
    otherwise."""
    if isinstance(value, dt.datetime | pd.Timestamp):
        raise ValueError(f"{value!r} is an instant, not a date")
    if isinstance(value, dt.date):
        return check_date(value)
    if not isinstance(value, str) or not _PLAIN_DATE.match(value.strip()):
        raise ValueError(f"{value!r} is not a YYYY-MM-DD date")
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date") from exc
    return check_date(day)


def new_york_date(ts: pd.Timestamp) -> dt.date:
    """The New York calendar date of a UTC instant."""
    return ts.tz_convert(NEW_YORK).date()  # type: ignore[no-any-return]


def utc_series(values: list[pd.Timestamp | None], name: str | None = None) -> pd.Series:
    """A ``datetime64[us, UTC]`` column from parsed instants (``None`` becomes ``NaT``)."""
    return pd.Series(values, dtype=UTC_DTYPE, name=name)
