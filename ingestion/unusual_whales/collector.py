"""Continuous collection of Unusual Whales flow alerts: no gap, no duplicate, across restarts.

The vendor has no cursor: ``/api/option-trades/flow-alerts`` answers the newest alerts first, at most ``limit``
(200) per call, windowed by ``newer_than`` / ``older_than`` in whole epoch seconds. The collector therefore:

* asks for everything newer than its watermark minus an **overlap** (60 s by default), because whole seconds cannot
  tell which alerts of the watermark's own second were seen, and because an alert can be published a little after
  its ``created_at``; every alert of the overlap window that was already delivered is recognised by its id;
* pages backwards with ``older_than`` (with one second of overlap) while a page comes back full, so a burst of more
  than ``limit`` alerts between two polls is collected whole;
* hands alerts to the sink oldest first, in batches of ``batch_size`` gathered under a lock;
* persists the watermark and the ids delivered within the overlap window *after* the sink accepted each batch, so a
  crash re-delivers at most one batch (which the offline writer's idempotency absorbs) and a restart neither skips
  nor repeats an alert.

An alert published more than the overlap after its ``created_at`` would be missed; raise ``overlap_s`` if the vendor
is seen to lag more. ``stop()`` flushes the last partial batch before it returns.

For a live feed (``python -m ingestion stream --flow``) the collector also knows *as of when* a poll is complete:
``clock`` (epoch seconds, the vendor's clock: the simulator's in tests) is read before the poll's first request, and
every alert published by that instant minus ``publication_lag_s`` is in the poll's answer. ``flush_each_poll``
hands every new alert to the sink at the end of its poll (no waiting for a full batch), and ``on_poll(as_of)`` runs
after that, so a consumer can roll its windows forward even when no alert came.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ingestion.http.paging import DEFAULT_MAX_PAGES, paginate
from ingestion.unusual_whales.parse import VENDOR

log = logging.getLogger(__name__)

FetchPage = Callable[[int, int | None], pd.DataFrame]
"""``fetch(newer_than_s, older_than_s)`` -> parsed flow alerts (columns include ``id`` and ``created_at`` UTC).

When the parser rejected rows, ``frame.attrs["raw_rows"]`` should hold the page's row count as the vendor sent it."""

Sink = Callable[[pd.DataFrame], None]
OnPoll = Callable[[pd.Timestamp], None]
"""``on_poll(as_of)``: a poll ended; every alert published at or before ``as_of`` (UTC) has reached the sink."""


@dataclass
class CollectorState:
    """Watermark (epoch microseconds of the newest alert delivered) and the ids delivered within the overlap window,
    each with its ``created_at`` in epoch microseconds (so the set can be pruned as the window moves)."""

    watermark_us: int = 0
    recent_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CollectorState:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(int(raw["watermark_us"]), {str(k): int(v) for k, v in raw.get("recent_ids", {}).items()})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"watermark_us": self.watermark_us, "recent_ids": self.recent_ids}))
        # Renamed into place: a crash mid-write leaves the previous state, never half a file.
        tmp.replace(path)


@dataclass
class CollectorStats:
    polls: int = 0
    pages: int = 0
    alerts_seen: int = 0
    duplicates_dropped: int = 0
    saturated_seconds: int = 0
    batches_delivered: int = 0
    alerts_delivered: int = 0
    errors: int = 0
    last_as_of: pd.Timestamp | None = None
    """The as-of instant of the last complete poll (None before the first one)."""


