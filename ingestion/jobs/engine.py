"""The unit-of-work engine: one driver runs every backfill source the same way.

A :class:`Source` only says which datasets it feeds, how it cuts a date range into units (a calendar year of daily
bars, a month of minute bars or of Unusual Whales flow), and fetches one unit of one symbol into a
:class:`~ingestion.jobs.landing.Batch`. :func:`run_units` does the rest, identically for each source:

* resume: a symbol's units are the parts of its range that :class:`~ingestion.jobs.coverage.Coverage` lacks for
  any of the source's datasets, oldest first; the others are counted as skipped;
* landing (:func:`~ingestion.jobs.landing.land`): quality checks, quarantine, offline append, metrics, summary;
  rows a vendor answered outside the dates it was asked for are quarantined (:func:`outside_requested`), never
  stored as if in range;
* coverage: a unit is recorded only after its rows are durable, and only up to the last day whose rows are all
  knowable (today's forming rows are fetched again by a later run); part files are named by the digest of their
  rows' keys, so a unit interrupted and fetched again replaces its own files;
* isolation: a symbol that fails with an :class:`~ingestion.errors.IngestionError` is reported in the summary and
  stops, its completed units kept; the other symbols go on (a thread pool runs symbols in parallel);
* API calls and cache hits of the source's HTTP cores are counted while the run lasts, through a hook that is
  removed when it ends;
* progress is counted in symbol-sessions, planned up front from coverage (:func:`planned_work`), and reported as
  each unit lands, or within a unit as a source fetches it (:func:`sessions_fetched`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, Protocol

import pandas as pd

from ingestion import calendar
from ingestion.datasets import EVENT_TS, Dataset
from ingestion.errors import IngestionError
from ingestion.http import HTTPResult, VendorHTTP
from ingestion.jobs.coverage import Interval, merge, missing
from ingestion.jobs.landing import Batch, Sinks, land
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import Rejected
from ingestion.shutdown import stop_requested

log = logging.getLogger(__name__)

UnitSize = Literal["year", "month"]

OUTSIDE_REQUESTED = "outside the requested range"
"""The quarantine reason of a row dated outside the dates its request asked for."""


class Source(Protocol):
    """Where a backfill's rows come from; everything else is the engine's."""

    @property
    def job(self) -> str:
        """The job's name in its summary and logs, e.g. ``backfill ohlcv day``."""
        ...

    @property
    def datasets(self) -> Sequence[Dataset]:
        """The datasets a unit feeds (a unit is done when it is done for all of them)."""
        ...

    @property
    def http(self) -> Sequence[VendorHTTP]:
        """The HTTP cores whose calls and cache hits the run counts."""
        ...

    def units(self, span: Interval) -> list[Interval]:
        """``span`` (New York dates) cut into this source's units, oldest first."""
        ...

    def fetch(self, symbol: str, unit: Interval, now: pd.Timestamp) -> Batch:
        """The rows of ``symbol`` for ``unit`` that are knowable at ``now`` (UTC), per dataset."""
        ...


def calendar_units(span: Interval, size: UnitSize) -> list[Interval]:
    """Cut ``span`` at calendar years or months: the unit of work and of resume."""
    lo, hi = span
    out = []
    while lo <= hi:
        if size == "year":
            end = dt.date(lo.year, 12, 31)
        else:
            nxt = dt.date(lo.year + (lo.month == 12), lo.month % 12 + 1, 1)
            end = nxt - dt.timedelta(days=1)
        out.append((lo, min(end, hi)))
        lo = min(end, hi) + dt.timedelta(days=1)
    return out


def last_complete_day(now: pd.Timestamp) -> dt.date:
    """The latest New York date whose rows are all knowable at ``now``: today after the close, else yesterday."""
    today: dt.date = now.tz_convert(calendar.NEW_YORK).date()
    if calendar.is_session(today) and now >= calendar.session_close(today):
        return today
    return today - dt.timedelta(days=1)


