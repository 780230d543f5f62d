"""The buffer's writer side: WebSocket ticks -> Redis Streams partitions (:mod:`ingestion.stream.buffer`).

The reader does what the bridge's consumer thread did before the aggregator: the client's validation, duplicate-trade
drop and sequence checks run here, once, so the buffer holds only clean events. After every
:meth:`~ingestion.polygon.websocket.PolygonWebSocketClient.dispatch` the events of that dispatch are split by
partition and written in one pipelined round trip, one entry per partition, in arrival order. A gap (reconnect or
queue overflow) becomes a ``G`` item in every partition, at its place in the order, so each consumer's aggregator
opens the same refill window the in-process bridge would.

**Sharding the WebSocket.** Polygon allows one connection per cluster per account (a second one evicts the first
with ``max_connections``; ``../shared/vendor/README.md``), so one reader per API key is the vendor's limit. Several
keys (accounts) can shard the symbols between readers: run one reader per key with disjoint ``--symbols``, all
writing the same buffer; partitions follow the symbol, not the reader, so the consumers do not care.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingestion.polygon.websocket import PolygonWebSocketClient, StreamGap
from ingestion.stream.bridge import LatencyHistogram
from ingestion.stream.buffer import TickBuffer, partition_of

log = logging.getLogger(__name__)


@dataclass
class ReaderStats:
    """Counters of one reader run (ticks and entries written to the buffer)."""

    trades: int = 0
    quotes: int = 0
    gaps: int = 0
    entries: int = 0
    appends: int = 0


class BufferReader:
    """Feeds ``buffer`` from ``client`` until :meth:`stop` (see the module docstring); at most ``frames_per_entry``
    WebSocket frames go into one write."""

    def __init__(self, client: PolygonWebSocketClient, buffer: TickBuffer, frames_per_entry: int = 32) -> None:
        self.client = client
        self.frames_per_entry = frames_per_entry
        self.buffer = buffer
        self.stats = ReaderStats()
        self._pending: dict[int, list[Any]] = {}
        self._stop = threading.Event()
        self._part: dict[str, int] = {}
        self.append_lag = LatencyHistogram()
        """Receive (an entry's oldest frame) -> written to the buffer, per entry written, in ms."""
        self.first_receipt_ns = 0
        """Receive time (epoch ns) of the first frame buffered: where a throughput clock starts."""
        client.register_callback("T.", self._on_trades)
        client.register_callback("Q.", self._on_quotes)
        client.register_gap_callback(self._on_gap)
        client.track_receipts()

    def _partition(self, symbol: str) -> int:
        p = self._part.get(symbol)
        if p is None:
            p = self._part[symbol] = partition_of(symbol, self.buffer.partitions)
        return p

    def _split(self, kind: str, events: list[dict[str, Any]]) -> None:
        by_part: dict[int, list[dict[str, Any]]] = {}
        part = self._partition
        for e in events:
            by_part.setdefault(part(e["sym"]), []).append(e)
        for p, mine in by_part.items():
            self._pending.setdefault(p, []).append([kind, mine])

    def _on_trades(self, events: list[dict[str, Any]]) -> None:
        self.stats.trades += len(events)
        self._split("T", events)

    def _on_quotes(self, events: list[dict[str, Any]]) -> None:
        self.stats.quotes += len(events)
        self._split("Q", events)

    def _on_gap(self, gap: StreamGap) -> None:
        self.stats.gaps += 1
        log.warning("stream gap (%s, %d frames dropped): marked in every partition", gap.reason, gap.dropped_frames)
        for p in range(self.buffer.partitions):
            self._pending.setdefault(p, []).append(["G", gap.reason])

    def pump(self, timeout: float = 0.05) -> int:
        """Dispatch what the client received (waiting up to ``timeout`` s) and write it; returns frames taken."""
        # Few frames per write: a reader that falls behind still writes every few ms, and an entry's receive time
        # (its oldest frame's) stays close to every tick's in it.
        n = self.client.dispatch(timeout=timeout, max_frames=self.frames_per_entry)
        receipts = self.client.take_receipts()
        if self._pending:
            pending, self._pending = self._pending, {}
            received = min(receipts) if receipts else time.time_ns()
            self.first_receipt_ns = self.first_receipt_ns or received
            self.buffer.append(pending, received)
            self.append_lag.add(np.array([(time.time_ns() - received) // 1_000_000]))
            self.stats.entries += len(pending)
            self.stats.appends += 1
        return n

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe from any thread or a signal handler)."""
        self._stop.set()
        self.client.wake()

    def run(self, seconds: float | None = None, until: Callable[[], bool] | None = None) -> ReaderStats:
        """Connect (retrying forever, like the bridge) and buffer ticks until stopped; then write what was received."""
        self.buffer.setup()
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            self.client.start()
            while not self._stop.is_set() and not self.client.stopped:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                self.pump()
        finally:
            self.client.disconnect()
            # Every frame the socket delivered before the close reaches the buffer.
            while self.pump(timeout=0.0):
                pass
        if self.client.error is not None:
            raise self.client.error
        return self.stats


__all__ = ["BufferReader", "ReaderStats"]
