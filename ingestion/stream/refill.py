"""Refill from REST: the minute bars a stream gap (or the stream's late start) left incomplete.

The WebSocket has no replay, so after a reconnect or a queue overflow the minutes between the last event before
the hole and the first after it are fetched as one-minute aggregates through the REST client and landed in the
offline ``ohlcv_minute`` dataset exactly as a backfill lands its units (:func:`ingestion.jobs.landing.land`: the
same quality checks, quarantine, metrics). The stream never writes its own bars for those minutes (see
:mod:`ingestion.stream.aggregator`), so the record has neither a hole nor a duplicate.

Prices are as traded (``adjusted=False``), like the feed. The fetcher is injected: anything with the signature of
:data:`MinuteFetcher` works, normally :func:`rest_minute_fetcher` over ``PolygonRESTClient.get_aggregates``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ingestion.datasets import CREATED_TS, ENTITY_KEY, OHLCV_MINUTE
from ingestion.errors import IngestionError
from ingestion.jobs.landing import Batch, Landing, land
from ingestion.jobs.summary import JobSummary
from ingestion.store.precedence import ORIGIN_COLUMN, REFILL
from ingestion.stream import minute_ranges
from ingestion.stream.aggregator import RefillWindow

log = logging.getLogger(__name__)

REFILL_SOURCE = "polygon aggs minute (stream refill)"
# The write time is the landing's to stamp, as for every landed row.
_COLUMNS = [c for c in OHLCV_MINUTE.column_names if c != CREATED_TS]

MinuteFetcher = Callable[[str, int, int], pd.DataFrame]
"""``fetch(symbol, start_ms, end_ms)``: raw one-minute bars whose window start lies in ``[start_ms, end_ms]``
(epoch ms UTC), in the standard aggregates frame of ``PolygonRESTClient.get_aggregates``."""


def rest_minute_fetcher(client: Any) -> MinuteFetcher:
    """A fetcher over a ``PolygonRESTClient`` (anything with its ``get_aggregates`` signature)."""

    def fetch(symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frame: pd.DataFrame = client.get_aggregates(
            symbol, 1, "minute", start_ms, end_ms, adjusted=False, sort="asc", limit=50_000
        )
        return frame

    return fetch


@dataclass
class RefillResult:
    """One window's refill: the rows written, the rows quarantined, and per symbol the volume and first open of the
    rows written (for the day state)."""

    window: RefillWindow
    rows: pd.DataFrame
    volume: dict[str, float] = field(default_factory=dict)
    first_open: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    quarantined: int = 0
    counted: dict[str, list[int]] = field(default_factory=dict)
    """Per symbol, the minute starts this window counted (fetched and not refilled before): for ``apply_refill``."""

    @property
    def minutes(self) -> int:
        return len(self.rows)


class Refiller:
    """Fetches a window's minutes for its symbols and lands them; never raises for one bad symbol (its error is
    reported). ``summary`` counts what every window landed."""

    def __init__(self, fetch: MinuteFetcher) -> None:
        self.fetch = fetch
        self.windows = 0
        self.minutes = 0
        self.failures = 0
        self.summary = JobSummary("stream refill")
        self._done: dict[str, set[int]] = {}

    def refill(
        self,
        window: RefillWindow,
        symbols: Iterable[str],
        created: pd.Timestamp,
        landing: Landing,
        refilled: Callable[[str], minute_ranges.Ranges] | None = None,
    ) -> RefillResult:
        """Fetch ``window`` for ``symbols`` (the window's own when it names them) and land them in ``ohlcv_minute``
        through ``landing``, their write time ``created`` (UTC).

        ``refilled(symbol)`` gives the minutes already counted (the aggregator's, which the caller updates with
        :attr:`RefillResult.counted`); without it this refiller remembers them itself, which is right only while
        one process folds the symbol from its first tick (the in-process bridge). A buffered bridge's aggregator
        comes back from a checkpoint that may predate refills this process already ran (a lost lease, a partition
        taken back): the refiller's own memory would then skip their minutes and drop their volume."""
        wanted = sorted(window.symbols) if window.symbols is not None else sorted(set(symbols))
        frames: list[pd.DataFrame] = []
        fetched: list[str] = []
        result = RefillResult(window=window, rows=pd.DataFrame(columns=_COLUMNS))
        lo = pd.Timestamp(window.start_ms, unit="ms", tz="UTC")
        hi = pd.Timestamp(window.end_ms, unit="ms", tz="UTC")
        for symbol in wanted:
            try:
                bars = self.fetch(symbol, window.start_ms, window.end_ms)
            except IngestionError as exc:
                self.failures += 1
                result.errors[symbol] = str(exc)
                log.error("refill %s %s..%s failed: %s", symbol, lo, hi, exc)
                continue
            fetched.append(symbol)
            if bars.empty:
                continue
            starts = pd.to_datetime(bars["window_start"], utc=True)
            minute_ms = starts.astype("int64").to_numpy() // 1_000
            # Windows can share a minute (two drops in one minute, a drop in the seed's last minute): each
            # (symbol, minute) is written, and its volume counted, once.
            if refilled is None:
                done = self._done.setdefault(symbol, set())
                seen = pd.Series(minute_ms).isin(done).to_numpy()
            else:
                seen = minute_ranges.covered(refilled(symbol), minute_ms)
            fresh = (starts >= lo).to_numpy() & (starts <= hi).to_numpy() & ~seen
            result.counted[symbol] = [int(m) for m in minute_ms[fresh]]
            if refilled is None:
                done.update(result.counted[symbol])
            bars = bars[fresh].copy()
            bars[ENTITY_KEY] = symbol
            bars["adjusted"] = False
            # Its own origin, ranked below a backfill's bar of the minute (ingestion.store.precedence).
            bars[ORIGIN_COLUMN] = REFILL
            frames.append(bars)
        if frames:
            result.rows = pd.concat(frames, ignore_index=True).loc[:, _COLUMNS]
        batch = Batch(REFILL_SOURCE, {OHLCV_MINUTE.name: result.rows})
        landed = land(landing, batch, self.summary, created)
        result.rows = landed.frames[OHLCV_MINUTE.name]
        result.quarantined = sum(landed.quarantined.values())
        # The day state takes what was stored: a quarantined bar's volume is no share traded on record.
        for symbol in fetched:
            mine = result.rows[result.rows[ENTITY_KEY] == symbol]
            result.volume[symbol] = float(mine["volume"].sum())
            result.first_open[symbol] = float(mine["open"].iloc[0]) if len(mine) else None
        self.windows += 1
        self.minutes += len(result.rows)
        log.info(
            "refill (%s) %s..%s: %d minute bars for %d symbols%s%s",
            window.reason,
            lo.isoformat(),
            hi.isoformat(),
            len(result.rows),
            len(wanted),
            f", {result.quarantined} quarantined" if result.quarantined else "",
            f", {len(result.errors)} failed" if result.errors else "",
        )
        return result


__all__ = ["REFILL_SOURCE", "MinuteFetcher", "RefillResult", "Refiller", "rest_minute_fetcher"]