def outside_requested(
    frame: pd.DataFrame, requested: Interval, *, dataset: str, source: str, day_of: str = EVENT_TS
) -> tuple[pd.DataFrame, list[Rejected]]:
    """Split off the rows whose ``day_of`` time lies outside the dates ``requested`` of the vendor, as rejects.

    A vendor answering rows it was not asked for (a shifted timestamp, a server ignoring the range) is at fault: such
    a row is quarantined with :data:`OUTSIDE_REQUESTED`, not trimmed away unseen, and never feeds the rows kept (a
    bar from years away would skew the warm-up of daily features). The bounds are generous by a few hours: the
    first date from its UTC midnight, the last to its New York midnight, so either reading of a date range passes.
    """
    lo = pd.Timestamp(requested[0]).tz_localize("UTC")
    hi = (pd.Timestamp(requested[1]) + pd.Timedelta(days=1)).tz_localize(calendar.NEW_YORK)
    times = frame[day_of]
    inside = ((times >= lo) & (times < hi)).to_numpy()
    rejected = [Rejected(dataset, source, OUTSIDE_REQUESTED, row) for row in frame[~inside].to_dict("records")]
    return frame[inside].reset_index(drop=True), rejected


def rows_in_unit(frame: pd.DataFrame, unit: Interval, now: pd.Timestamp, day_of: str = EVENT_TS) -> pd.DataFrame:
    """Rows whose ``day_of`` time falls on New York days ``unit`` and whose event time is not after ``now``.

    What it leaves out was fetched on purpose (a warm-up or history window before the unit, belonging to other
    units) or is not knowable yet (a later run stores it); rows outside what was asked of the vendor at all are
    :func:`outside_requested`'s.
    """
    days = frame[day_of].dt.tz_convert(calendar.NEW_YORK).dt.date
    keep = (days >= unit[0]) & (days <= unit[1]) & (frame[EVENT_TS] <= now)
    return frame[keep.to_numpy()].reset_index(drop=True)


def todo_units(source: Source, sinks: Sinks, symbol: str, span: Interval) -> list[Interval]:
    """The units of ``span`` that coverage lacks for any of the source's datasets, oldest first."""
    gaps = [g for ds in source.datasets for g in missing(span, sinks.coverage.get(ds.name, symbol))]
    return [u for gap in merge(gaps) for u in source.units(gap)]


Progress = Callable[[int], object]
"""``progress(n)``: ``n`` more units of work done. Work is counted in symbol-sessions (one symbol's trading day), so a
bar's total (:func:`planned_work`) and its rate, and so its ETA, mean the same for every source and unit size."""

_unit_step: ContextVar[Callable[[int], None] | None] = ContextVar("unit_step", default=None)


def unit_work(unit: Interval) -> int:
    """The work of one unit: its sessions (at least one, since even a unit without a session costs a request)."""
    return max(1, len(calendar.sessions(*unit)))


def planned_work(source: Source, sinks: Sinks, symbols: Iterable[str], span: Interval) -> int:
    """The work a run over ``symbols`` will report: the sessions of every unit coverage lacks (a resumed run's bar
    counts only what is left)."""
    return sum(unit_work(u) for symbol in symbols for u in todo_units(source, sinks, symbol, span))


def sessions_fetched(n: int = 1) -> None:
    """Called by a source between the requests of a long unit: ``n`` more of the unit's sessions are fetched.

    The engine counts them toward the run's progress while the unit is under way, so that a bar moves during a unit
    that takes many requests (a month of flow is about 45); outside a run it does nothing. An ambient hook rather
    than an argument of :meth:`Source.fetch`: a source that fetches a unit in one request has nothing to report.
    """
    step = _unit_step.get()
    if step is not None:
        step(n)


def _ignore(n: int) -> None:
    del n


