"""``backfill flow``: Unusual Whales history into the four daily datasets of the offline store.

For each symbol and calendar month of ``[start, end]`` (New York dates), one unit of work fetches:

* flow alerts per session day D, windowed ``newer_than = close(D-1)``, ``older_than = close(D)`` and paged, because
  an alert belongs to the first session close at or after it (:mod:`ingestion.unusual_whales.aggregates`);
* options volume of the unit's sessions (one call, ``date`` = the last session, ``limit`` = their count);
* dark-pool prints per session day with ``/api/darkpool/{ticker}?date=`` from the session *before* the unit, whose
  after-hours prints roll into the unit's first day;
* insider transactions (paged) traded from 120 days before the unit, so the 30/90-day trailing windows of the
  unit's filings are whole (Form 4 is due within two business days; 30 days of slack covers late filers);
* ETF in-outflow of the unit (empty for a stock; a vendor 4xx for a non-ETF counts as no rows),

builds ``options_flow_daily``, ``dark_pool_daily``, ``insider_activity`` and ``etf_flow_daily`` with
:mod:`ingestion.unusual_whales.aggregates` (``dp_share_of_volume`` from the stored ``ohlcv_daily`` volume, null when
absent), keeps only rows of the unit that are knowable at ``now`` and writes them as ``backfill.py`` does: the offline
writer without watermark (part files named by their keys, so a rerun replaces its own files), rejected rows to the
quarantine, then :class:`~ingestion.jobs.coverage.Coverage` per dataset, recorded only after the rows are durable and
only up to the last closed session. A rerun fetches only what coverage lacks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

from ingestion import calendar
from ingestion.datasets import (
    DARK_POOL_DAILY,
    ENTITY_KEY,
    ETF_FLOW_DAILY,
    EVENT_TS,
    INSIDER_ACTIVITY,
    OHLCV_DAILY,
    OPTIONS_FLOW_DAILY,
    Dataset,
)
from ingestion.errors import ClientError, IngestionError
from ingestion.http import HTTPResult
from ingestion.jobs.backfill import Sinks, last_complete_day, units
from ingestion.jobs.coverage import Interval, merge, missing
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import ParseResult, Rejected
from ingestion.runtime import Runtime
from ingestion.store.offline import part_files, read_dataset
from ingestion.unusual_whales import aggregates, parse
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.unusual_whales.timestamps import new_york_day_start

log = logging.getLogger(__name__)

FLOW_DATASETS: Final[tuple[Dataset, ...]] = (OPTIONS_FLOW_DAILY, DARK_POOL_DAILY, INSIDER_ACTIVITY, ETF_FLOW_DAILY)
INSIDER_HISTORY_DAYS: Final = 120
_UNIT: Final = "month"  # backfill.units cuts anything but "day" at calendar months
_lock = threading.Lock()


@dataclass
class FlowUnit:
    """The rows of one (symbol, month) unit, per dataset, and the rows refused on the way."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def _seconds(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000_000)


def _in_days(frame: pd.DataFrame, lo: dt.date, hi: dt.date, now: pd.Timestamp) -> pd.DataFrame:
    """Rows whose event time falls on New York days ``[lo, hi]`` and is not after ``now`` (knowable)."""
    days = frame[EVENT_TS].dt.tz_convert(calendar.NEW_YORK).dt.date
    keep = (days >= lo) & (days <= hi) & (frame[EVENT_TS] <= now)
    return frame[keep.to_numpy()].reset_index(drop=True)


def consolidated_volume(data_dir: Any, symbol: str, lo: dt.date, hi: dt.date) -> pd.DataFrame | None:
    """``symbol, date, volume`` of the stored ``ohlcv_daily`` bars on ``[lo, hi]`` (unadjusted preferred, since UW
    prints are unadjusted shares), or None when none is stored."""
    bars = read_dataset(
        data_dir, OHLCV_DAILY, [symbol], new_york_day_start(lo), new_york_day_start(hi + dt.timedelta(days=1))
    )
    if bars.empty:
        return None
    bars = bars.sort_values("adjusted", ascending=False, kind="stable")
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
) -> FlowUnit:
    """The four datasets' rows of ``symbol`` for New York days ``unit`` (already clipped to closed sessions)."""
    lo, hi = unit
    days = [d.date() for d in calendar.sessions(lo, hi)]
    out = FlowUnit()
    results: list[ParseResult] = []

    alerts = []
    for day in days:
        newer = _seconds(calendar.session_close(calendar.previous_session(day)))
        older = _seconds(calendar.session_close(day))
        alerts.append(client.fetch_flow_alerts(newer, older, ticker_symbol=symbol))
    opt_volume = client.fetch_options_volume(symbol, days[-1], limit=len(days)) if days else None
    prints = [client.fetch_dark_pool(symbol, d) for d in [calendar.previous_session(lo).date(), *days]]
    insiders = client.fetch_insider_trading(symbol, lo - dt.timedelta(days=INSIDER_HISTORY_DAYS), hi)
    try:
        etf = client.fetch_etf_flow(symbol, lo, hi)
    except ClientError as exc:
        # UW refuses in-outflow for a ticker that is no ETF: that symbol simply has no ETF flow.
        log.info("no ETF flow for %s: %s", symbol, exc)
        etf = None

    merged_alerts = _merge(alerts) if alerts else parse.parse_flow_alerts(b'{"data":[]}', endpoint=parse.FLOW_ALERTS)
    merged_prints = _merge(prints)
    results += [merged_alerts, merged_prints, insiders]
    if opt_volume is not None:
        results.append(opt_volume)
    if etf is not None:
        results.append(etf)
    out.rejected = [r for res in results for r in res.rejected]

    flow = aggregates.options_flow_daily(
        merged_alerts.frame, opt_volume.frame if opt_volume is not None else None, now=now
    )
    dark = aggregates.dark_pool_daily(merged_prints.frame, consolidated_volume=volume, now=now)
    insider = aggregates.insider_activity(insiders.frame, now=now)
    etf_rows = aggregates.etf_flow_daily(etf.frame, now=now) if etf is not None else None
    for ds, frame in (
        (OPTIONS_FLOW_DAILY, flow),
        (DARK_POOL_DAILY, dark),
        (INSIDER_ACTIVITY, insider),
        (ETF_FLOW_DAILY, etf_rows),
    ):
        if frame is not None:
            out.frames[ds.name] = _in_days(frame, lo, hi, now)
    return out


