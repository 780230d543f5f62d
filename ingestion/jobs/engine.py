"""The unit-of-work engine: one driver runs every backfill source the same way.

A :class:`Source` only says which datasets it feeds, how it cuts a date range into units (a calendar year of daily
bars, a month of minute bars or of Unusual Whales flow), and fetches one unit of one symbol into a
:class:`~ingestion.jobs.landing.Batch`. :func:`run_units` does the rest, identically for each source:

* resume: a symbol's units are the parts of its range that :class:`~ingestion.jobs.coverage.Coverage` lacks for
  any of the source's datasets (its own records or the dataset's market-wide one), oldest first; the others are
  counted as skipped;
* landing (:func:`~ingestion.jobs.landing.land`): quality checks, quarantine, offline append, metrics, summary;
  rows a vendor answered outside the dates it was asked for are quarantined (:func:`outside_requested`), never
  stored as if in range;
* coverage: a unit is recorded only after its rows are durable, and per dataset only up to the last day whose rows
  are all final under the dataset's publication rule (:func:`ingestion.publication.last_final_day`: a daily bar
  fetched at 16:05 is fetched again after 20:15); part files are named by the digest of their rows' keys, so a unit
  interrupted and fetched again replaces its own files;
* empty answers: for a dataset with rows on every session, a unit that landed no rows is recorded only where it is
  proven empty (before the listing or after the delisting, :mod:`ingestion.jobs.listing`); the rest is retried on
  the next run and named in the summary's notes;
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

from ingestion import calendar, publication
from ingestion.datasets import EVENT_TS, Dataset
from ingestion.errors import IngestionError
from ingestion.http import HTTPResult, VendorHTTP
from ingestion.jobs.coverage import Interval, merge, missing
from ingestion.jobs.landing import Batch, Landed, Sinks, land
from ingestion.jobs.listing import Listing, Listings
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
    """The latest New York date whose session is over at ``now``: today after the close, else yesterday.

    What a source may ask a vendor for; whether the day's rows are final (and so covered) is the dataset's
    publication rule's business (:func:`ingestion.publication.last_final_day`).
    """
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


def rows_in_unit(frame: pd.DataFrame, unit: Interval, now: pd.Timestamp, day_of: str | None = None) -> pd.DataFrame:
    """Rows whose day falls on New York days ``unit`` and whose event time is not after ``now``.

    A row's day is the New York date of its ``day_of`` time; by default its ``date`` column when it has one (a daily
    row may be published on a later day: ETF flows the next morning) and else the date of its event time. What it
    leaves out was fetched on purpose (a warm-up or history window before the unit, belonging to other units) or is
    not published yet (a later run stores it); rows outside what was asked of the vendor at all are
    :func:`outside_requested`'s.
    """
    if day_of is None and "date" in frame:
        days = pd.Series(list(frame["date"]), index=frame.index, dtype=object)
    else:
        days = frame[day_of or EVENT_TS].dt.tz_convert(calendar.NEW_YORK).dt.date
    keep = (days >= unit[0]) & (days <= unit[1]) & (frame[EVENT_TS] <= now)
    return frame[keep.to_numpy()].reset_index(drop=True)


def todo_units(source: Source, sinks: Sinks, symbol: str, span: Interval) -> list[Interval]:
    """The units of ``span`` that coverage lacks for any of the source's datasets, oldest first. A market-wide record
    of a dataset (a universe run's, :data:`~ingestion.jobs.coverage.MARKET`) covers the symbol too: its rows are
    stored under the symbol's entity by the same identity rule (:mod:`ingestion.jobs.identity`)."""
    gaps = [g for ds in source.datasets for g in missing(span, sinks.coverage.covered(ds.name, symbol))]
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


class _Covering:
    """Records one symbol's landed units in coverage, per dataset, up to the last final day and only where an empty
    answer is proven empty; the listing is asked for once, at the first empty answer."""

    def __init__(self, sinks: Sinks, symbol: str, now: pd.Timestamp, listings: Listings | None) -> None:
        self.sinks, self.symbol, self.now, self.listings = sinks, symbol, now, listings
        self._listing: Listing | None = None
        self._asked = False

    def listing(self) -> Listing | None:
        if not self._asked and self.listings is not None:
            self._listing, self._asked = self.listings(self.symbol), True
        return self._listing

    def record(self, datasets: Sequence[Dataset], unit: Interval, landed: Landed, summary: JobSummary) -> None:
        for ds in datasets:
            final_to = min(unit[1], publication.last_final_day(ds, self.now))
            if final_to < unit[0]:
                continue
            done = (unit[0], final_to)
            if ds.rows_every_session and _no_rows(landed, ds) and len(calendar.sessions(*done)):
                listing = self.listing()
                proven = listing.outside(done) if listing is not None else []
                for part in proven:
                    self.sinks.coverage.add(ds.name, self.symbol, part)
                if proven != [done]:
                    summary.add_note(
                        f"{ds.name} {self.symbol} {done[0]}..{done[1]}: no rows landed inside the listing (none "
                        "answered, or all quarantined); not recorded as covered, retried on the next run"
                    )
                continue
            self.sinks.coverage.add(ds.name, self.symbol, done)


def _no_rows(landed: Landed, dataset: Dataset) -> bool:
    frame = landed.frames.get(dataset.name)
    return frame is None or frame.empty


def backfill_symbol(
    source: Source,
    sinks: Sinks,
    symbol: str,
    span: Interval,
    summary: JobSummary,
    now: pd.Timestamp,
    progress: Progress | None = None,
    listings: Listings | None = None,
) -> None:
    """Backfill one symbol's units of ``span``, resuming where coverage ends; ``progress`` gets each unit's sessions
    (see :func:`sessions_fetched`); ``listings`` proves empty ranges (default: the source's ``listing`` method, if
    it has one)."""
    covering = _Covering(sinks, symbol, now, listings or getattr(source, "listing", None))
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
        landed = land(sinks, batch, summary, now.floor("us"))
        # Only now are the unit's rows durable.
        covering.record(source.datasets, (lo, hi), landed, summary)
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
    listings: Listings | None = None,
) -> JobSummary:
    """Backfill ``symbols`` over ``span`` (New York dates) from ``source``, in parallel, and say what happened.

    ``now`` (UTC) decides what is knowable; ``progress(n)`` is called, from one thread at a time, as ``n`` more
    sessions are done: in all, :func:`planned_work` of the same arguments, less what units that failed (or were
    stopped) had left. ``listings`` proves empty ranges (see :func:`backfill_symbol`).
    """
    summary = JobSummary(source.job)
    lock = threading.Lock()

    def report(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    def one(symbol: str) -> None:
        try:
            backfill_symbol(source, sinks, symbol, span, summary, now, report, listings)
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
