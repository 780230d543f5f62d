"""``backfill ohlcv``: Polygon bars into the Parquet offline store, with Unusual Whales candles as the fallback.

:class:`OhlcvSource` is the OHLCV source of the unit-of-work engine (:mod:`ingestion.jobs.engine`), which resumes from
coverage, lands the rows and counts them. Its units are a calendar year of daily bars or a calendar month of minute
bars. A unit's bars are fetched, checked, given their derived features (daily bars, from a warm-up window before the
unit) and cut to the unit. Bars dated outside the range asked of the vendor are quarantined; bars not yet complete
(``event_timestamp`` after ``now``: today's forming daily bar, the current minute) are left out, and a later run picks
them up once they are knowable.

Prices are stored **as traded**: Polygon is asked for ``adjusted=false`` (rows carry ``adjusted=False``) and the
Unusual Whales fallback is on the same basis, so a stored bar never changes when a split happens later. Daily units
first refresh the symbol's corporate actions (:class:`~ingestion.jobs.corporate_actions.CorporateActions`: new
records land in ``corporate_actions`` with the unit, refused ones in quarantine), then derive the split-aware
features from the raw bars and the actions known at each bar (:mod:`ingestion.jobs.derived`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ingestion.datasets import CORPORATE_ACTIONS, OHLCV_DAILY, OHLCV_MINUTE, Dataset
from ingestion.errors import CircuitOpen, NotEntitled, ServerError, TransportError
from ingestion.http import VendorHTTP
from ingestion.jobs.corporate_actions import CorporateActions
from ingestion.jobs.coverage import Interval
from ingestion.jobs.derived import WARMUP_SESSIONS, add_daily_features
from ingestion.jobs.engine import calendar_units, outside_requested, rows_in_unit, run_units
from ingestion.jobs.identity import Identities, Identity, fetch_as_traded, identities_to_fetch
from ingestion.jobs.landing import Batch, Sinks
from ingestion.jobs.listing import Listing, Listings, polygon_listings
from ingestion.jobs.quality import check_bars, minute_gaps
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import ParseResult

OHLCV_DATASETS = {"day": OHLCV_DAILY, "minute": OHLCV_MINUTE}
PRIMARY_SOURCE = "polygon"
"""The ``source`` column of bars from Polygon; any other value is a fallback vendor's."""
# Calendar days fetched before a unit of daily bars so its 20-session features have their history.
_WARMUP_DAYS = WARMUP_SESSIONS * 7 // 5 + 10

Fallback = Callable[[str, str, dt.date, dt.date], ParseResult]
"""``fallback(symbol, timespan, start, end)``: bars from another vendor when Polygon is unavailable."""

# Polygon being unavailable, as opposed to the request being wrong: these switch to the fallback.
_UNAVAILABLE = (CircuitOpen, NotEntitled, ServerError, TransportError)


