"""Validation of command-line input: each mistake gets a one-line error that says how to fix it.

Numbers and ports are checked by argparse ``type=`` functions (:func:`whole_number`, :func:`port`), so a bad one is
a usage error (exit 2) before the command starts anything; symbols and dates by the ``parse_*`` functions, which
raise :class:`~ingestion.errors.ConfigError`. :func:`listening` turns a port that cannot be bound (in use, or
privileged) into a ConfigError as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import socket
from collections.abc import Callable
from typing import TypeVar

from ingestion.errors import ConfigError

T = TypeVar("T")

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
    """A ``YYYY-MM-DD`` date within the bounds every vendor row is held to (:mod:`ingestion.time_bounds`)."""
    from ingestion.time_bounds import RANGE_TEXT, check_date  # pandas: not while the parser is built

    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} '{text}' is not a date: use YYYY-MM-DD, e.g. {flag} 2024-01-31") from None
    try:
        return check_date(day)
    except ValueError:
        raise ConfigError(f"{flag} {day} is out of range: use a date in {RANGE_TEXT}") from None


def parse_range(start: str, end: str, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """Validate ``--from``/``--to``: real dates within the row bounds, in order, ``--from`` not in the future (``--to``
    is cut at today)."""
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    if last < first:
        raise ConfigError(f"--from {first} is after --to {last}: swap them")
    today = today or dt.date.today()
    if first > today:
        raise ConfigError(f"--from {first} is in the future: the latest day with data is {today}")
    return first, min(last, today)


def whole_number(what: str, minimum: int = 1, hint: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number of ``what`` (e.g. "milliseconds"), at least ``minimum``.

    ``hint`` is added to the error, e.g. what leaving the option out means.
    """
    wanted = f"a positive number of {what}" if minimum == 1 else f"a number of {what}, {minimum} or more"

    def parse(text: str) -> int:
        value = _int(text)
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted} (a whole number){hint}")
        return value

    return parse


def port(any_free: bool = False) -> Callable[[str], int]:
    """An argparse ``type``: a TCP port, 1..65535; with ``any_free``, 0 too (the system picks a free port)."""
    lowest = 0 if any_free else 1

    def parse(text: str) -> int:
        value = _int(text)
        if value is None or not lowest <= value <= 65535:
            meaning = " (0: any free port)" if any_free else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a port: use {lowest}..65535{meaning}")
        return value

    return parse


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def listening(flag: str, number: int, bind: Callable[[], T]) -> T:
    """``bind()``, which listens on port ``number`` given as ``flag``; failing to bind it (in use, privileged, an
    unknown host) is a one-line :class:`~ingestion.errors.ConfigError` instead of a traceback."""
    try:
        return bind()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{flag} {number}: cannot listen there ({reason}); choose another port") from None


def check_port_free(host: str, number: int) -> None:
    """Bind ``host:number`` and let it go at once: OSError when another process holds it (for a server that a
    child process binds, whose own failure would be a page of logs). Address reuse is on, as servers set it, so a
    port in TIME_WAIT counts as free."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, number))
