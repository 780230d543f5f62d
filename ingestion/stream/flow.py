"""The live options-flow feed: Unusual Whales flow alerts into ``flow_alerts`` and ``options_flow_intraday``.

One :class:`FlowFeed` wraps the client's :class:`~ingestion.unusual_whales.collector.FlowAlertCollector` (the seed's
``start_options_flow_collection``: polls, de-duplication, batches under a lock, the watermark) and, per poll:

1. lands each batch of new alerts in the raw ``flow_alerts`` dataset through :func:`ingestion.jobs.landing.land`
   (checks, quarantine for refused rows, append-only part files, metrics), *before* the collector saves its
   watermark, so a crash re-delivers rather than loses;
2. rolls the windows forward to the poll's as-of instant (:class:`~ingestion.unusual_whales.rolling.RollingWindows`,
   the same code the backfill runs on the raw dataset) and pushes the rows through the ``options_flow_intraday_push``
   source, online and offline in one ``store.push``: the values are online within one poll of publication;
3. persists the instant the windows were emitted to.

**Restarts, also after kill -9.** The raw dataset is the record of what was delivered: on start the collector's
saved state is reconciled with the stored alerts of its overlap window (ids stored but not yet in the state, from a
kill between landing and saving, count as delivered and move the watermark), and the windows are seeded with the
stored alerts of the hour before their last emitted instant. So no alert is stored twice, none is skipped, and the
windows resume exactly where they stopped (rows re-emitted after a kill between the push and the state save repeat
identical values at the same event times).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ingestion.datasets import EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.jobs.landing import Batch, Landing, land, record_rows
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import Rejected
from ingestion.store.jsonstate import read_json, write_json_atomic
from ingestion.store.objectstore import Root
from ingestion.store.offline import OfflineWriter
from ingestion.unusual_whales.collector import CollectorState, FlowAlertCollector
from ingestion.unusual_whales.raw_alerts import flow_alert_rows, stored_alerts
from ingestion.unusual_whales.rolling import LONGEST_US, RollingWindows

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.ops.health import Check
    from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

log = logging.getLogger(__name__)

PUSH_SOURCE = f"{OPTIONS_FLOW_INTRADAY.name}_push"
SOURCE = "unusual_whales flow-alerts"
COLLECTOR_STATE = "uw_flow_collector.json"
WINDOWS_STATE = "uw_flow_windows.json"
DEFAULT_WARMUP = pd.Timedelta(microseconds=LONGEST_US)
"""A collector with no saved state starts this far back, so its first windows are whole."""


@dataclass
class FlowOptions:
    """How to collect: poll interval (seconds), ticker filter (None: every ticker), how far behind the vendor's
    clock a poll counts as complete, and where a collector with no state starts (default: an hour before now)."""

    interval_s: float = 5.0
    symbols: list[str] | None = None
    publication_lag_s: float = 0.0
    start_at: pd.Timestamp | None = None
    overlap_s: int = 60


@dataclass
class FlowStats:
    """What the feed did. ``counts``: polls, alerts landed / quarantined / late, window rows pushed. ``seconds``: real
    time spent landing raw batches (``land``) and rolling and pushing the windows (``push``). ``latencies_s``:
    publication -> online per alert, on the vendor's clock."""

    counts: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: {"land": 0.0, "push": 0.0})
    latencies_s: list[float] = field(default_factory=list)
    started_wall: float = field(default_factory=time.monotonic)

    def alerts_per_second(self) -> float:
        elapsed = time.monotonic() - self.started_wall
        return self.counts["alerts_landed"] / elapsed if elapsed > 0 else 0.0

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        if not self.latencies_s:
            return None, None
        values = np.asarray(self.latencies_s)
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def reconcile_state(path: Path, data_dir: Root, start_at: pd.Timestamp, overlap_s: int) -> CollectorState:
    """The collector's state, made consistent with the alerts already stored (see the module doc) and saved."""
    state = CollectorState.load(path)
    if state.watermark_us == 0:
        state.watermark_us = int(start_at.value // 1000)
    horizon_us = (math.floor(state.watermark_us / 1e6) - overlap_s - 1) * 1_000_000
    stored = stored_alerts(data_dir, pd.Timestamp(horizon_us, unit="us", tz="UTC"))
    if len(stored):
        # The collector's watermark is on the vendor's created_at; a late alert's event time is later than that.
        published = stored["created_at"] if "created_at" in stored else stored[EVENT_TS]
        created = pd.to_datetime(published.fillna(stored[EVENT_TS]), utc=True).dt.as_unit("us").astype("int64")
        state.recent_ids.update(dict(zip(stored["id"].astype(str), created.astype(int), strict=True)))
        state.watermark_us = max(state.watermark_us, int(created.max()))
    state.save(path)
    return state


class FlowFeed:
    """The flow collector of a live run and what it feeds (see the module doc). ``start``/``stop`` (flushes)."""

    def __init__(
        self,
        client: EnhancedUnusualWhalesClient,
        store: FeatureStore,
        data_dir: Root,
        state_dir: Path,
        opts: FlowOptions | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.data_dir = data_dir
        self.opts = opts or FlowOptions()
        self.stats = FlowStats()
        self.summary = JobSummary("stream flow")
        self.landing = Landing.for_writer(OfflineWriter(data_dir))
        self._windows_path = state_dir / WINDOWS_STATE
        self._new: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)
        now = pd.Timestamp(client.clock(), unit="s", tz="UTC").floor("us")
        start_at = self.opts.start_at if self.opts.start_at is not None else now - DEFAULT_WARMUP
        collector_path = state_dir / COLLECTOR_STATE
        state = reconcile_state(collector_path, data_dir, start_at, self.opts.overlap_s)
        self.windows = self._seeded_windows(pd.Timestamp(state.watermark_us, unit="us", tz="UTC"))
        client.on_rejected = self._quarantine
        self.collector: FlowAlertCollector = client.options_flow_collector(
            self._land,
            state_path=collector_path,
            interval=self.opts.interval_s,
            ticker_symbol=self.opts.symbols,
            overlap_s=self.opts.overlap_s,
            on_poll=self._on_poll,
            publication_lag_s=self.opts.publication_lag_s,
        )

    def _seeded_windows(self, watermark: pd.Timestamp) -> RollingWindows:
        raw = read_json(self._windows_path)
        emitted_to = pd.Timestamp(int(raw["emitted_to_us"]), unit="us", tz="UTC") if raw else None
        windows = RollingWindows()
        # Every stored alert the windows may still need: the hour before the last emitted instant, and anything after
        # it that was landed but not yet rolled in (a kill between landing and pushing).
        since = (emitted_to if emitted_to is not None else watermark) - DEFAULT_WARMUP - windows.keep_extra
        windows.seed(stored_alerts(self.data_dir, since), emitted_to)
        return windows

    # -- the collector's callbacks (its thread) -------------------------------------------------------------------

    def _quarantine(self, rejected: list[Rejected]) -> None:
        self.landing.quarantine.write(rejected)
        record_rows(Counter(), Counter(r.dataset for r in rejected))
        self.stats.counts["alerts_quarantined"] += len(rejected)

    def _land(self, batch: pd.DataFrame) -> None:
        began = time.perf_counter()
        rows = self._stamp_late(flow_alert_rows(batch))
        created = pd.Timestamp.now(tz="UTC").floor("us")
        landed = land(self.landing, Batch(SOURCE, {FLOW_ALERTS.name: rows}), self.summary, created)
        with self._lock:
            self._new.append(landed.frames[FLOW_ALERTS.name])
            self.stats.counts["alerts_landed"] += landed.written[FLOW_ALERTS.name]
            self.stats.seconds["land"] += time.perf_counter() - began

    def _stamp_late(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Late alerts (``created_at`` at or before the instant the windows were already emitted to: an earlier poll
        covered that time and the vendor did not list them) take the moment they were first seen as event time, so
        no row placed before that moment, online or in training, ever counts them; the windows' rows already
        emitted never change."""
        emitted_to = self.windows.emitted_to
        if emitted_to is None or rows.empty:
            return rows
        published = pd.to_datetime(rows[EVENT_TS], utc=True)
        late = (published <= emitted_to).to_numpy()
        if not late.any():
            return rows
        seen = pd.Timestamp(self.client.clock(), unit="s", tz="UTC").floor("us")
        known = max(seen, emitted_to + pd.Timedelta(microseconds=1))
        self.stats.counts["late_alerts"] += int(late.sum())
        rows = rows.copy()
        rows[EVENT_TS] = published.where(~late, known).to_numpy()
        return rows.sort_values([EVENT_TS, "id"], kind="stable").reset_index(drop=True)

    def _on_poll(self, as_of: pd.Timestamp) -> None:
        from feast.data_source import PushMode

        began = time.perf_counter()
        with self._lock:
            new = pd.concat(self._new, ignore_index=True) if self._new else pd.DataFrame()
            self._new = []
        previous = self.windows.emitted_to
        published_s = (
            pd.to_datetime(new[EVENT_TS], utc=True).dt.as_unit("us").astype("int64").to_numpy() / 1e6
            if len(new)
            else np.zeros(0)
        )
        rows = self.windows.advance(new, as_of)
        if len(rows):
            self.store.push(PUSH_SOURCE, rows, to=PushMode.ONLINE_AND_OFFLINE)
            self.stats.counts["rows_pushed"] += len(rows)
        write_json_atomic(self._windows_path, {"emitted_to_us": int(as_of.value // 1000)})
        self.stats.counts["polls"] += 1
        self.stats.seconds["push"] += time.perf_counter() - began
        if previous is not None and len(published_s):
            # Publication -> online on the vendor's clock, for the alerts published since the previous poll (not the
            # history a first poll catches up on): the instant this poll's rows became readable minus created_at.
            online_at = self.client.clock()
            live = published_s[published_s > previous.value / 1e9]
            self.stats.latencies_s.extend((online_at - live).tolist())
        self._publish_metrics()

    def _publish_metrics(self) -> None:
        from ingestion.stream.flow_metrics import flow_metrics

        m = flow_metrics()
        m.alerts_per_second.set(self.stats.alerts_per_second())
        lag = self.poll_lag_s()
        if lag is not None:
            m.poll_lag.set(lag)
        latest = self.client.quota.latest
        if latest is not None and latest.daily_remaining is not None:
            m.quota_left.labels("day").set(latest.daily_remaining)
        if latest is not None and latest.minute_remaining is not None:
            m.quota_left.labels("minute").set(latest.minute_remaining)

    # -- control and reporting ------------------------------------------------------------------------------------

    def poll_lag_s(self) -> float | None:
        """Seconds (vendor clock) since the as-of instant of the last complete poll: how stale the windows are."""
        last = self.collector.stats.last_as_of
        return None if last is None else self.client.clock() - last.value / 1e9

    def start(self) -> None:
        self.collector.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling; the last batch is landed and its watermark saved before this returns."""
        self.collector.stop(timeout)

    @property
    def running(self) -> bool:
        return self.collector.running

    def report(self) -> str:
        p50, p99 = self.stats.latency_percentiles()
        c, n = self.collector.stats, self.stats.counts
        return (
            f"Flow: {n['alerts_landed']} alerts landed ({n['alerts_quarantined']} quarantined, "
            f"{n['late_alerts']} late) in {c.polls} polls / {c.pages} pages, {c.duplicates_dropped} repeats dropped, "
            f"{c.errors} failed polls; "
            f"{n['rows_pushed']} window rows pushed; "
            f"publication -> online (s) p50 {_seconds(p50)} p99 {_seconds(p99)}\n"
        )


def flow_health(feed: FlowFeed, max_lag_s: float | None = None) -> Check:
    """``flow``: the collector runs and its last complete poll is at most ``max_lag_s`` (vendor clock; default three
    poll intervals plus a minute of slow pages) behind."""
    from ingestion.ops.health import Check

    limit = max_lag_s if max_lag_s is not None else 3 * feed.opts.interval_s + 60.0
    lag = feed.poll_lag_s()
    errors = feed.collector.stats.errors
    if not feed.running:
        return Check("flow", False, "flow collector not running")
    if lag is None or lag > limit:
        shown = "no poll completed yet" if lag is None else f"last complete poll {lag:.0f} s ago"
        return Check("flow", False, f"{shown} ({errors} failed polls)")
    return Check(
        "flow", True, f"{feed.stats.counts['alerts_landed']} alerts landed; last complete poll {lag:.0f} s ago"
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def flow_feed(rt: Any, opts: FlowOptions, store: FeatureStore | None = None) -> FlowFeed:
    """A feed on a resolved runtime (the simulator's clock on the simulator), with its own client."""
    from ingestion.jobs.flow import flow_client
    from ingestion.store.feast_repo import open_store

    client = flow_client(rt, workers=1, use_cache=False)
    feast_store = store or open_store(rt.settings, rt.redis_url)
    return FlowFeed(client, feast_store, rt.settings.offline_root, rt.settings.state_dir, opts)


__all__ = ["FlowFeed", "FlowOptions", "FlowStats", "flow_feed", "flow_health", "reconcile_state"]
