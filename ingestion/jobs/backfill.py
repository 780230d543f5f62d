"""Backfill jobs: vendor history into the Parquet offline store, then the latest values into Redis.

One direction, as in docs/architecture: client (limiter, cache, breaker, retry) -> parse and validate -> quality
checks -> derived features -> quarantine for bad rows -> offline writer -> coverage record -> online writer.

Resumable and idempotent by construction:

* a run fetches only the parts of its range that :class:`~ingestion.jobs.coverage.Coverage` does not list as done,
  in fixed units (a calendar year of daily bars, a calendar month of minute bars), oldest first;
* a unit is recorded as done only after its rows are durable in Parquet, and its part files are named by the
  digest of their rows' keys, so a unit interrupted and fetched again replaces its own files;
* bars not yet complete (``event_timestamp`` in the future: today's forming daily bar, the current minute) are
  neither stored nor marked done: a later run picks them up once they are knowable.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, OHLCV_DAILY, OHLCV_MINUTE, Dataset
from ingestion.errors import CircuitOpen, IngestionError, NotEntitled, ServerError, TransportError
from ingestion.http import HTTPResult
from ingestion.jobs.coverage import Coverage, Interval, missing
from ingestion.jobs.derived import WARMUP_SESSIONS, add_daily_features
from ingestion.jobs.quality import QualityReport, check_bars, minute_gaps
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import ParseResult, Rejected
from ingestion.store.offline import OfflineWriter
from ingestion.store.quarantine import Quarantine

log = logging.getLogger(__name__)

OHLCV_DATASETS = {"day": OHLCV_DAILY, "minute": OHLCV_MINUTE}
# Workers of one job update its summary from several threads.
_summary_lock = threading.Lock()
# Calendar days fetched before a unit of daily bars so its 20-session features have their history.
_WARMUP_DAYS = WARMUP_SESSIONS * 7 // 5 + 10


@dataclass
class Sinks:
    """Where a job's rows go: Parquet, quarantine, and the record of completed units."""

    offline: OfflineWriter
    quarantine: Quarantine
    coverage: Coverage

    @classmethod
    def for_settings(cls, s: Settings) -> Sinks:
        offline = OfflineWriter(s.data_dir)
        return cls(offline, Quarantine(s.data_dir, writer=offline), Coverage(s.state_dir))


@dataclass
class UnitResult:
    written: int = 0
    quarantined: int = 0
    duplicates: int = 0
    quality: QualityReport = field(default_factory=QualityReport)


def units(timespan: str, interval: Interval) -> list[Interval]:
    """Cut an interval at calendar years (daily bars) or months (minute bars): the unit of work and of resume."""
    lo, hi = interval
    out = []
    while lo <= hi:
        if timespan == "day":
            end = dt.date(lo.year, 12, 31)
        else:
            nxt = dt.date(lo.year + (lo.month == 12), lo.month % 12 + 1, 1)
            end = nxt - dt.timedelta(days=1)
        out.append((lo, min(end, hi)))
        lo = min(end, hi) + dt.timedelta(days=1)
    return out