@dataclass
class OhlcvSource:
    """Polygon bars of one timespan (``day`` or ``minute``), from ``fallback`` when Polygon is unavailable.

    ``actions`` refreshes the corporate actions daily bars are derived with; without it (a bare source, e.g. to plan
    work) daily features see no split and no dividend.
    """

    client: PolygonRESTClient
    timespan: str
    fallback: Fallback | None = None
    actions: CorporateActions | None = None
    identities: Identities | None = None
    """Each entity's tickers (:mod:`ingestion.jobs.identity`): META's bars before 2022-06-09 are asked as FB."""
    _listings: Listings | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timespan not in OHLCV_DATASETS:
            raise ValueError("timespan must be 'day' or 'minute'")

    @property
    def job(self) -> str:
        return f"backfill ohlcv {self.timespan}"

    @property
    def datasets(self) -> Sequence[Dataset]:
        return (OHLCV_DATASETS[self.timespan],)

    @property
    def http(self) -> Sequence[VendorHTTP]:
        return (self.client.http,)

    def units(self, span: Interval) -> list[Interval]:
        return calendar_units(span, "year" if self.timespan == "day" else "month")

    def listing(self, symbol: str) -> Listing | None:
        """The symbol's listing dates from Polygon ticker details: the engine asks only at a unit's first empty
        answer, to prove it empty (before the listing, after a delisting) instead of retrying it forever."""
        if self._listings is None:
            self._listings = polygon_listings(self.client)
        return self._listings(symbol)

    def _as_traded(self, entity: str, lo: dt.date, hi: dt.date) -> ParseResult:
        """Raw Polygon bars of ``entity`` over ``[lo, hi]``, asked under each ticker it traded as, keyed by it."""
        identity = self.identities.get(entity) if self.identities is not None else Identity.single(entity)
        return fetch_as_traded(
            identity, (lo, hi), lambda t, a, b: self.client.fetch_aggregates(t, 1, self.timespan, a, b, adjusted=False)
        )

    def fetch(self, symbol: str, unit: Interval, now: pd.Timestamp) -> Batch:
        """Bars of one unit, validated, with derived features for daily bars; rows not yet knowable are left out.

        When Polygon is unavailable and there is a fallback, the unit's bars come from it instead (their ``source``
        column says so) and an alert is raised.
        """
        lo, hi = unit
        name, label = OHLCV_DATASETS[self.timespan].name, f"polygon aggs {self.timespan}"
        daily = self.timespan == "day"
        fetch_lo = lo - dt.timedelta(days=_WARMUP_DAYS) if daily else lo
        # Before any bar is derived: the splits and dividends known now, new ones landed with this unit.
        refreshed = self.actions.refresh(symbol) if daily and self.actions is not None else None
        try:
            parsed = self._as_traded(symbol, fetch_lo, hi)
        except _UNAVAILABLE as exc:
            if self.fallback is None:
                raise
            from ingestion.ops.alerts import FALLBACK_SOURCE, raise_alert

            raise_alert(
                FALLBACK_SOURCE, f"{symbol} {self.timespan} {lo}..{hi}: Polygon unavailable ({type(exc).__name__}); "
                "bars from Unusual Whales", symbol=symbol, timespan=self.timespan,
            )  # fmt: skip
            parsed = self.fallback(symbol, self.timespan, fetch_lo, hi)
        asked, outside = outside_requested(
            parsed.frame, (fetch_lo, hi), dataset=name, source=label, day_of="window_start"
        )
        # Checked here, and again (finding nothing more) when landed: daily bars' derived features must be computed
        # from good bars only.
        good, rejected, report = check_bars(asked, dataset=name, source=label)
        frames: dict[str, pd.DataFrame] = {}
        refused = [*parsed.rejected, *outside, *rejected]
        if daily:
            good = add_daily_features(good, refreshed.actions if refreshed is not None else None)
        else:
            report.missing_minutes = minute_gaps(good, lo.isoformat(), hi.isoformat())
        if refreshed is not None:
            refused += refreshed.rejected
            if len(refreshed.new):
                frames[CORPORATE_ACTIONS.name] = refreshed.new
        good = rows_in_unit(good, unit, now, day_of="window_start")
        frames[name] = good
        fallback_rows = Counter({name: int((good["source"] != PRIMARY_SOURCE).sum())})
        return Batch(label, frames, refused, {name: report}, fallback_rows)


def backfill_ohlcv(
    client: PolygonRESTClient,
    sinks: Sinks,
    symbols: Iterable[str],
    start: dt.date,
    end: dt.date,
    timespan: str,
    *,
    max_workers: int = 4,
    progress: Callable[[int], object] | None = None,
    now: pd.Timestamp | None = None,
    fallback: Fallback | None = None,
) -> JobSummary:
    """Backfill bars of many symbols in parallel; one failing symbol is reported and the others go on."""
    actions = CorporateActions(client, sinks.offline.root) if timespan == "day" else None
    source = OhlcvSource(client, timespan, fallback, actions)
    at = now if now is not None else pd.Timestamp.now(tz="UTC")
    # One entity per security: FB and META are one (jobs/identity.py); names already covered ask nothing.
    source.identities = identities_to_fetch(client, sinks, source, list(symbols), (start, end))
    entities = source.identities.entities
    return run_units(source, sinks, entities, (start, end), now=at, workers=max_workers, progress=progress)


__all__ = ["OHLCV_DATASETS", "Fallback", "OhlcvSource", "Sinks", "backfill_ohlcv"]
