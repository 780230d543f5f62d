"""``backfill flow``: Unusual Whales history into the four daily datasets of the offline store.

:class:`FlowSource` is the Unusual Whales source of the unit-of-work engine (:mod:`ingestion.jobs.engine`), which
resumes from coverage, lands the rows (quarantine, metrics, summary) and records coverage per dataset, only after
the rows are durable and only up to the last closed session. For each symbol and calendar month of ``[start, end]``
(New York dates), one unit fetches, reporting progress day by day (:func:`~ingestion.jobs.engine.sessions_fetched`):

* flow alerts per session day D, windowed ``newer_than = end(D-1)``, ``older_than = end(D)`` and paged, because
  an alert belongs to the first options-day end (close + 15 min) at or after it
  (:mod:`ingestion.unusual_whales.aggregates`, :mod:`ingestion.publication`);
* options volume of the unit's sessions (one call, ``date`` = the last session, ``limit`` = their count);
* dark-pool prints per session day with ``/api/darkpool/{ticker}?date=`` from the session *before* the unit, whose
  after-hours prints roll into the unit's first day;
* insider transactions (paged) traded from 120 days before the unit, so the 30/90-day trailing windows of the
  unit's filings are whole (Form 4 is due within two business days; 30 days of slack covers late filers);
* ETF in-outflow of the unit (empty for a stock; a vendor 4xx for a non-ETF counts as no rows),

and builds ``options_flow_daily``, ``dark_pool_daily``, ``insider_activity`` and ``etf_flow_daily`` with
:mod:`ingestion.unusual_whales.aggregates` (``dp_share_of_volume`` from the stored ``ohlcv_daily`` volume, null when
absent), keeping only rows of the unit that are knowable at ``now``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import (
    DARK_POOL_DAILY,
    ENTITY_KEY,
    ETF_FLOW_DAILY,
    EVENT_TS,
    FLOW_ALERTS,
    INSIDER_ACTIVITY,
    OHLCV_DAILY,
    OPTIONS_FLOW_DAILY,
    OPTIONS_FLOW_INTRADAY,
    Dataset,
)
from ingestion.errors import ClientError
from ingestion.http import VendorHTTP
from ingestion.jobs.coverage import Interval
from ingestion.jobs.engine import (
    calendar_units,
    last_complete_day,
    planned_work,
    rows_in_unit,
    run_units,
    sessions_fetched,
)
from ingestion.jobs.flow_intraday import intraday_frames
from ingestion.jobs.landing import Batch, Sinks
from ingestion.jobs.progress import progress_bar
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import ParseResult
from ingestion.runtime import Runtime
from ingestion.store.objectstore import Root
from ingestion.store.offline import read_dataset, visible_files
from ingestion.unusual_whales import aggregates, parse
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.unusual_whales.timestamps import new_york_day_start

log = logging.getLogger(__name__)

FLOW_DATASETS: Final[tuple[Dataset, ...]] = (
    OPTIONS_FLOW_DAILY, DARK_POOL_DAILY, INSIDER_ACTIVITY, ETF_FLOW_DAILY, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY,
)  # fmt: skip
INSIDER_HISTORY_DAYS: Final = 120
SOURCE: Final = "unusual_whales"


def consolidated_volume(data_dir: Root, symbol: str, lo: dt.date, hi: dt.date) -> pd.DataFrame | None:
    """``symbol, date, volume`` of the stored ``ohlcv_daily`` bars on ``[lo, hi]``, or None when none is stored.

    Only bars as traded (``adjusted=False``): Unusual Whales prints are shares as traded, so the share of volume
    divides like by like. Split-adjusted rows an older version stored are never used (a split would move the
    ratio by its factor); a day with only such a row has no consolidated volume, and its share is null.
    """
    bars = read_dataset(
        data_dir, OHLCV_DAILY, [symbol], new_york_day_start(lo), new_york_day_start(hi + dt.timedelta(days=1))
    )
    bars = bars[~bars["adjusted"].astype(bool)] if len(bars) else bars
    if bars.empty:
        return None
    out = pd.DataFrame(
        {
            ENTITY_KEY: bars[ENTITY_KEY],
            "date": bars[EVENT_TS].dt.tz_convert(calendar.NEW_YORK).dt.date,
            "volume": bars["volume"],
        }
    )
    return out.drop_duplicates([ENTITY_KEY, "date"], keep="last")


def fetch_flow_unit(
    client: EnhancedUnusualWhalesClient,
    symbol: str,
    unit: Interval,
    now: pd.Timestamp,
    volume: pd.DataFrame | None = None,
    data_dir: Root | None = None,
) -> Batch:
    """The four datasets' rows of ``symbol`` for New York days ``unit`` (already clipped to closed sessions)."""
    lo, hi = unit
    days = [d.date() for d in calendar.sessions(lo, hi)]

    alerts = []
    prints = [client.fetch_dark_pool(symbol, calendar.previous_session(lo).date())]
    ends = publication.day_ends(OPTIONS_FLOW_DAILY, [calendar.previous_session(lo).date(), *days]) // 1_000_000
    for day, newer, older in zip(days, ends[:-1].tolist(), ends[1:].tolist(), strict=True):
        alerts.append(client.fetch_flow_alerts(newer, older, ticker_symbol=symbol))
        prints.append(client.fetch_dark_pool(symbol, day))
        # A day's alerts and prints are most of a unit's requests: the progress bar moves day by day.
        sessions_fetched()
    opt_volume = client.fetch_options_volume(symbol, days[-1], limit=len(days)) if days else None
    insiders = client.fetch_insider_trading(symbol, lo - dt.timedelta(days=INSIDER_HISTORY_DAYS), hi)
    try:
        etf = client.fetch_etf_flow(symbol, lo, hi)
    except ClientError as exc:
        # UW refuses in-outflow for a ticker that is no ETF: that symbol simply has no ETF flow.
        log.info("no ETF flow for %s: %s", symbol, exc)
        etf = None

    no_alerts = parse.parse_flow_alerts(b'{"data":[]}', endpoint=parse.FLOW_ALERTS).frame
    merged_alerts = ParseResult.concat(alerts, empty=no_alerts)
    merged_prints = ParseResult.concat(prints)
    results = [merged_alerts, merged_prints, insiders, *(r for r in (opt_volume, etf) if r is not None)]

    # Quiet days of the unit are zeros, not missing rows (that would carry the previous day's counts forward).
    flow = aggregates.options_flow_daily(
        merged_alerts.frame,
        opt_volume.frame if opt_volume is not None else None,
        now=now,
        sessions=days,
        symbols=[symbol],
    )
    dark = aggregates.dark_pool_daily(
        merged_prints.frame, consolidated_volume=volume, now=now, sessions=days, symbols=[symbol]
    )
    insider = aggregates.insider_activity(insiders.frame, now=now)
    etf_rows = aggregates.etf_flow_daily(etf.frame, now=now) if etf is not None else None
    frames = {
        ds.name: rows_in_unit(frame, unit, now)
        for ds, frame in (
            (OPTIONS_FLOW_DAILY, flow),
            (DARK_POOL_DAILY, dark),
            (INSIDER_ACTIVITY, insider),
            (ETF_FLOW_DAILY, etf_rows),
        )
        if frame is not None
    }
    if data_dir is not None:
        # The raw alerts and their rolling windows (ingestion.jobs.flow_intraday); data_dir: what is stored already.
        intraday, extra = intraday_frames(client, symbol, unit, merged_alerts, now, data_dir)
        frames.update(intraday)
        results += extra
    return Batch(SOURCE, frames, [r for res in results for r in res.rejected])