def _knowable(frame: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    return frame[frame[EVENT_TS] <= now]


def _new_york_dates(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert(calendar.NEW_YORK).dt.date


Fallback = Callable[[str, str, dt.date, dt.date], ParseResult]
"""``fallback(symbol, timespan, start, end)``: bars from another vendor when Polygon is unavailable."""

# Polygon being unavailable, as opposed to the request being wrong: these switch to the fallback.
_UNAVAILABLE = (CircuitOpen, NotEntitled, ServerError, TransportError)


def fetch_unit(
    client: PolygonRESTClient,
    symbol: str,
    timespan: str,
    unit: Interval,
    now: pd.Timestamp,
    fallback: Fallback | None = None,
) -> tuple[pd.DataFrame, list[Rejected], QualityReport]:
    """Bars of one unit, validated, with derived features for daily bars; rows not yet knowable are left out.

    When Polygon is unavailable and ``fallback`` is given, the unit's bars come from it instead (their ``source``
    column says so) and an alert is raised.
    """
    lo, hi = unit
    fetch_lo = lo - dt.timedelta(days=_WARMUP_DAYS) if timespan == "day" else lo
    try:
        parsed = client.fetch_aggregates(symbol, 1, timespan, fetch_lo, hi, adjusted=True)
    except _UNAVAILABLE as exc:
        if fallback is None:
            raise
        from ingestion.ops.alerts import FALLBACK_SOURCE, raise_alert

        raise_alert(
            FALLBACK_SOURCE, f"{symbol} {timespan} {lo}..{hi}: Polygon unavailable ({type(exc).__name__}); "
            "bars from Unusual Whales", symbol=symbol, timespan=timespan,
        )  # fmt: skip
        parsed = fallback(symbol, timespan, fetch_lo, hi)
    good, rejected, report = check_bars(
        parsed.frame, dataset=OHLCV_DATASETS[timespan].name, source=f"polygon aggs {timespan}"
    )
    rejected = [*parsed.rejected, *rejected]
    if timespan == "day":
        good = add_daily_features(good)
    else:
        report.missing_minutes = minute_gaps(good, lo.isoformat(), hi.isoformat())
    days = _new_york_dates(good["window_start"])
    good = good[(days >= lo) & (days <= hi)]
    return _knowable(good, now), rejected, report


def record_rows(dataset: str, written: int, quarantined: int) -> None:
    """Count rows into the pipeline metrics, and raise an alert when a batch is mostly quarantined."""
    from ingestion.ops.alerts import QUARANTINE_SPIKE, raise_alert
    from ingestion.ops.metrics import pipeline_metrics

    metrics = pipeline_metrics()
    metrics.rows_written.labels(dataset).inc(written)
    metrics.rows_quarantined.labels(dataset).inc(quarantined)
    if quarantined and quarantined >= max(10, written):
        raise_alert(QUARANTINE_SPIKE, f"{dataset}: {quarantined} rows quarantined against {written} written",
                    dataset=dataset, quarantined=quarantined, written=written)  # fmt: skip


def last_complete_day(now: pd.Timestamp) -> dt.date:
    """The latest date whose bars are all knowable: today after the close, otherwise yesterday."""
    today: dt.date = now.tz_convert(calendar.NEW_YORK).date()
    if calendar.is_session(today) and now >= calendar.session_close(today):
        return today
    return today - dt.timedelta(days=1)


def backfill_symbol(
    client: PolygonRESTClient,
    sinks: Sinks,
    symbol: str,
    timespan: str,
    start: dt.date,
    end: dt.date,
    summary: JobSummary,
    now: pd.Timestamp | None = None,
    on_unit: Callable[[], None] | None = None,
    fallback: Fallback | None = None,
) -> None:
    """Backfill one symbol's bars for ``[start, end]`` (New York dates), resuming where coverage ends."""
    dataset = OHLCV_DATASETS[timespan]
    now = now or pd.Timestamp.now(tz="UTC")
    last_done = last_complete_day(now)
    todo = [u for gap in missing((start, end), sinks.coverage.get(dataset.name, symbol)) for u in units(timespan, gap)]
    summary.chunks_skipped += len(units(timespan, (start, end))) - len(todo)
    for unit in todo:
        frame, rejected, report = fetch_unit(client, symbol, timespan, unit, now, fallback)
        with _summary_lock:
            summary.fallback_rows[dataset.name] += int((frame["source"] != "polygon").sum())
        frame = frame.assign(**{CREATED_TS: now.floor("us")})
        result = sinks.offline.append(dataset, frame, use_watermark=False)
        if rejected:
            sinks.quarantine.write(rejected)
        record_rows(dataset.name, result.written, len(rejected))
        with _summary_lock:
            summary.rows_written[dataset.name] += result.written
            summary.quarantined[dataset.name] += len(rejected)
            summary.duplicates_skipped[dataset.name] += result.duplicates_in_batch + report.duplicates
            summary.missing_minutes += report.total_missing_minutes
            summary.quality_failures.update(report.failures)
        # Only a unit whose every bar is knowable is done; today's forming bars are fetched again next run.
        complete_to = min(unit[1], last_done)
        if complete_to >= unit[0]:
            sinks.coverage.add(dataset.name, symbol, (unit[0], complete_to))
        if on_unit is not None:
            on_unit()


def count_calls(client: PolygonRESTClient, summary: JobSummary) -> None:
    """Count API calls and cache hits of ``client`` into ``summary``."""

    def hook(result: HTTPResult) -> None:
        with _summary_lock:
            summary.api_calls += 1

    client.http.on_response.append(hook)


def backfill_ohlcv(
    client: PolygonRESTClient,
    sinks: Sinks,
    symbols: Iterable[str],
    start: dt.date,
    end: dt.date,
    timespan: str,
    *,
    max_workers: int = 4,
    progress: Callable[[int], None] | None = None,
    now: pd.Timestamp | None = None,
    fallback: Fallback | None = None,
) -> JobSummary:
    """Backfill bars of many symbols in parallel; one failing symbol is reported and the others go on."""
    if timespan not in OHLCV_DATASETS:
        raise ValueError("timespan must be 'day' or 'minute'")
    summary = JobSummary(f"backfill ohlcv {timespan}")
    count_calls(client, summary)
    hits_before = client.http.cache.hits if client.http.cache is not None else 0

    def tick() -> None:
        if progress is not None:
            progress(1)

    def one(symbol: str) -> None:
        try:
            backfill_symbol(client, sinks, symbol, timespan, start, end, summary, now, tick, fallback)
        except IngestionError as exc:
            with _summary_lock:
                summary.errors[symbol] = str(exc)
            log.warning("backfill of %s stopped: %s (its completed units are kept; rerun to resume)", symbol, exc)

    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="backfill") as pool:
        list(pool.map(one, list(symbols)))
    if client.http.cache is not None:
        summary.cache_hits = client.http.cache.hits - hits_before
    return summary


def unit_count(symbols: list[str], timespan: str, start: dt.date, end: dt.date) -> int:
    """How many units a backfill of ``symbols`` will visit at most (for a progress bar)."""
    return len(symbols) * len(units(timespan, (start, end)))


def latest_online(settings: Settings, redis_url: str, datasets: Iterable[Dataset], summary: JobSummary) -> None:
    """Write the latest offline row per symbol of each dataset to Redis, in the bytes Feast reads."""
    from ingestion.store.feast_repo import open_store
    from ingestion.store.online import materialize_latest

    store = open_store(settings, redis_url)
    for ds in datasets:
        result = materialize_latest(store, ds, settings.data_dir)
        summary.online_keys[ds.name] += result.keys


__all__ = ["ENTITY_KEY", "Sinks", "backfill_ohlcv", "backfill_symbol", "fetch_unit", "latest_online", "units"]
