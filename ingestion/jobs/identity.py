"""One entity per security: which tickers a security traded under, so that a renamed one keeps one history.

**The entity key is the ticker the security trades under now** (as the vendor's clock sees it): ``META`` holds
Facebook's history since its listing as ``FB``, and every stored row carries ``symbol = "META"``. The key stays the
readable ticker that Feast entity rows, the online store and every other view already use; a stable vendor id (the
composite FIGI) would have made every lookup go through a mapping. The as-traded ticker of any row is the
:class:`Segment` of its date (:meth:`Identity.traded_as`), re-derived from the vendor's events whenever needed.

Resolution (:func:`resolve`), from Polygon's reference data:

1. ``/vX/reference/tickers/{name}/events``: the ticker changes of the security that ``name`` names **now**; the
   newest change is the entity, each change starts a segment;
2. an old name (``FB`` after 2022-06-09) is not found there, so its composite FIGI is read from ticker details as of
   the requested dates (``/v3/reference/tickers/FB?date=...``: the end of the range, then its start, then today) and
   the events are asked by FIGI: ``FB`` resolves to ``META``, the same entity, so a backfill of ``FB`` or of
   ``META`` stores the same rows under ``META``;
3. a name with no events (the vendor has none, or the lookup failed) is its own entity with one unbounded segment:
   exactly the behaviour before this module.

Fetching: the bars of a unit are asked under every ticker whose segment overlaps the unit, widened by :data:`SLACK`
on each side, because vendors date a change loosely (Polygon's ``ticker_change`` to META says 2022-06-11, while META
traded from 2022-06-09; FB's last session was 06-08). A session answered under two tickers keeps the bar of the ticker
whose segment holds it; a session only one ticker answered keeps that one. Both are relabelled to the entity.

Delisted securities need nothing more: their ticker is still their current name (``TWTR``), their events and details
answer with ``active: false`` and ``delisted_utc``, and :mod:`ingestion.jobs.listing` proves the range after the
last day empty.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion.errors import ClientError, IngestionError
from ingestion.jobs.coverage import Interval
from ingestion.jobs.engine import Source, todo_units
from ingestion.jobs.landing import Sinks
from ingestion.polygon.tickers import TickerEvents
from ingestion.rejects import ParseResult, Rejected

if TYPE_CHECKING:
    from ingestion.polygon.rest import PolygonRESTClient

log = logging.getLogger(__name__)

__all__ = [
    "SLACK",
    "Identities",
    "Identity",
    "Segment",
    "as_entity",
    "fetch_as_traded",
    "identities_to_fetch",
    "identity_from_events",
    "relabel_as_traded",
    "resolve",
    "resolve_all",
]

SLACK = dt.timedelta(days=10)
"""How far past a ticker's nominal dates its bars are still asked for (a vendor's change date is a few days off).
A ticker handed to another security within this window would lend it the sessions the entity's own ticker did not
answer; vendors do not reuse a ticker that fast."""


@dataclass(frozen=True)
class Segment:
    """The security traded as ``ticker`` from ``first`` to ``last`` (None: no bound), by the vendor's events."""

    ticker: str
    first: dt.date | None = None
    last: dt.date | None = None

    def holds(self, day: dt.date) -> bool:
        return (self.first is None or day >= self.first) and (self.last is None or day <= self.last)

    def asked(self, span: Interval) -> Interval | None:
        """The part of ``span`` to ask this ticker for: the segment widened by :data:`SLACK`, cut to ``span``."""
        lo = span[0] if self.first is None else max(span[0], self.first - SLACK)
        hi = span[1] if self.last is None else min(span[1], self.last + SLACK)
        return (lo, hi) if lo <= hi else None


@dataclass(frozen=True)
class Identity:
    """A security: ``entity`` (its ticker now, the key of its rows), its ticker segments oldest first, its FIGI and
    the names that were resolved to it."""

    entity: str
    segments: tuple[Segment, ...]
    composite_figi: str | None = None
    aliases: tuple[str, ...] = ()

    @classmethod
    def single(cls, ticker: str) -> Identity:
        """A ticker with no known history: its own entity, one unbounded segment."""
        return cls(ticker, (Segment(ticker),))

    @property
    def renamed(self) -> bool:
        return len(self.segments) > 1

    def traded_as(self, day: dt.date) -> str:
        """The ticker the security traded under on ``day`` (by the vendor's dates)."""
        return next((s.ticker for s in self.segments if s.holds(day)), self.entity)


