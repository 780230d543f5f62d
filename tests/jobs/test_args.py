import datetime as dt

import pytest

from ingestion.errors import ConfigError
from ingestion.jobs.args import parse_range, parse_symbols


def test_symbols_normalised() -> None:
    assert parse_symbols(" aapl,MSFT,,aapl , brk.b") == ["AAPL", "MSFT", "BRK.B"]


@pytest.mark.parametrize(("text", "hint"), [("", "--symbols"), ("AAPL,12X", "ticker symbol"), ("$$$", "tickers like")])
def test_bad_symbols_say_how_to_fix(text: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint) as info:
        parse_symbols(text)
    assert "\n" not in str(info.value)


def test_ranges() -> None:
    today = dt.date(2024, 6, 30)
    assert parse_range("2024-01-01", "2024-12-31", today) == (dt.date(2024, 1, 1), today)
    with pytest.raises(ConfigError, match="swap them"):
        parse_range("2024-02-01", "2024-01-01", today)
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_range("01/02/2024", "2024-01-01", today)
    with pytest.raises(ConfigError, match="future"):
        parse_range("2025-01-01", "2025-02-01", today)
