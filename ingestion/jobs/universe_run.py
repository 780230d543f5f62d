"""``backfill ohlcv --universe all`` wired to a :class:`~ingestion.runtime.Runtime` (:mod:`ingestion.jobs.universe`)."""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack

import pandas as pd

from ingestion.jobs.landing import Sinks
from ingestion.jobs.progress import progress_bar
from ingestion.jobs.runs import polygon_client
from ingestion.jobs.summary import JobSummary
from ingestion.jobs.universe import backfill_universe, planned_sessions
from ingestion.runtime import Runtime


def run_universe(
    rt: Runtime, start: dt.date, end: dt.date, workers: int = 2, requests_per_minute: int | None = None
) -> JobSummary:
    """Daily bars of every ticker Polygon answers, one grouped request per session; no fallback vendor (Unusual
    Whales has no market-wide candles), so a failing month stops the run and the next run resumes it."""
    rt.claim_data_dir("polygon")
    sinks = Sinks.for_settings(rt.settings)
    now = pd.Timestamp.now(tz="UTC")
    with ExitStack() as run:
        client = polygon_client(rt, requests_per_minute, max_workers=workers)
        run.callback(client.close)
        progress = run.enter_context(progress_bar(planned_sessions(sinks, start, end, now), "ohlcv day, universe"))
        summary = backfill_universe(client, sinks, start, end, now=now, workers=workers, progress=progress)
    return summary.finish()


__all__ = ["run_universe"]