def identity_from_events(events: TickerEvents, asked: str) -> Identity:
    """Segments from ticker changes (oldest first): each change runs to the day before the next one."""
    changes = events.changes
    segments = []
    for k, change in enumerate(changes):
        last = changes[k + 1].date - dt.timedelta(days=1) if k + 1 < len(changes) else None
        # The first ticker's date is the listing: bars before it do not exist, so its segment has no lower bound.
        segments.append(Segment(change.ticker, None if k == 0 else change.date, last))
    entity = changes[-1].ticker
    return Identity(entity, tuple(segments), events.composite_figi, tuple(sorted({asked} - {entity})))


def resolve(client: PolygonRESTClient, name: str, span: Interval) -> tuple[Identity, list[Rejected]]:
    """The identity of the security ``name`` names (module docstring), and the events the vendor sent that were
    refused. A lookup that fails proves nothing: the name is then its own entity."""
    name = name.strip().upper()
    try:
        events = client.get_ticker_events(name)
        if events is None or not events.changes:
            figi = _figi_of(client, name, span)
            events = client.get_ticker_events(figi) if figi else None
    except IngestionError as exc:
        # Only the error's kind: its text is said once, by the bar request that meets the same error.
        log.info("no ticker history for %s (%s): it is its own entity", name, type(exc).__name__)
        return Identity.single(name), []
    if events is None or not events.changes:
        return Identity.single(name), list(events.rejected) if events is not None else []
    return identity_from_events(events, name), list(events.rejected)


def _figi_of(client: PolygonRESTClient, name: str, span: Interval) -> str | None:
    """The composite FIGI of the security that traded as ``name`` around ``span``: ticker details as of its end, its
    start, then today (an old name is found only on a date it was in use, or as an inactive ticker)."""
    for day in (span[1], span[0], None):
        try:
            details = client.get_ticker_details(name, day)
        except ClientError:
            continue  # 404: not a ticker on that date
        figi = details.get("composite_figi")
        if isinstance(figi, str) and figi:
            return figi
    return None


@dataclass
class Identities:
    """The identities of a run's requested names, by entity; ``rejected`` holds refused vendor events."""

    by_entity: dict[str, Identity] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def entities(self) -> list[str]:
        """The entities to backfill, in the order first requested, each once (FB and META are one)."""
        return list(self.by_entity)

    def get(self, entity: str) -> Identity:
        return self.by_entity.get(entity) or Identity.single(entity)

    def add(self, identity: Identity) -> None:
        known = self.by_entity.get(identity.entity)
        if known is not None:
            identity = Identity(
                identity.entity,
                identity.segments,
                identity.composite_figi,
                tuple(sorted({*known.aliases, *identity.aliases})),
            )
        self.by_entity[identity.entity] = identity


def resolve_all(client: PolygonRESTClient, names: Iterable[str], span: Interval) -> Identities:
    """:func:`resolve` each name; names of one security collapse into one entity."""
    out = Identities()
    for name in names:
        identity, rejected = resolve(client, name, span)
        out.add(identity)
        out.rejected += rejected
        if identity.entity != name.strip().upper():
            log.info("%s resolves to %s (the ticker it trades under now)", name, identity.entity)
    return out


def identities_to_fetch(
    client: PolygonRESTClient, sinks: Sinks, source: Source, names: list[str], span: Interval
) -> Identities:
    """The identities of the requested ``names`` that still have work in ``span``: a name whose coverage is complete
    is kept as it is without a request (a covered rerun sends nothing); the others are resolved, so an old name
    (FB) becomes its entity (META), whose own coverage the engine then consults. Refused vendor events are
    quarantined, and each resolution is logged."""
    names = list(dict.fromkeys(n.strip().upper() for n in names))
    pending = [n for n in names if todo_units(source, sinks, n, span)]
    resolved = resolve_all(client, pending, span)
    sinks.quarantine.write(resolved.rejected)
    out = Identities(rejected=resolved.rejected)
    for name in names:
        if name in pending:
            entity = next(e for e, i in resolved.by_entity.items() if name in (e, *i.aliases))
            out.add(resolved.by_entity[entity])
        else:
            out.add(Identity.single(name))
    return out


