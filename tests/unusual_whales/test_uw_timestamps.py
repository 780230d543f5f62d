"""Every timestamp and date form Unusual Whales sends becomes UTC (or a New York date); anything else is refused."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ingestion.unusual_whales.timestamps import (
    UTC_DTYPE,
    epoch_to_utc,
    new_york_date,
    new_york_day_start,
    to_date,
    to_utc,
    utc_series,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Older REST examples: space separator, microseconds, +00:00.
        ("2023-12-12 16:35:52.168490+00:00", "2023-12-12T16:35:52.168490Z"),
        # Live REST: ISO with Z.
        ("2025-10-22T20:27:01.354429Z", "2025-10-22T20:27:01.354429Z"),
        ("2025-10-22T21:24:30Z", "2025-10-22T21:24:30Z"),
        # Market tide: New York wall time with its offset (EDT, then EST).
        ("2023-09-08 09:30:00-04:00", "2023-09-08T13:30:00Z"),
        ("2025-10-22T09:30:00-04:00", "2025-10-22T13:30:00Z"),
        ("2024-01-08 09:30:00-05:00", "2024-01-08T14:30:00Z"),
        # Epoch milliseconds: int on REST and WebSocket, string on the Kafka stream.
        (1761164032782, "2025-10-22T20:13:52.782Z"),
        ("1767799940925", "2026-01-07T15:32:20.925Z"),
        # Epoch seconds (the unit of newer_than/older_than), micro- and nanoseconds.
        (1761164032, "2025-10-22T20:13:52Z"),
        (1761164032782000, "2025-10-22T20:13:52.782Z"),
        (1761164032782000000, "2025-10-22T20:13:52.782Z"),
        (1761164032.5, "2025-10-22T20:13:52.500Z"),
        # A plain date is the start of that New York day: 05:00Z in winter, 04:00Z in summer.
        ("2024-01-22", "2024-01-22T05:00:00Z"),
        ("2024-07-01", "2024-07-01T04:00:00Z"),
        (dt.date(2024, 7, 1), "2024-07-01T04:00:00Z"),
        (dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-07-01T10:00:00Z"),
    ],
)
def test_every_form_becomes_utc_microseconds(raw: object, expected: str) -> None:
    ts = to_utc(raw)
    assert ts == pd.Timestamp(expected)
    assert str(ts.tz) == "UTC"
    assert ts.unit == "us"


@pytest.mark.parametrize(
    "raw",
    [
        "2024-01-22 10:00:00",  # no offset: UTC or New York? refusing beats guessing four hours wrong
        "2024-01-22T10:00:00",
        "",
        "   ",
        "yesterday",
        "2024-13-45T00:00:00Z",
        True,
        None,
        [1761164032782],
        float("nan"),
        dt.datetime(2024, 1, 22, 10),  # naive datetime
    ],
)
def test_unparseable_or_zone_less_timestamps_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        to_utc(raw)


def test_to_date_accepts_only_calendar_dates() -> None:
    assert to_date("2024-12-12") == dt.date(2024, 12, 12)
    assert to_date(" 2024-12-12 ") == dt.date(2024, 12, 12)
    assert to_date(dt.date(2024, 12, 12)) == dt.date(2024, 12, 12)
    for bad in ("2024-12-12T21:05:00Z", "2024-02-30", "12/12/2024", 20241212, dt.datetime(2024, 12, 12)):
        with pytest.raises(ValueError):
            to_date(bad)


def test_new_york_day_helpers_round_trip() -> None:
    start = new_york_day_start(dt.date(2024, 3, 10))  # the DST change day starts in EST
    assert start == pd.Timestamp("2024-03-10T05:00:00Z")
    assert new_york_date(start) == dt.date(2024, 3, 10)
    # 03:59Z on 2024-07-02 is still the evening of July 1st in New York.
    assert new_york_date(pd.Timestamp("2024-07-02T03:59:00Z")) == dt.date(2024, 7, 1)


def test_epoch_unit_is_told_apart_by_magnitude() -> None:
    assert epoch_to_utc(0) == pd.Timestamp("1970-01-01T00:00:00Z")
    assert epoch_to_utc(4e9) == pd.Timestamp("2096-10-02T07:06:40Z")  # still seconds
    assert epoch_to_utc(1e11) == pd.Timestamp("1973-03-03T09:46:40Z")  # from here on milliseconds
    with pytest.raises(ValueError):
        epoch_to_utc(float("inf"))


def test_utc_series_dtype_and_missing_values() -> None:
    s = utc_series([to_utc("2025-10-22T21:24:30Z"), None])
    assert str(s.dtype) == UTC_DTYPE
    assert s.isna().tolist() == [False, True]
