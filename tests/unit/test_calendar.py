import pandas as pd
import pytest

from ingestion import calendar


def test_regular_and_half_day_closes_in_utc() -> None:
    assert calendar.session_close("2024-11-27") == pd.Timestamp("2024-11-27 21:00", tz="UTC")  # EST
    assert calendar.session_close("2024-11-29") == pd.Timestamp("2024-11-29 18:00", tz="UTC")  # half day
    assert calendar.session_close("2024-07-01") == pd.Timestamp("2024-07-01 20:00", tz="UTC")  # EDT


def test_holidays_are_not_sessions() -> None:
    assert not calendar.is_session("2024-11-28")  # Thanksgiving
    days = calendar.sessions("2024-11-25", "2024-12-02")
    assert [d.day for d in days] == [25, 26, 27, 29, 2]
    assert calendar.previous_session("2024-12-02") == pd.Timestamp("2024-11-29")
    assert calendar.previous_session("2024-11-28") == pd.Timestamp("2024-11-27")


def test_session_closes_vectorised_refuses_non_sessions() -> None:
    closes = calendar.session_closes(["2024-11-29", "2024-12-02"])
    assert str(closes.dtype) == "datetime64[us]"
    with pytest.raises(ValueError, match="2024-11-28"):
        calendar.session_closes(["2024-11-28"])


def test_session_minutes_cover_the_regular_session() -> None:
    minutes = calendar.session_minutes("2024-11-29")
    assert len(minutes) == 210
    assert minutes[0] == pd.Timestamp("2024-11-29 14:30", tz="UTC")