class _UnitShare:
    """One unit's share of a run's progress: sessions reported while it is fetched, the rest once it has landed (the
    last session's share waits for that, since a unit is done only when its rows are durable)."""

    def __init__(self, work: int, progress: Progress) -> None:
        self.left = work
        self.progress = progress

    def step(self, n: int) -> None:
        n = min(n, self.left - 1)
        if n > 0:
            self.left -= n
            self.progress(n)

    def finish(self) -> None:
        if self.left > 0:
            self.progress(self.left)
            self.left = 0


@contextmanager
def counting(cores: Iterable[VendorHTTP], summary: JobSummary) -> Iterator[None]:
    """Count the responses and cache hits of ``cores`` into ``summary`` while the block runs; the hooks go on exit."""
    cores = list(cores)

    def hook(result: HTTPResult) -> None:
        summary.add_calls()

    hits_before = [c.cache.hits if c.cache is not None else 0 for c in cores]
    for core in cores:
        core.on_response.append(hook)
    try:
        yield
    finally:
        for core, before in zip(cores, hits_before, strict=True):
            core.on_response.remove(hook)
            if core.cache is not None:
                summary.add_cache_hits(core.cache.hits - before)


def backfill_symbol(
    source: Source,
    sinks: Sinks,
    symbol: str,
    span: Interval,
    summary: JobSummary,
    now: pd.Timestamp,
    progress: Progress | None = None,
) -> None:
    """Backfill one symbol's units of ``span``, resuming where coverage ends; ``progress`` gets each unit's sessions
    (see :func:`sessions_fetched`)."""
    last_done = last_complete_day(now)
    todo = todo_units(source, sinks, symbol, span)
    summary.add_skipped(len(source.units(span)) - len(todo))
    for lo, hi in todo:
        if stop_requested():
            return  # SIGTERM or Ctrl-C: the unit under way has landed; a rerun starts at this one
        share = _UnitShare(unit_work((lo, hi)), progress or _ignore)
        token = _unit_step.set(share.step)
        try:
            batch = source.fetch(symbol, (lo, hi), now)
        finally:
            _unit_step.reset(token)
        land(sinks, batch, summary, now.floor("us"))
        # Only now are the unit's rows durable; its coverage ends at the last day whose rows are all knowable.
        complete_to = min(hi, last_done)
        if complete_to >= lo:
            for ds in source.datasets:
                sinks.coverage.add(ds.name, symbol, (lo, complete_to))
        share.finish()


def run_units(
    source: Source,
    sinks: Sinks,
    symbols: Iterable[str],
    span: Interval,
    *,
    now: pd.Timestamp,
    workers: int = 4,
    progress: Progress | None = None,
) -> JobSummary:
    """Backfill ``symbols`` over ``span`` (New York dates) from ``source``, in parallel, and say what happened.

    ``now`` (UTC) decides what is knowable; ``progress(n)`` is called, from one thread at a time, as ``n`` more
    sessions are done: in all, :func:`planned_work` of the same arguments, less what units that failed (or were
    stopped) had left.
    """
    summary = JobSummary(source.job)
    lock = threading.Lock()

    def report(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    def one(symbol: str) -> None:
        try:
            backfill_symbol(source, sinks, symbol, span, summary, now, report)
        except IngestionError as exc:
            summary.add_error(symbol, str(exc))
            log.warning("%s of %s stopped: %s (its completed units are kept; rerun to resume)", source.job, symbol, exc)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="backfill")
    with counting(source.http, summary), pool:
        list(pool.map(one, list(symbols)))
    return summary


__all__ = [
    "OUTSIDE_REQUESTED",
    "Progress",
    "Source",
    "backfill_symbol",
    "calendar_units",
    "counting",
    "last_complete_day",
    "outside_requested",
    "planned_work",
    "rows_in_unit",
    "run_units",
    "sessions_fetched",
    "todo_units",
    "unit_work",
]
