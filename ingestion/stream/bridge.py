"""The stream bridge: WebSocket ticks -> ``realtime_quotes`` in Feast's online store, and ticks' bars offline.

Three threads, one direction::

    I/O thread      socket -> bounded FrameQueue                        (ingestion.polygon.websocket)
    consumer        queue -> validate/dedupe -> Aggregator -> every flush_interval_ms: online write
    offline worker  Parquet appends and REST refills, in submission order (fsync and HTTP never stall the consumer)

* **Online**: every ``flush_interval_ms`` (default 100 ms) the rows of the symbols that changed go to Redis in one
  round trip through :class:`~ingestion.store.online.OnlineWriter`, which writes the bytes Feast's Redis store
  writes, so stock ``get_online_features`` reads them. ``online="feast_push"`` uses Feast's own
  ``FeatureStore.push`` instead (fine for a handful of symbols; its ceiling is about 10-14k rows/s).
* **Offline**: every ``offline_interval_s`` the ``realtime_quotes`` rows and the closed minute bars
  (``ohlcv_minute``, as traded) are appended as new part files (:class:`~ingestion.store.offline.OfflineWriter`),
  never through Feast's rewrite-the-file offline push. Writes bypass the per-symbol watermark: the stream cannot be
  replayed, and its rows are keyed, so a rewrite can only replace a row, never add one.
* **Gaps**: a reconnect or a queue overflow opens a window from the last event before the hole to the first after
  it; once its minutes are closed, the worker refills them from REST (:mod:`ingestion.stream.refill`), writes them
  offline, and hands the REST volume back to the aggregator, so ``day_volume`` counts each share once.
* **Freshness**: after each online write, every tick included gives ``readable_at - SIP time`` (and each frame
  ``readable_at - received_at``) in ms, into a histogram; :meth:`StreamBridge.freshness` reports p50/p99. "Readable"
  means the Redis write returned, after which ``get_online_features`` sees the value.
* **Shutdown** (:meth:`StreamBridge.stop`): the client disconnects, every queued frame is processed, a last online
  and offline flush runs, refills of closed minutes run, and the worker drains before ``run`` returns. Minute bars
  still open (the minute in progress) are incomplete and are not written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from ingestion.datasets import OHLCV_MINUTE, REALTIME_QUOTES
from ingestion.jobs.landing import Landing
from ingestion.polygon.websocket import PolygonWebSocketClient, StreamGap
from ingestion.stream.aggregator import Aggregator, RefillWindow
from ingestion.stream.refill import Refiller, RefillResult

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.store.offline import OfflineWriter

log = logging.getLogger(__name__)

PUSH_SOURCE = "realtime_quotes_push"
LIVE_SIP_MS = 3_600_000
"""SIP times further than this from the wall clock are a replay, not a live feed (no SIP freshness for them)."""


class OnlineSink(Protocol):
    """Writes a frame of one feature view to the online store."""

    def write(self, view: str, frame: pd.DataFrame) -> Any: ...


class FeastPushSink:
    """Online writes through Feast's own ``FeatureStore.push`` to the view's PushSource (the slow, stock path)."""

    def __init__(self, store: FeatureStore, push_source: str = PUSH_SOURCE) -> None:
        self.store = store
        self.push_source = push_source

    def write(self, view: str, frame: pd.DataFrame) -> None:
        from feast.data_source import PushMode

        del view  # the push source names the view
        self.store.push(self.push_source, frame, to=PushMode.ONLINE)


class LatencyHistogram:
    """Latencies in whole milliseconds, in 1-ms buckets up to ``max_ms`` (larger values land in the last bucket)."""

    def __init__(self, max_ms: int = 120_000) -> None:
        self.counts = np.zeros(max_ms + 1, dtype=np.int64)
        self.max_ms = max_ms

    def add(self, latencies_ms: np.ndarray) -> None:
        if len(latencies_ms):
            clipped = np.clip(latencies_ms, 0, self.max_ms).astype(np.int64)
            # In place: a bincount over every bucket allocated and added 120,001 counters per call (76 us even for
            # one sample), and the stream's reader and consumers add samples on every append and read.
            np.add.at(self.counts, clipped, 1)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in ms, or None with no samples."""
        total = self.total
        if total == 0:
            return None
        rank = int(np.ceil(q / 100.0 * total))
        return float(np.searchsorted(np.cumsum(self.counts), max(rank, 1)))


