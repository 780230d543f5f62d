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


def test_cli_errors_are_one_line_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    from ingestion.cli import main

    assert main(["backfill", "ohlcv", "--symbols", "AAPL", "--from", "2024-03-01", "--to", "2024-01-01"]) == 2
    assert main(["compact", "--datasets", "nope"]) == 2
    assert main(["materialize", "--views", "quarantine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --from 2024-03-01 is after --to 2024-01-01: swap them",
        err[1],
        err[2],
    ]
    assert err[1].startswith("error: --datasets 'nope' is unknown: choose from")
    assert err[2].startswith("error: --views 'quarantine' is not a feature view")
