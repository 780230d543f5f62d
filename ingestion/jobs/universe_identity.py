"""The entity of every as-traded ticker in a grouped daily answer, learned for the whole market in a few requests.

Grouped daily keys each bar by the ticker it traded under that day (``FB`` until 2022-06-08, ``META`` from 06-09,
``TWTR`` until 10-27). The per-ticker path stores a renamed security under the ticker it trades under now
(:mod:`ingestion.jobs.identity`); this module gives the grouped path the same answer without asking ticker events of
every ticker (10,000 requests at 10,000 tickers):

1. tickers trading now: ``/v3/reference/tickers?date=<run day>&active=true`` (every page, once per run: 10 pages at
   10,000 tickers). A ticker seen in the bars and trading now is its own entity (no further request);
2. only if some seen ticker no longer trades (renamed or delisted): ``active=false`` as of the run day, once per run,
   for its composite FIGI;
3. a gone ticker whose FIGI no other listed ticker shares is a security that stopped trading under its last name:
   its own entity (``TWTR``), no request. One that shares its FIGI with another ticker (``FB`` and ``META``) was
   renamed: the security's ticker events are asked by FIGI, once per security, and
   :func:`~ingestion.jobs.identity.identity_from_events` builds the same :class:`~ingestion.jobs.identity.Identity`
   the per-ticker path builds; :func:`~ingestion.jobs.identity.relabel_as_traded` moves its rows to the entity by
   the per-ticker path's rule.

So a run costs the active list, plus the inactive list and one events request per renamed security when the bars
hold a ticker that no longer trades. Everything is as of the run day (the vendor's knowledge then): a rename
announced later is not applied (rows already stored keep their key; see the README on tickers that change). A failed
lookup raises, so the unit it serves is not landed under the wrong key and the next run retries it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Protocol

import pandas as pd

from ingestion.jobs.identity import Identities, identity_from_events, relabel_as_traded
from ingestion.polygon.tickers import TickerEvents
from ingestion.rejects import Rejected

log = logging.getLogger(__name__)

__all__ = ["MarketIdentities", "ReferenceClient"]


class ReferenceClient(Protocol):
    """What :class:`MarketIdentities` needs of :class:`~ingestion.polygon.rest.PolygonRESTClient`."""

    def list_tickers(self, date: dt.date | None = None, *, active: bool = True) -> pd.DataFrame: ...

    def get_ticker_events(self, ident: str) -> TickerEvents | None: ...


class MarketIdentities:
    """One run's ticker-to-entity knowledge, grown as bars show tickers (module docstring). Not thread-safe: the
    universe backfill calls it from its driving thread."""

    def __init__(self, client: ReferenceClient, as_of: dt.date) -> None:
        self.client, self.as_of = client, as_of
        self.identities = Identities()
        self._checked: set[str] = set()
        self._current: dict[str, str | None] | None = None
        self._gone: dict[str, str | None] | None = None
        self._figis_asked: set[str] = set()

    def relabel(self, bars: pd.DataFrame) -> tuple[pd.DataFrame, list[Rejected]]:
        """``bars`` (``symbol`` as traded) with each renamed security's rows under its entity, and the ticker events
        the vendor sent that were refused."""
        if bars.empty:
            return bars, []
        seen = set(bars["symbol"].unique()) - self._checked
        rejected = self._learn(seen) if seen else []
        return relabel_as_traded(bars, self.identities.by_entity.values()), rejected

    def _learn(self, tickers: set[str]) -> list[Rejected]:
        current = self._listed(active=True)
        self._checked |= tickers
        gone = sorted(t for t in tickers if t not in current)
        if not gone:
            return []
        inactive = self._listed(active=False)
        tickers_of = Counter(f for f in (*current.values(), *inactive.values()) if f)
        rejected: list[Rejected] = []
        for ticker in gone:
            figi = inactive.get(ticker)
            if not figi or figi in self._figis_asked or tickers_of[figi] < 2:
                continue  # no FIGI, or a security with one ticker ever (delisted): its own entity
            self._figis_asked.add(figi)
            events = self.client.get_ticker_events(figi)
            if events is None or not events.changes:
                log.info("%s shares a FIGI but has no ticker events: it stays its own entity", ticker)
                continue
            identity = identity_from_events(events, ticker)
            self.identities.add(identity)
            rejected += events.rejected
            log.info("grouped bars of %s go to %s (the ticker it trades under now)", ticker, identity.entity)
        return rejected

    def _listed(self, *, active: bool) -> dict[str, str | None]:
        """Ticker -> composite FIGI of the tickers trading (``active``) or no longer trading as of the run day."""
        known = self._current if active else self._gone
        if known is None:
            frame = self.client.list_tickers(self.as_of, active=active)
            figi = frame["composite_figi"].astype(object).where(frame["composite_figi"].notna(), None)
            known = dict(zip(frame["ticker"].astype(str), figi, strict=True))
            if active:
                self._current = known
            else:
                self._gone = known
        return known