def _merge(results: list[ParseResult]) -> ParseResult:
    frames = [r.frame for r in results if len(r.frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else results[0].frame
    return ParseResult(frame, [x for r in results for x in r.rejected], set().union(*(r.drift for r in results)))


def todo_units(sinks: Sinks, symbol: str, start: dt.date, end: dt.date) -> list[Interval]:
    """Month units of ``[start, end]`` that any of the four datasets lacks, oldest first."""
    gaps = [g for ds in FLOW_DATASETS for g in missing((start, end), sinks.coverage.get(ds.name, symbol))]
    return [u for gap in merge(gaps) for u in units(_UNIT, gap)]


def backfill_flow_symbol(
    client: EnhancedUnusualWhalesClient,
    sinks: Sinks,
    symbol: str,
    start: dt.date,
    end: dt.date,
    summary: JobSummary,
    now: pd.Timestamp,
    on_unit: Callable[[], None] | None = None,
) -> None:
    """Backfill one symbol's four datasets for ``[start, end]`` (New York dates), resuming where coverage ends."""
    last_done = last_complete_day(now)
    todo = todo_units(sinks, symbol, start, end)
    with _lock:
        summary.chunks_skipped += len(units(_UNIT, (start, end))) - len(todo)
    for lo, hi in todo:
        complete_to = min(hi, last_done)
        if complete_to < lo:
            # Nothing of this unit is knowable yet: a later run fetches it.
            if on_unit is not None:
                on_unit()
            continue
        volume = consolidated_volume(sinks.offline.data_dir, symbol, lo, complete_to)
        unit = fetch_flow_unit(client, symbol, (lo, complete_to), now, volume)
        written: dict[str, int] = {}
        duplicates: dict[str, int] = {}
        for name, frame in unit.frames.items():
            result = sinks.offline.append(name, frame, use_watermark=False)
            written[name] = result.written
            duplicates[name] = result.duplicates_in_batch
        if unit.rejected:
            sinks.quarantine.write(unit.rejected)
        with _lock:
            summary.rows_written.update(written)
            summary.duplicates_skipped.update(duplicates)
            for rej in unit.rejected:
                summary.quarantined[rej.dataset] += 1
        # Only now are the unit's rows durable; its coverage ends at the last closed session.
        for ds in FLOW_DATASETS:
            sinks.coverage.add(ds.name, symbol, (lo, complete_to))
        if on_unit is not None:
            on_unit()


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
    ``summary.datasets_touched`` so :func:`ingestion.jobs.runs.write_online` loads its latest values.
    """
    from ingestion.jobs.cli import progress_bar

    names = list(dict.fromkeys(s.strip().upper() for s in symbols))
    sinks = sinks or Sinks.for_settings(rt.settings)
    own = client is None
    uw = client or flow_client(rt, workers)
    at = now if now is not None else pd.Timestamp(uw.clock(), unit="s", tz="UTC")
    at = at.tz_convert("UTC").floor("us")
    summary = JobSummary("backfill flow")

    def count(result: HTTPResult) -> None:
        with _lock:
            summary.api_calls += 1

    uw.http.on_response.append(count)
    hits_before = uw.http.cache.hits if uw.http.cache is not None else 0
    bar: Any = progress_bar(len(names) * len(units(_UNIT, (start, end))), "flow")

    def one(symbol: str) -> None:
        try:
            backfill_flow_symbol(uw, sinks, symbol, start, end, summary, at, lambda: bar.update(1))
        except IngestionError as exc:
            with _lock:
                summary.errors[symbol] = str(exc)
            log.warning("flow backfill of %s stopped: %s (completed months are kept; rerun to resume)", symbol, exc)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="flow") as pool:
            list(pool.map(one, names))
    finally:
        bar.close()
        uw.http.on_response.remove(count)
        if uw.http.cache is not None:
            summary.cache_hits = uw.http.cache.hits - hits_before
        if own:
            uw.close()
    summary.datasets_touched.update(ds.name for ds in FLOW_DATASETS if part_files(sinks.offline.data_dir, ds))
    return summary


__all__ = ["FLOW_DATASETS", "backfill_flow", "backfill_flow_symbol", "fetch_flow_unit", "flow_client", "todo_units"]