@dataclass
class FlowSource:
    """Unusual Whales flow, dark pool, insider and ETF history as the four daily datasets, a calendar month a unit.

    ``data_dir`` (a local data dir or an ``s3://`` root) holds the stored ``ohlcv_daily`` bars that
    ``dp_share_of_volume`` divides by.
    """

    client: EnhancedUnusualWhalesClient
    data_dir: Root
    job: str = "backfill flow"

    @property
    def datasets(self) -> Sequence[Dataset]:
        return FLOW_DATASETS

    @property
    def http(self) -> Sequence[VendorHTTP]:
        return (self.client.http,)

    def units(self, span: Interval) -> list[Interval]:
        return calendar_units(span, "month")

    def fetch(self, symbol: str, unit: Interval, now: pd.Timestamp) -> Batch:
        lo, hi = unit
        complete_to = min(hi, last_complete_day(now))
        if complete_to < lo:
            # Nothing of this unit is knowable yet: no request, and a later run fetches it.
            return Batch(SOURCE)
        volume = consolidated_volume(self.data_dir, symbol, lo, complete_to)
        return fetch_flow_unit(self.client, symbol, (lo, complete_to), now, volume, self.data_dir)


def flow_client(rt: Runtime, workers: int = 4, **kw: Any) -> EnhancedUnusualWhalesClient:
    """The UW client of a runtime; on the simulator it keeps the simulator's clock (its "now" and quota day)."""
    stack = rt.stack
    uw = getattr(stack, "uw", None) if rt.simulated_uw else None
    clock = kw.pop("clock", None) or (uw.clock.now if uw is not None else None)
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    if uw is not None:
        # Our own simulator's plan (see ingestion.runtime) allows far more than a real plan's 120 a minute.
        extra.setdefault("requests_per_minute", 3_000)
    return EnhancedUnusualWhalesClient(
        rt.uw_token, rt.settings.uw_base_url, redis_url=rt.redis_url, max_workers=workers, **extra, **kw
    )


def backfill_flow(
    rt: Runtime,
    symbols: Iterable[str],
    start: dt.date,
    end: dt.date,
    workers: int = 4,
    *,
    client: EnhancedUnusualWhalesClient | None = None,
    sinks: Sinks | None = None,
    now: pd.Timestamp | None = None,
) -> JobSummary:
    """Backfill the UW daily datasets of many symbols in parallel; one failing symbol is reported, the others go on.

    ``now`` (UTC) decides what is knowable (default: the client's clock). Every dataset with stored rows is added to
    ``summary.datasets_touched`` so :func:`ingestion.jobs.runs.write_online` loads its latest values. A client made
    here is closed here; a ``client`` passed in stays open.
    """
    names = list(dict.fromkeys(s.strip().upper() for s in symbols))
    sinks = sinks or Sinks.for_settings(rt.settings)
    uw = client or flow_client(rt, workers)
    try:
        at = now if now is not None else pd.Timestamp(uw.clock(), unit="s", tz="UTC")
        at = at.tz_convert("UTC").floor("us")
        source = FlowSource(uw, sinks.offline.root)
        span = (start, end)
        with progress_bar(planned_work(source, sinks, names, span), "flow") as progress:
            summary = run_units(source, sinks, names, span, now=at, workers=workers, progress=progress)
    finally:
        if client is None:
            uw.close()
    summary.touch(ds.name for ds in FLOW_DATASETS if ds.is_feature_view and visible_files(sinks.offline.root, ds))
    return summary


__all__ = ["FLOW_DATASETS", "FlowSource", "backfill_flow", "consolidated_volume", "fetch_flow_unit", "flow_client"]
