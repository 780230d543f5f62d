"""``backfill ohlcv --universe all``: daily bars of every ticker through Polygon's grouped daily endpoint.

One request per session answers the whole market (``/v2/aggs/grouped/locale/us/market/stocks/{date}``), where the
per-ticker path (:mod:`ingestion.jobs.backfill`) sends one request per ticker and year: 1,260 requests for 10,000
tickers x 5 years instead of about 50,000. The universe is what the vendor answers for each session: every ticker that
traded that day, so a ticker listed later or delisted earlier is simply absent from the days it did not trade.

The unit of work and of resume is a calendar **quarter of the whole market** (:func:`quarter_units`), landed through
the same code as every other backfill (:func:`~ingestion.jobs.landing.land`: checks, quarantine, offline append,
metrics, summary):

* fetch: the quarter's sessions, a few requests in flight (``workers``); rows are parsed (``t`` is the end of the
  session there; the parser keys each bar at New York midnight like a range bar, so both paths land on one key), rows
  dated outside the session asked for are quarantined, bad bars too (:func:`~ingestion.jobs.quality.check_bars`);
* identity: each bar is moved from the ticker it traded as to its entity, the ticker the security trades under now
  (``FB`` before 2022-06-09 -> ``META``; ``TWTR`` stays ``TWTR``), by the per-ticker path's rule, learned for the
  whole market from the reference ticker lists and the events of renamed securities only
  (:mod:`ingestion.jobs.universe_identity`), so both paths store one series under one key;
* derived features (:func:`~ingestion.jobs.derived.add_daily_features`) from the quarter's bars after a warm-up of
  :data:`~ingestion.jobs.derived.WARMUP_SESSIONS` earlier sessions: carried over in memory from the previous quarter,
  fetched (not stored) at the first quarter of a run, so a row's values do not depend on where a run started (to the
  last bits of the rolling sums); and from the corporate actions of the whole market, refreshed once per run (every
  split ever, dividends from the warm-up on: only a dividend going ex on a bar's own session enters its features),
  reconciled with the stored ones and landed with the first quarter, as the per-ticker refresh does per symbol;
* part files: the quarter's rows of every ticker go to the writer in one append, which cuts them by the month of their
  event time: one part file per month, plus one for a quarter's last session (published after midnight UTC, so in the
  next month's partition), at any universe size: about 80 for 5 years, where per-ticker units write one per ticker and
  month (600,000 at 10,000 tickers);
* coverage: one record for the whole market, under the symbol :data:`MARKET` in the dataset's coverage file, recorded
  only after the quarter's rows are durable, only up to the last final day, and only when every session answered rows
  (a session answering none is retried by the next run and named in the notes). Its size does not grow with the
  universe, and a per-ticker run reads it as covering each ticker's daily bars (never its minute bars:
  :func:`~ingestion.jobs.engine.todo_units`). A run limited to ``symbols`` records those symbols instead.
  Watermarks are not used by backfills (part files are named by the digest of their rows' keys, so a quarter fetched
  again replaces its own files).

A run killed part-way resumes at the first quarter not recorded; re-running a covered range sends no bar request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import CORPORATE_ACTIONS, ENTITY_KEY, OHLCV_DAILY
from ingestion.errors import IngestionError
from ingestion.http import VendorHTTP
from ingestion.jobs.corporate_actions import Refreshed, reconcile
from ingestion.jobs.coverage import MARKET, Interval, merge, missing
from ingestion.jobs.derived import DERIVED_COLUMNS, WARMUP_SESSIONS, add_daily_features
from ingestion.jobs.engine import calendar_units, counting, outside_requested, rows_in_unit
from ingestion.jobs.landing import Batch, Sinks, land
from ingestion.jobs.quality import check_bars
from ingestion.jobs.summary import JobSummary
from ingestion.jobs.universe_identity import MarketIdentities, ReferenceClient
from ingestion.polygon.actions import ACTION_COLUMNS
from ingestion.rejects import ParseResult, Rejected
from ingestion.shutdown import stop_requested
from ingestion.store.offline import dedupe_on_key, read_dataset

log = logging.getLogger(__name__)

JOB = "backfill ohlcv day (grouped)"
SOURCE = "polygon grouped daily"


class GroupedClient(ReferenceClient, Protocol):
    """What the universe backfill needs of :class:`~ingestion.polygon.rest.PolygonRESTClient`."""

    http: VendorHTTP

    def fetch_grouped_daily(self, day: dt.date, adjusted: bool = True) -> ParseResult: ...

    def fetch_splits(
        self, symbol: str, from_date: dt.date | None = None, to_date: dt.date | None = None, limit: int = 1000
    ) -> ParseResult: ...

    def fetch_dividends(
        self, symbol: str, from_date: dt.date | None = None, to_date: dt.date | None = None, limit: int = 1000
    ) -> ParseResult: ...


def market_actions(client: GroupedClient, sinks: Sinks, since: dt.date) -> Refreshed:
    """The whole market's corporate actions: every split, and dividends going ex from ``since`` on, checked against
    each other and the stored ones (:func:`~ingestion.jobs.corporate_actions.reconcile`)."""
    fetched = ParseResult.concat([client.fetch_splits(""), client.fetch_dividends("", since)])
    stored = read_dataset(sinks.offline.root, CORPORATE_ACTIONS)
    stored = dedupe_on_key(CORPORATE_ACTIONS, stored).loc[:, list(ACTION_COLUMNS)].reset_index(drop=True)
    result = reconcile(fetched.frame, stored)
    return Refreshed(result.actions, result.new, [*fetched.rejected, *result.rejected])


@dataclass
class _Sessions:
    """Bars of some sessions as fetched: the checked bars, the refused rows, and the sessions that answered none."""

    bars: pd.DataFrame
    rejected: list[Rejected]
    empty: list[dt.date]


class UniverseBackfill:
    """One run: fetches quarters of the whole market and lands them (see the module docstring)."""

    def __init__(
        self,
        client: GroupedClient,
        sinks: Sinks,
        *,
        now: pd.Timestamp,
        workers: int = 2,
        symbols: Iterable[str] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        self.client, self.sinks, self.now = client, sinks, now
        self.workers = max(1, workers)
        self.symbols = None if symbols is None else frozenset(symbols)
        self.progress = progress
        self.summary = JobSummary(JOB)
        # The identity as the vendor knows it on the run's day (never later): see universe_identity.
        self.identity = MarketIdentities(client, now.tz_convert(calendar.NEW_YORK).date())
        self._actions: pd.DataFrame | None = None
        self._tail: pd.DataFrame | None = None  # raw bars of the last WARMUP_SESSIONS sessions landed
        self._tail_last: dt.date | None = None

    def run(self, span: Interval) -> JobSummary:
        todo = todo_quarters(self.sinks, span, self.now, self.symbols)
        final = _final_span(span, self.now)
        self.summary.add_skipped(len(quarter_units(final)) - len(todo) if final else 0)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grouped")
        with counting([self.client.http], self.summary), pool:
            for unit in todo:
                if stop_requested():
                    break  # the quarters landed so far are recorded; a rerun starts at this one
                try:
                    self._quarter(pool, unit)
                except IngestionError as exc:
                    self.summary.add_error(f"{unit[0]}..{unit[1]}", str(exc))
                    log.warning("%s stopped at %s: %s (completed quarters kept; rerun to resume)", JOB, unit[0], exc)
                    break  # later quarters need this one's warm-up; a rerun resumes here
        self.summary.touch([OHLCV_DAILY.name])
        return self.summary

    # -- one quarter -------------------------------------------------------------------------------------------

    def _quarter(self, pool: ThreadPoolExecutor, unit: Interval) -> None:
        sessions = [d.date() for d in calendar.sessions(*unit)]
        refreshed = self._refresh(unit[0])
        warm = self._warmup(pool, sessions[0] if sessions else unit[0])
        got = self._fetch(pool, sessions, count_progress=True)
        history = pd.concat([warm.bars, got.bars], ignore_index=True) if len(warm.bars) else got.bars
        derived = add_daily_features(history, self._actions)
        rows = rows_in_unit(derived, unit, self.now, day_of="window_start")
        frames = {OHLCV_DAILY.name: rows}
        rejected = [*warm.rejected, *got.rejected]
        if refreshed is not None:
            rejected += refreshed.rejected
            if len(refreshed.new):
                frames[CORPORATE_ACTIONS.name] = refreshed.new
        land(self.sinks, Batch(SOURCE, frames, rejected), self.summary, self.now.floor("us"))
        # Only now are the quarter's rows durable.
        if got.empty:
            days = ", ".join(d.isoformat() for d in got.empty[:5])
            self.summary.add_note(
                f"{OHLCV_DAILY.name} {unit[0]}..{unit[1]}: no bars answered for {len(got.empty)} session(s) ({days}); "
                "not recorded as covered, retried on the next run"
            )
        else:
            for key in sorted(self.symbols) if self.symbols is not None else [MARKET]:
                self.sinks.coverage.add(OHLCV_DAILY.name, key, unit)
        self._keep_tail(history, sessions[-1] if sessions else None)

    def _refresh(self, first: dt.date) -> Refreshed | None:
        """The market's actions, once per run (before any bar is derived); None after the first quarter."""
        if self._actions is not None:
            return None
        since = first - dt.timedelta(days=WARMUP_SESSIONS * 7 // 5 + 10)
        refreshed = market_actions(self.client, self.sinks, since)
        self._actions = refreshed.actions
        return refreshed

    def _warmup(self, pool: ThreadPoolExecutor, first: dt.date) -> _Sessions:
        """Bars of the WARMUP_SESSIONS sessions before ``first``: the previous quarter's, else fetched now."""
        before = [d.date() for d in calendar.sessions(first - dt.timedelta(days=WARMUP_SESSIONS * 2), first)]
        before = [d for d in before if d < first][-WARMUP_SESSIONS:]
        if self._tail is not None and before and self._tail_last == before[-1]:
            return _Sessions(self._tail, [], [])
        return self._fetch(pool, before, count_progress=False)

    def _keep_tail(self, history: pd.DataFrame, last: dt.date | None) -> None:
        if last is None or history.empty:
            self._tail, self._tail_last = None, None
            return
        days = history["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date
        keep = sorted(set(days))[-WARMUP_SESSIONS:]
        raw = [c for c in history.columns if c not in _DERIVED]
        self._tail = history.loc[days.isin(keep).to_numpy(), raw].reset_index(drop=True)
        self._tail_last = last

    def _fetch(self, pool: ThreadPoolExecutor, sessions: Sequence[dt.date], *, count_progress: bool) -> _Sessions:
        frames: list[pd.DataFrame] = []
        rejected: list[Rejected] = []
        empty: list[dt.date] = []
        for day, parsed in zip(sessions, pool.map(self._one, sessions), strict=True):
            asked, outside = outside_requested(
                parsed.frame, (day, day), dataset=OHLCV_DAILY.name, source=SOURCE, day_of="window_start"
            )
            asked, refused = self.identity.relabel(asked)
            rejected += [*parsed.rejected, *outside, *refused]
            if self.symbols is not None:
                asked = asked[asked[ENTITY_KEY].isin(self.symbols).to_numpy()]
            if asked.empty:
                empty.append(day)
            else:
                frames.append(asked)
            if count_progress and self.progress is not None:
                self.progress(1)
        bars = pd.concat(frames, ignore_index=True) if frames else _EMPTY
        good, refused, _report = check_bars(bars, dataset=OHLCV_DAILY.name, source=SOURCE)
        return _Sessions(good, [*rejected, *refused], empty)

    def _one(self, day: dt.date) -> ParseResult:
        return self.client.fetch_grouped_daily(day, adjusted=False)


def _empty_bars() -> pd.DataFrame:
    from ingestion.polygon.parse import parse_grouped_daily

    return parse_grouped_daily(b'{"status":"OK","resultsCount":0}', adjusted=False, endpoint="grouped").frame


_EMPTY = _empty_bars()
_DERIVED = frozenset(DERIVED_COLUMNS)


def _final_span(span: Interval, now: pd.Timestamp) -> Interval | None:
    """``span`` cut at the last day whose daily bars are final at ``now`` (None when nothing is left)."""
    last = min(span[1], publication.last_final_day(OHLCV_DAILY, now))
    return (span[0], last) if last >= span[0] else None


def todo_quarters(
    sinks: Sinks, span: Interval, now: pd.Timestamp, symbols: Iterable[str] | None = None
) -> list[Interval]:
    """The quarters of ``span`` (cut at the last final day) the market-wide coverage lacks (with ``symbols``: that
    one of the symbols lacks, market-wide records counting for each), oldest first."""
    final = _final_span(span, now)
    if final is None:
        return []
    if symbols is None:
        gaps = missing(final, sinks.coverage.get(OHLCV_DAILY.name, MARKET))
    else:
        gaps = merge([g for s in symbols for g in missing(final, sinks.coverage.covered(OHLCV_DAILY.name, s))])
    return [u for gap in gaps for u in quarter_units(gap)]


def quarter_units(span: Interval) -> list[Interval]:
    """``span`` cut at calendar quarters. A quarter of the whole market (about 630,000 rows at 10,000 tickers) keeps
    memory well under a gigabyte, and its warm-up (30 sessions) costs 50% more feature work rather than the 150% a
    month's would; the writer still cuts the rows into one part file per month of event time."""
    out: list[Interval] = []
    for lo, hi in calendar_units(span, "month"):
        if out and (lo.month - 1) // 3 == (out[-1][0].month - 1) // 3 and lo.year == out[-1][0].year:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def backfill_universe(
    client: GroupedClient,
    sinks: Sinks,
    start: dt.date,
    end: dt.date,
    *,
    now: pd.Timestamp | None = None,
    workers: int = 2,
    symbols: Iterable[str] | None = None,
    progress: Callable[[int], object] | None = None,
) -> JobSummary:
    """Daily bars of every ticker (or of ``symbols``) over ``[start, end]`` through grouped daily; see the module."""
    at = now if now is not None else pd.Timestamp.now(tz="UTC")
    run = UniverseBackfill(client, sinks, now=at, workers=workers, symbols=symbols, progress=progress)
    return run.run((start, end))


def planned_sessions(sinks: Sinks, start: dt.date, end: dt.date, now: pd.Timestamp) -> int:
    """The sessions a run over ``[start, end]`` will fetch (its progress total): those of the quarters not covered."""
    return sum(len(calendar.sessions(*u)) for u in todo_quarters(sinks, (start, end), now))


__all__ = [
    "MARKET",
    "GroupedClient",
    "UniverseBackfill",
    "backfill_universe",
    "market_actions",
    "planned_sessions",
    "quarter_units",
    "todo_quarters",
]
