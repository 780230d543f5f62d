"""The job runs behind the commands and the demo, wired to a :class:`~ingestion.runtime.Runtime`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.jobs.backfill import OHLCV_DATASETS, Sinks, backfill_ohlcv, latest_online, unit_count
from ingestion.jobs.summary import JobSummary
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
) -> JobSummary:
    from ingestion.jobs.cli import progress_bar

    sinks = Sinks.for_settings(rt.settings)
    client = polygon_client(rt, requests_per_minute, max_workers=workers)
    bar: Any = progress_bar(unit_count(symbols, timespan, start, end), f"ohlcv {timespan}")
    try:
        summary = backfill_ohlcv(client, sinks, symbols, start, end, timespan, max_workers=workers, progress=bar.update)
    finally:
        bar.close()
        client.close()
    summary.datasets_touched.add(OHLCV_DATASETS[timespan].name)
    return summary.finish()


def run_flow(rt: Runtime, symbols: list[str], start: dt.date, end: dt.date, workers: int = 4) -> JobSummary:
    from ingestion.jobs.flow import backfill_flow

    return backfill_flow(rt, symbols, start, end, workers).finish()


def write_online(rt: Runtime, summary: JobSummary) -> None:
    from ingestion.datasets import get

    latest_online(rt.settings, rt.redis_url, [get(n) for n in sorted(summary.datasets_touched)], summary)
