"""The job runs behind the commands and the demo, wired to a :class:`~ingestion.runtime.Runtime`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.jobs.backfill import OHLCV_DATASETS, Fallback, Sinks, backfill_ohlcv, latest_online, unit_count
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import ParseResult
from ingestion.runtime import Runtime


def polygon_client(rt: Runtime, requests_per_minute: int | None = None, **kw: Any) -> Any:
    from ingestion.polygon.rest import PolygonRESTClient

    return PolygonRESTClient(
        rt.polygon_key,
        rt.settings.polygon_base_url,
        redis_url=rt.redis_url,
        requests_per_minute=requests_per_minute,
        **kw,
    )


def run_ohlcv(
    rt: Runtime,
    symbols: list[str],
    start: dt.date,
    end: dt.date,
    timespan: str,
    workers: int = 4,
    requests_per_minute: int | None = None,
    fallback: bool = True,
) -> JobSummary:
    """Backfill Polygon bars; with ``fallback``, units Polygon cannot serve come from Unusual Whales candles."""
    from ingestion.jobs.cli import progress_bar

    sinks = Sinks.for_settings(rt.settings)
    client = polygon_client(rt, requests_per_minute, max_workers=workers)
    bar: Any = progress_bar(unit_count(symbols, timespan, start, end), f"ohlcv {timespan}")
    try:
        summary = backfill_ohlcv(
            client, sinks, symbols, start, end, timespan, max_workers=workers, progress=bar.update,
            fallback=uw_fallback(rt) if fallback else None,
        )  # fmt: skip
    finally:
        bar.close()
        client.close()
    summary.datasets_touched.add(OHLCV_DATASETS[timespan].name)
    return summary.finish()


def uw_fallback(rt: Runtime) -> Fallback:
    """Bars from Unusual Whales candles, for units Polygon cannot serve (see :mod:`ingestion.jobs.fallback`)."""
    from ingestion.jobs.fallback import uw_bars
    from ingestion.jobs.flow import flow_client

    client = flow_client(rt)

    def fetch(symbol: str, timespan: str, start: dt.date, end: dt.date) -> ParseResult:
        return uw_bars(client, symbol, timespan, start, end)

    return fetch


def run_flow(rt: Runtime, symbols: list[str], start: dt.date, end: dt.date, workers: int = 4) -> JobSummary:
    from ingestion.jobs.flow import backfill_flow

    return backfill_flow(rt, symbols, start, end, workers).finish()


def write_online(rt: Runtime, summary: JobSummary) -> None:
    from ingestion.datasets import get

    latest_online(rt.settings, rt.redis_url, [get(n) for n in sorted(summary.datasets_touched)], summary)
