"""Validation of command-line input: each mistake gets a one-line error that says how to fix it."""

from __future__ import annotations

import datetime as dt
import re

from ingestion.errors import ConfigError

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")


def parse_symbols(text: str, allow_all: bool = False) -> list[str]:
    """``"aapl, MSFT"`` -> ``["AAPL", "MSFT"]``; duplicates removed, order kept.

    With ``allow_all`` (the stream), ``"*"`` alone means every symbol and comes back as ``["*"]``.
    """
    symbols: list[str] = []
    for raw in text.split(","):
        symbol = raw.strip().upper()
        if not symbol:
            continue
        if symbol == "*" and allow_all:
            symbols.append(symbol)
            continue
        if not _SYMBOL.match(symbol):
            raise ConfigError(
                f"'{raw.strip()}' is not a ticker symbol: use tickers like AAPL or BRK.B, comma-separated"
            )
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise ConfigError("no symbols given: pass --symbols AAPL,MSFT" + (" or --symbols '*'" if allow_all else ""))
    if "*" in symbols and len(symbols) > 1:
        raise ConfigError("--symbols '*' already means every symbol; do not combine it with others")
    return symbols


def parse_date(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} '{text}' is not a date: use YYYY-MM-DD, e.g. {flag} 2024-01-31") from None


def parse_range(start: str, end: str, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """Validate ``--from``/``--to``: real dates, in order, not in the future."""
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    if last < first:
        raise ConfigError(f"--from {first} is after --to {last}: swap them")
    today = today or dt.date.today()
    if first > today:
        raise ConfigError(f"--from {first} is in the future: the latest day with data is {today}")
    return first, min(last, today)