class FlowAlertCollector:
    """Polls flow alerts in a background thread and delivers them to ``sink`` exactly once, oldest first."""

    def __init__(
        self,
        fetch: FetchPage,
        sink: Sink,
        state_path: Path,
        *,
        page_limit: int = 200,
        batch_size: int = 500,
        overlap_s: int = 60,
        interval: float = 5.0,
        start_at: pd.Timestamp | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Callable[[], float] | None = None,
        publication_lag_s: float = 0.0,
        flush_each_poll: bool = False,
        on_poll: OnPoll | None = None,
    ) -> None:
        self._clock = clock
        self.publication_lag_s = publication_lag_s
        self.flush_each_poll = flush_each_poll
        self._on_poll = on_poll
        self._fetch = fetch
        self.max_pages = max_pages
        self._sink = sink
        self._state_path = state_path
        self._page_limit = page_limit
        self.overlap_s = overlap_s
        self.batch_size = batch_size
        self.interval = interval
        self.state = CollectorState.load(state_path)
        if self.state.watermark_us == 0 and start_at is not None:
            self.state.watermark_us = int(pd.Timestamp(start_at).value // 1000)
        self.stats = CollectorStats()
        self._pending: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- one poll ------------------------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Fetch everything newer than the watermark (minus the overlap), queue new alerts, deliver full batches.

        Returns how many new alerts were queued.
        """
        # Read before the first request: the vendor answers with everything published by then (or later).
        as_of = None if self._clock is None else self._clock() - self.publication_lag_s
        queued = self._poll()
        if self.flush_each_poll:
            self._deliver(final=True)
        if as_of is not None:
            stamp = pd.Timestamp(as_of, unit="s", tz="UTC").floor("us")
            self.stats.last_as_of = stamp
            if self._on_poll is not None:
                self._on_poll(stamp)
        return queued

    def _poll(self) -> int:
        newer_than = max(0, math.floor(self.state.watermark_us / 1e6) - self.overlap_s)
        seen: set[str] = set()

        def fetch(older_than: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
            """The page at ``older_than`` and its alerts not already on an earlier page of this poll."""
            page = self._fetch(newer_than, older_than)
            self.stats.pages += 1
            new = page[~page["id"].isin(seen)] if not page.empty else page
            seen.update(page["id"] if not page.empty else ())
            return page, new

        def step_back(older_than: int | None, fetched: tuple[pd.DataFrame, pd.DataFrame]) -> int | None:
            page, new = fetched
            # A page is full by the vendor's row count: rows the parser rejected still took a place in it.
            if page.empty or int(page.attrs.get("raw_rows", len(page))) < self._page_limit:
                return None
            # One second of overlap: the page may have cut through the alerts of its oldest second.
            oldest_s = math.floor(pd.Timestamp(page["created_at"].min()).value / 1e9) + 1
            if older_than is not None and (new.empty or oldest_s >= older_than):
                # A full page inside one second: whole-second windows cannot reach the rest of that second.
                self.stats.saturated_seconds += 1
                log.warning("more than %d flow alerts in one second; the API cannot page within it", self._page_limit)
                oldest_s = older_than - 1
            return None if oldest_s <= newer_than else oldest_s

        fetched = paginate(fetch, step_back, None, max_pages=self.max_pages, vendor=VENDOR, endpoint="flow-alerts")
        pages = [new for page, new in fetched if not page.empty]
        self.stats.polls += 1
        if not pages:
            return 0
        alerts = pd.concat(pages, ignore_index=True).drop_duplicates("id")
        self.stats.alerts_seen += len(alerts)
        with self._lock:
            queued_ids = {i for frame in self._pending for i in frame["id"]}
        delivered = alerts["id"].isin(self.state.recent_ids.keys() | queued_ids).to_numpy()
        self.stats.duplicates_dropped += int(delivered.sum())
        fresh = alerts[~delivered]
        if fresh.empty:
            return 0
        # as_unit: the parser stores microseconds, tests may use nanoseconds; the integer must mean microseconds.
        created_us = pd.to_datetime(fresh["created_at"], utc=True).dt.as_unit("us").astype("int64")
        fresh = fresh.assign(_created_us=created_us.to_numpy()).sort_values(["_created_us", "id"], kind="stable")
        with self._lock:
            self._pending.append(fresh)
        self._deliver(final=False)
        return len(fresh)

    def _deliver(self, final: bool) -> None:
        with self._lock:
            if not self._pending:
                return
            queued = pd.concat(self._pending, ignore_index=True)
            cut = len(queued) if final else (len(queued) // self.batch_size) * self.batch_size
            for start in range(0, cut, self.batch_size):
                batch = queued.iloc[start : start + self.batch_size]
                self._sink(batch.drop(columns=["_created_us"]).reset_index(drop=True))
                self._advance(batch)
                self.stats.batches_delivered += 1
                self.stats.alerts_delivered += len(batch)
            rest = queued.iloc[cut:]
            self._pending = [rest] if len(rest) else []

    def _advance(self, batch: pd.DataFrame) -> None:
        watermark = max(self.state.watermark_us, int(batch["_created_us"].max()))
        # Keep every id that a future poll can fetch again: those within the overlap (plus a second) of the mark.
        horizon = (math.floor(watermark / 1e6) - self.overlap_s - 1) * 1_000_000
        recent = {k: v for k, v in self.state.recent_ids.items() if v >= horizon}
        recent.update({str(i): int(c) for i, c in zip(batch["id"], batch["_created_us"], strict=True) if c >= horizon})
        self.state = CollectorState(watermark, recent)
        self.state.save(self._state_path)

    # -- background thread ---------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="uw-flow-collector", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # keep collecting: the next poll retries from the same watermark
                self.stats.errors += 1
                log.warning("flow-alert poll failed, will retry: %s", exc)
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and deliver the last partial batch."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._deliver(final=True)