@dataclass
class BridgeStats:
    """Counters of one bridge run. Latencies are ms; rows are rows."""

    flushes: int = 0
    online_rows: int = 0
    online_seconds: float = 0.0
    offline_quote_rows: int = 0
    offline_bar_rows: int = 0
    refill_windows: int = 0
    refill_minutes: int = 0
    refill_errors: int = 0
    windows_without_refill: int = 0
    offline_errors: int = 0
    ticks_not_live: int = 0
    refills: list[dict[str, Any]] = field(default_factory=list)


class _OfflineWorker:
    """Runs offline appends and refills in submission order on its own thread."""

    def __init__(self, bridge: StreamBridge) -> None:
        self.bridge = bridge
        self.jobs: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="stream-offline", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, kind: str, payload: Any) -> None:
        self.jobs.put((kind, payload))

    def wait_idle(self) -> None:
        """Block until every submitted job has run."""
        if self.thread.is_alive():
            self.jobs.join()

    def close(self, timeout: float = 120.0) -> None:
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                return
            kind, payload = job
            try:
                if kind == "append":
                    self.bridge._append_offline(*payload)
                else:
                    self.bridge._run_refill(*payload)
            except Exception:
                # Logged and counted: a failed offline write must not take the live stream down with it.
                self.bridge.stats.offline_errors += 1
                log.exception("stream offline %s failed", kind)
            finally:
                self.jobs.task_done()


