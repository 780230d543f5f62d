"""A survivorship-free universe: every ticker listed on a date, including those delisted or renamed since.

A backfill over "the tickers that exist today" leaves out every company that failed, was taken over or went private,
and a model trained on it learns from winners only (survivorship bias). ``backfill ohlcv --universe
listed:2022-01-03`` asks Polygon's ``/v3/reference/tickers?date=2022-01-03&active=true`` instead: the tickers trading
that day, as they were called then (FB, TWTR), each then resolved to its entity (FB -> META) by
:mod:`ingestion.jobs.identity`; a delisted one (TWTR) is backfilled up to its last session.

:func:`tickers_listed_on` is the one way to ask for that list (the ``all`` universe reuses it).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ingestion.errors import ConfigError
from ingestion.polygon.tickers import TICKER

if TYPE_CHECKING:
    from ingestion.polygon.rest import PolygonRESTClient

__all__ = ["LISTED", "parse_listed", "tickers_listed_on"]

LISTED = "listed:"
"""The ``--universe`` prefix of a survivorship-free list: ``listed:YYYY-MM-DD``."""


def parse_listed(text: str) -> dt.date | None:
    """The date of ``listed:YYYY-MM-DD``, or None when ``text`` is another kind of universe; a bad date is a one-line
    :class:`ConfigError`."""
    from ingestion.jobs.args import parse_date

    raw = text.strip()
    if not raw.lower().startswith(LISTED):
        return None
    day = raw[len(LISTED) :].strip()
    if not day:
        raise ConfigError("--universe listed: needs a date: use --universe listed:YYYY-MM-DD, e.g. listed:2022-01-03")
    return parse_date(day, "--universe listed:")


def tickers_listed_on(client: PolygonRESTClient, day: dt.date, *, market: str = "stocks") -> list[str]:
    """Every ticker of ``market`` trading on ``day`` as it was called that day, sorted (every page of the vendor's
    list); tickers delisted or renamed later are included. Refused rows go to the client's ``on_rejected``."""
    frame = client.list_tickers(day, active=True, market=market)
    return sorted(t for t in frame["ticker"].dropna().astype(str) if TICKER.match(t))