def fetch_as_traded(
    identity: Identity,
    span: Interval,
    fetch: Callable[[str, dt.date, dt.date], ParseResult],
    *,
    day_of: str = "window_start",
) -> ParseResult:
    """The bars of ``identity`` over ``span`` (New York dates): ``fetch(ticker, lo, hi)`` for each ticker whose
    segment overlaps it (widened by :data:`SLACK`), joined under the entity's name (module docstring)."""
    if not identity.renamed:
        return fetch(identity.segments[0].ticker, *span)
    parts: list[ParseResult] = []
    held: list[pd.Series] = []
    for segment in identity.segments:
        asked = segment.asked(span)
        if asked is None:
            continue
        part = fetch(segment.ticker, *asked)
        frame = part.frame
        days = frame[day_of].dt.tz_convert("America/New_York").dt.date if len(frame) else pd.Series([], dtype=object)
        held.append(pd.Series([segment.holds(d) for d in days], index=frame.index, dtype=bool))
        parts.append(part)
    if not parts:
        return fetch(identity.entity, *span)
    joined = ParseResult.concat(parts)
    frame = as_entity(joined.frame, identity.entity, pd.concat(held, ignore_index=True).to_numpy(), day_of=day_of)
    return ParseResult(frame, joined.rejected, joined.drift)


def as_entity(
    frame: pd.DataFrame, entity: str | npt.NDArray[np.object_], held: npt.NDArray[np.bool_], *, day_of: str
) -> pd.DataFrame:
    """Bars under the tickers their securities traded as, one row per entity and day under the entity (``entity``:
    one for every row, or each row's): a day answered under two tickers keeps the bar whose ``held`` is true (its
    ticker's segment holds the day), else the first."""
    frame = frame.assign(symbol=entity, _rank=np.where(held, 0, 1))
    frame = frame.sort_values(["symbol", day_of, "_rank"], kind="stable")
    frame = frame.drop_duplicates(["symbol", day_of], keep="first")
    return frame.drop(columns="_rank").reset_index(drop=True)


def relabel_as_traded(
    frame: pd.DataFrame, identities: Iterable[Identity], *, day_of: str = "window_start"
) -> pd.DataFrame:
    """Bars of many securities, each under the ticker it traded as that day (a grouped daily answer), with the rows of
    each renamed identity moved to its entity by the same rule as :func:`fetch_as_traded`: a row of ticker ``T`` is
    the security's when one of its segments of ``T``, widened by :data:`SLACK`, holds the row's day (so a ticker
    reused later by another security keeps that one's rows). Every other row keeps its ticker: a delisted security
    (TWTR) is its own entity. Row order is kept, rows moved go to the end."""
    by_ticker: dict[str, list[Identity]] = {}
    for identity in identities:
        if identity.renamed:
            for ticker in dict.fromkeys(s.ticker for s in identity.segments):
                by_ticker.setdefault(ticker, []).append(identity)
    # Only the rows of a renamed security's tickers are looked at, one by one: a few per session in a whole market.
    if frame.empty or not by_ticker:
        return frame
    rows = np.flatnonzero(frame["symbol"].isin(by_ticker).to_numpy())
    if not len(rows):
        return frame
    symbols = frame["symbol"].to_numpy()
    days = frame[day_of].iloc[rows].dt.tz_convert("America/New_York").dt.date.to_numpy()
    keep, entities, held = [], [], []
    for k, day in zip(rows, days, strict=True):
        # The first renamed security whose segment of this ticker (widened by SLACK) reaches the day claims the row.
        for identity in by_ticker[symbols[k]]:
            mine = [s for s in identity.segments if s.ticker == symbols[k] and s.asked((day, day)) is not None]
            if mine:
                keep.append(k)
                entities.append(identity.entity)
                held.append(any(s.holds(day) for s in mine))
                break
    if not keep:
        return frame
    claimed = np.zeros(len(frame), dtype=bool)
    claimed[keep] = True
    moved = as_entity(frame.iloc[keep], np.array(entities, dtype=object), np.array(held, dtype=bool), day_of=day_of)
    return pd.concat([frame[~claimed], moved], ignore_index=True)
