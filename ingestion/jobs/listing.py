"""When a symbol was listed: the only proof that a vendor's empty answer means "nothing there".

A backfill that gets no bars for a range cannot tell a transient empty reply from a range with nothing in it. Only a
range before the symbol's listing date or after its delisting is proven empty and may be recorded as covered
(:func:`ingestion.jobs.engine.backfill_symbol`); any other empty range is retried on the next run. The dates come
from Polygon's ticker details (``/v3/reference/tickers/{ticker}``: ``list_date``, ``delisted_utc``).

The symbol is the entity (:mod:`ingestion.jobs.identity`): the ticker a security trades under now, whose details give
the security's first listing (META's is FB's 2012-05-18), and for a delisted one ``active: false`` with
``delisted_utc``, "the last date that the asset was traded" (the spec): the day after it starts the proven-empty
range, so a delisted ticker's later units are recorded as covered and never fetched again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ingestion import calendar
from ingestion.errors import IngestionError
from ingestion.jobs.coverage import Interval

if TYPE_CHECKING:
    from ingestion.polygon.rest import PolygonRESTClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listing:
    """First and last New York dates a symbol traded under its ticker (None: not known, or still listed)."""

    listed: dt.date | None = None
    delisted: dt.date | None = None

    def outside(self, span: Interval) -> list[Interval]:
        """The parts of ``span`` before the listing or after the delisting: proven to have no rows."""
        lo, hi = span
        out: list[Interval] = []
        if self.listed is not None and lo < self.listed:
            out.append((lo, min(hi, self.listed - dt.timedelta(days=1))))
        if self.delisted is not None and hi > self.delisted:
            start = max(lo, self.delisted + dt.timedelta(days=1))
            if not out or start > out[-1][1]:
                out.append((start, hi))
        return out


Listings = Callable[[str], Listing | None]
"""``listings(symbol)``: the symbol's listing, or None when it cannot be known (nothing is then proven empty)."""


def listing_from_details(details: dict[str, Any]) -> Listing | None:
    """A :class:`Listing` from Polygon ticker details (as :meth:`PolygonRESTClient.get_ticker_details` returns them)."""
    listed, delisted = details.get("list_date"), details.get("delisted_utc")
    if listed is None and delisted is None:
        return None
    first = pd.Timestamp(listed).date() if listed is not None and not pd.isna(listed) else None
    last = None
    if delisted is not None and not pd.isna(delisted):
        last = calendar.new_york_date(pd.Timestamp(delisted).tz_convert("UTC"))
    return Listing(first, last)


def polygon_listings(client: PolygonRESTClient) -> Listings:
    """Listings from ``client``'s ticker details, asked once per symbol per run; a failed lookup proves nothing."""
    known: dict[str, Listing | None] = {}
    lock = threading.Lock()

    def listing(symbol: str) -> Listing | None:
        with lock:
            if symbol in known:
                return known[symbol]
        try:
            found = listing_from_details(client.get_ticker_details(symbol))
        except IngestionError as exc:
            log.info("no listing dates for %s (%s): its empty ranges are retried", symbol, exc)
            found = None
        with lock:
            known[symbol] = found
        return found

    return listing


__all__ = ["Listing", "Listings", "listing_from_details", "polygon_listings"]