class StreamBridge:
    """Ticks from a :class:`PolygonWebSocketClient` into Feast's online store and the Parquet offline store.

    ``online`` is a sink (an :class:`~ingestion.store.online.OnlineWriter` by default, or :class:`FeastPushSink`);
    ``offline`` an :class:`~ingestion.store.offline.OfflineWriter` or None (online only); ``refiller`` a
    :class:`~ingestion.stream.refill.Refiller` or None (gaps are then only counted). ``flush_interval_ms`` bounds
    the age of a tick in the consumer before its online write; ``offline_interval_s`` how often part files are cut.
    """

    def __init__(
        self,
        client: PolygonWebSocketClient,
        online: OnlineSink | None,
        offline: OfflineWriter | None = None,
        refiller: Refiller | None = None,
        *,
        flush_interval_ms: int = 100,
        offline_interval_s: float = 2.0,
        lateness_ms: int = 2_000,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if flush_interval_ms <= 0:
            raise ValueError("flush_interval_ms must be positive")
        self.client = client
        self.online = online
        self.offline = offline
        self.refiller = refiller
        self.flush_interval_ms = flush_interval_ms
        self.offline_interval_s = offline_interval_s
        self.clock_ns = clock_ns
        self.aggregator = Aggregator(lateness_ms=lateness_ms)
        self.stats = BridgeStats()
        self._dropped_published = 0
        self.sip_latency = LatencyHistogram()
        self.recv_latency = LatencyHistogram()
        self._stop = threading.Event()
        self._offline_quotes: list[pd.DataFrame] = []
        self._offline_bars: list[pd.DataFrame] = []
        self._corrections: deque[RefillResult] = deque()
        self._worker = _OfflineWorker(self)
        self.last_rows: pd.DataFrame | None = None
        client.register_callback("T.", self.aggregator.on_trades)
        client.register_callback("Q.", self.aggregator.on_quotes)
        client.register_gap_callback(self._on_gap)
        client.track_receipts()

    # -- control ------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to shut down cleanly (safe from any thread or a signal handler)."""
        self._stop.set()
        self.client.wake()

    def run(self, seconds: float | None = None, until: Callable[[], bool] | None = None) -> BridgeStats:
        """Connect, then process ticks until :meth:`stop`, ``seconds`` elapse, or ``until()`` is true; then shut down.

        Re-raises the client's fatal error (auth_failed, max_connections) after the shutdown flush.
        """
        self._worker.start()
        deadline = None if seconds is None else time.monotonic() + seconds
        interval = self.flush_interval_ms / 1000.0
        try:
            # Not connect(): a vendor that is down at start is retried forever like any drop, not fatal here.
            self.client.start()
            next_flush = time.monotonic() + interval
            next_offline = time.monotonic() + self.offline_interval_s
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if until is not None and until():
                    break
                if self.client.stopped:
                    break
                self.client.dispatch(timeout=max(0.0, min(next_flush - now, interval)))
                now = time.monotonic()
                if now >= next_flush:
                    self.flush()
                    next_flush = now + interval
                if now >= next_offline:
                    self._cut_offline()
                    next_offline = now + self.offline_interval_s
        finally:
            self._shutdown()
        if self.client.error is not None:
            raise self.client.error
        return self.stats

    def _shutdown(self) -> None:
        self.client.disconnect()
        # Everything the socket delivered before the close is processed and written: no batch is lost.
        while self.client.dispatch(timeout=0.0, max_frames=4096):
            pass
        # Refills first, so the last rows carry their day-volume corrections: a later row with the same event time
        # would be skipped by the online store (it only takes strictly newer rows, as Feast does).
        self._release_bars_and_refills(final=True)
        self._worker.wait_idle()
        self.flush(final=True)
        self._cut_offline()
        self._worker.close()

    def _now(self) -> pd.Timestamp:
        # Microseconds: the store's precision (Feast warns about, and drops, nanoseconds).
        return pd.Timestamp(self.clock_ns() // 1_000 * 1_000, unit="ns", tz="UTC")

    # -- consumer thread ----------------------------------------------------------------------------------------

    def _on_gap(self, gap: StreamGap) -> None:
        log.warning(
            "stream gap (%s, %d frames dropped): the hole will be refilled from REST", gap.reason, gap.dropped_frames
        )
        self.aggregator.on_gap()

    def flush(self, final: bool = False) -> None:
        """Write the changed symbols' rows online now, and queue offline rows, bars and ready refills."""
        self._apply_corrections()
        agg = self.aggregator
        created = self._now()
        rows = agg.take_rows(created)
        times = agg.take_tick_times()
        receipts = self.client.take_receipts()
        if len(rows):
            began = time.perf_counter()
            if self.online is not None:
                self.online.write(REALTIME_QUOTES.name, rows)
            self.stats.online_seconds += time.perf_counter() - began
            self.stats.online_rows += len(rows)
            done_ns = self.clock_ns()
            if times:
                sip_lag = done_ns // 1_000_000 - np.asarray(times, dtype=np.int64)
                # A replayed session (the simulator) has SIP times from another day: only a live feed's count.
                if abs(int(np.median(sip_lag))) < LIVE_SIP_MS:
                    self.sip_latency.add(sip_lag)
                else:
                    self.stats.ticks_not_live += len(sip_lag)
            if receipts:
                self.recv_latency.add((done_ns - np.asarray(receipts, dtype=np.int64)) // 1_000_000)
            self._offline_quotes.append(rows)
            self.last_rows = rows
        self.stats.flushes += 1
        self._publish_metrics()
        self._release_bars_and_refills(final)

    def _publish_metrics(self) -> None:
        """Queue depth, lag and drops of the client as Prometheus gauges/counters (read by /metrics)."""
        from ingestion.ops.metrics import pipeline_metrics

        metrics, c = pipeline_metrics(), self.client.stats
        metrics.queue_depth.set(self.client.queue_depth())
        metrics.stream_lag.set(c.lag_ms / 1000.0)
        dropped = c.frames_dropped - self._dropped_published
        if dropped > 0:
            metrics.stream_dropped.labels("queue_full").inc(dropped)
            self._dropped_published = c.frames_dropped

    def _release_bars_and_refills(self, final: bool) -> None:
        agg = self.aggregator
        agg.close_bars(final=final)
        bars = agg.take_bars(self._now())
        if len(bars):
            self._offline_bars.append(bars)
        windows = agg.ready_windows()
        if final:
            # At shutdown the pending windows are refilled too, up to the last closed minute.
            windows += agg.close_windows()
        if windows:
            # Bars must reach the worker before the refills of the same flush (submission order = write order).
            self._cut_offline()
            for window in windows:
                self._submit_refill(window)

    def _submit_refill(self, window: RefillWindow) -> None:
        if self.refiller is None or self.offline is None:
            self.stats.windows_without_refill += 1
            return
        symbols = self.aggregator.symbols()
        self._worker.submit("refill", (window, symbols))

    def _cut_offline(self) -> None:
        if self.offline is None:
            self._offline_quotes.clear()
            self._offline_bars.clear()
            return
        if self._offline_quotes:
            frame = pd.concat(self._offline_quotes, ignore_index=True)
            self._offline_quotes.clear()
            self._worker.submit("append", (REALTIME_QUOTES.name, frame))
        if self._offline_bars:
            frame = pd.concat(self._offline_bars, ignore_index=True)
            self._offline_bars.clear()
            self._worker.submit("append", (OHLCV_MINUTE.name, frame))

    def _apply_corrections(self) -> None:
        while self._corrections:
            result = self._corrections.popleft()
            for symbol, volume in result.volume.items():
                self.aggregator.apply_refill(result.window, symbol, volume, result.first_open.get(symbol))

    # -- offline worker thread ----------------------------------------------------------------------------------

    def _append_offline(self, dataset: str, frame: pd.DataFrame) -> None:
        assert self.offline is not None
        result = self.offline.append(dataset, frame, use_watermark=False)
        if dataset == REALTIME_QUOTES.name:
            self.stats.offline_quote_rows += result.written
        else:
            self.stats.offline_bar_rows += result.written

    def _run_refill(self, window: RefillWindow, symbols: Iterable[str]) -> None:
        assert self.refiller is not None and self.offline is not None
        # Refilled bars land as a backfill's do (checks, quarantine, metrics), beside the stream's own part files.
        result = self.refiller.refill(window, symbols, self._now(), Landing.for_writer(self.offline))
        self.stats.refill_windows += 1
        self.stats.refill_minutes += result.minutes
        self.stats.refill_errors += len(result.errors)
        self.stats.refills.append(
            {
                "reason": window.reason,
                "start": pd.Timestamp(window.start_ms, unit="ms", tz="UTC").isoformat(),
                "end": pd.Timestamp(window.end_ms, unit="ms", tz="UTC").isoformat(),
                "minutes": result.minutes,
                "quarantined": result.quarantined,
                "errors": len(result.errors),
            }
        )
        self._corrections.append(result)

    # -- figures ------------------------------------------------------------------------------------------------

    def freshness(self) -> dict[str, float | int | None]:
        """Tick -> readable online, in ms: p50/p99 from SIP time and from receive time, with sample counts."""
        return {
            "sip_p50_ms": self.sip_latency.percentile(50),
            "sip_p99_ms": self.sip_latency.percentile(99),
            "sip_samples": self.sip_latency.total,
            "recv_p50_ms": self.recv_latency.percentile(50),
            "recv_p99_ms": self.recv_latency.percentile(99),
            "recv_samples": self.recv_latency.total,
        }


def subscription_topics(symbols: Iterable[str], channels: Iterable[str] = ("T", "Q")) -> list[str]:
    """``["T.AAPL", "Q.AAPL", ...]`` for the symbols (``*`` for all) and channels."""
    syms = list(symbols)
    return [f"{ch}.{sym}" for sym in syms for ch in channels]


__all__ = [
    "PUSH_SOURCE",
    "BridgeStats",
    "FeastPushSink",
    "LatencyHistogram",
    "OnlineSink",
    "StreamBridge",
    "subscription_topics",
]
