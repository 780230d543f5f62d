"""The job runs behind the commands and the demo, wired to a :class:`~ingestion.runtime.Runtime`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any

from ingestion.config import Settings
from ingestion.datasets import Dataset
from ingestion.errors import ConfigError
from ingestion.jobs.backfill import OHLCV_DATASETS, Fallback, OhlcvSource, backfill_ohlcv
from ingestion.jobs.engine import planned_work
from ingestion.jobs.landing import Sinks
from ingestion.jobs.progress import progress_bar
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
    fallback: bool = True,
) -> JobSummary:
    """Backfill Polygon bars; with ``fallback``, units Polygon cannot serve come from Unusual Whales candles, when
    that is allowed (:func:`fallback_refusal`; the summary says why not)."""
    rt.claim_data_dir("polygon")
    refusal = fallback_refusal(rt) if fallback else None
    sinks = Sinks.for_settings(rt.settings)
    with ExitStack() as run:
        client = polygon_client(rt, requests_per_minute, max_workers=workers)
        run.callback(client.close)
        second = run.enter_context(uw_fallback(rt)) if fallback and refusal is None else None
        total = planned_work(OhlcvSource(client, timespan), sinks, symbols, (start, end))
        progress = run.enter_context(progress_bar(total, f"ohlcv {timespan}"))
        summary = backfill_ohlcv(
            client, sinks, symbols, start, end, timespan, max_workers=workers, progress=progress, fallback=second
        )
    if refusal is not None:
        summary.add_note(f"no fallback to Unusual Whales: {refusal}")
    summary.touch([OHLCV_DATASETS[timespan].name])
    return summary.finish()


def fallback_refusal(rt: Runtime) -> str | None:
    """Why Unusual Whales bars may not stand in for Polygon's in this run, or None when they may (and then the data
    dir is claimed for this run's Unusual Whales environment, since its candles would land there too).

    Only a source of the same kind may stand in: real for real, simulator for simulator. A real-key run whose
    Unusual Whales side is the built-in simulator (no ``UW_API_TOKEN``) would otherwise store synthetic bars as real
    history during a Polygon outage; its units fail instead, as without a fallback, and a later run resumes them.
    The same holds when the data dir holds Unusual Whales data of another environment.
    """
    if rt.simulated_uw and not rt.simulated_polygon:
        return "Polygon is real and Unusual Whales is the built-in simulator (set UW_API_TOKEN to use it)"
    if rt.simulated_polygon and not rt.simulated_uw:
        return "Polygon is the built-in simulator and Unusual Whales is real (set POLYGON_API_KEY)"
    try:
        rt.claim_data_dir("uw")
    except ConfigError as exc:
        return exc.message
    return None


@contextmanager
def uw_fallback(rt: Runtime) -> Iterator[Fallback]:
    """Bars from Unusual Whales candles, for units Polygon cannot serve (see :mod:`ingestion.jobs.fallback`); the
    client behind them is closed when the block ends."""
    from ingestion.jobs.fallback import uw_bars
    from ingestion.jobs.flow import flow_client

    with flow_client(rt) as client:
        yield partial(uw_bars, client)


def run_flow(rt: Runtime, symbols: list[str], start: dt.date, end: dt.date, workers: int = 4) -> JobSummary:
    from ingestion.jobs.flow import backfill_flow

    rt.claim_data_dir("uw")
    return backfill_flow(rt, symbols, start, end, workers).finish()


def latest_online(settings: Settings, redis_url: str, datasets: Iterable[Dataset], summary: JobSummary) -> None:
    """Write the latest offline row per symbol of each dataset to Redis, in the bytes Feast reads."""
    from ingestion.store.feast_repo import open_store
    from ingestion.store.online import materialize_latest

    store = open_store(settings, redis_url)
    for ds in datasets:
        summary.add_online(ds.name, materialize_latest(store, ds, settings.offline_root).keys)


def write_online(rt: Runtime, summary: JobSummary) -> None:
    from ingestion.datasets import get

    latest_online(rt.settings, rt.redis_url, [get(n) for n in sorted(summary.datasets_touched)], summary)
