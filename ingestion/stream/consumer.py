"""The buffer's reading side: a bridge consumer that owns some partitions of the tick buffer and writes them online and
offline, acknowledging entries only after both writes (:mod:`ingestion.stream.buffer` has the key layout).

One loop, one thread::

    every lease_ms / 3    heartbeat; renew leases; take or give back partitions for an even share of the group
    continuously          XREADGROUP new entries of owned partitions -> each partition's own Aggregator
    every flush_ms        rows of the symbols that changed -> online store (one write); boundaries recorded
    every commit_s        per partition, in turn: refills of ready windows, a last flush, then the *intent*, the offline
                          part files, and one MULTI: XACK + checkpoint (aggregator state) + clear the intent

**Exactly once, offline.** Part files are named by a digest of their rows' keys (:mod:`ingestion.store.offline`), so
writing the same rows again replaces the file. A consumer killed before its checkpoint leaves its entries pending; the
next owner loads the last checkpoint (the state that matches the acknowledged entries) and claims the pending
entries (``XAUTOCLAIM``). If the intent of the interrupted commit is there, its entries are replayed with the
*recorded* flush boundaries, so the rows, hence the file names, come out the same and replace what the dead
consumer wrote; without an intent no file of those entries was written yet. The minutes a refill already counted
into ``day_volume`` are part of the checkpointed state (not the refiller's memory), so a partition that comes back
to the same process from an older checkpoint counts its refills again, once. Online writes are idempotent (a row is
taken only when newer than the stored one), so replaying them is harmless.

**Handover.** Stopping (SIGTERM), losing a lease or giving a partition to a new group member commits what was
processed and releases the lease; bars still open and refill windows still pending travel in the checkpoint, so the
next owner continues them. Only :meth:`BufferConsumer.drain` (the single-process ``stream --buffer redis`` at its
end) closes the session's last minute and refills the pending windows, as the in-process bridge does at shutdown.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from ingestion.datasets import OHLCV_MINUTE, REALTIME_QUOTES
from ingestion.jobs.landing import Landing
from ingestion.stream import snapshot
from ingestion.stream.aggregator import Aggregator, RefillWindow
from ingestion.stream.bridge import BridgeStats, LatencyHistogram, OnlineSink
from ingestion.stream.buffer import Checkpoint, Entry, Intent, LeaseLost, TickBuffer

if TYPE_CHECKING:
    from ingestion.store.offline import OfflineWriter
    from ingestion.stream.refill import Refiller

log = logging.getLogger(__name__)


@dataclass
class _Partition:
    """What this consumer holds for one owned partition between two commits."""

    index: int
    agg: Aggregator
    ckpt: Checkpoint
    ids: list[bytes] = field(default_factory=list)
    ticks: int = 0
    flushes: list[bytes] = field(default_factory=list)
    unflushed: bool = False
    quotes: list[pd.DataFrame] = field(default_factory=list)
    bars: list[pd.DataFrame] = field(default_factory=list)
    windows: list[RefillWindow] = field(default_factory=list)
    replay: Counter[bytes] | None = None
    seen: bytes = b"0-0"
    """The newest entry id of the partition this consumer has read or been woken by (where a blocking wait starts)."""


@dataclass
class ConsumerStats(BridgeStats):
    """The bridge's counters plus the buffer's: entries and ticks committed, partitions taken, commits replayed."""

    entries: int = 0
    ticks: int = 0
    commits: int = 0
    acquired: int = 0
    released: int = 0
    leases_lost: int = 0
    replayed_commits: int = 0
    read_seconds: float = 0.0
    fold_seconds: float = 0.0
    commit_seconds: float = 0.0
    last_read_ns: int = 0
    """Wall clock (epoch ns) of the last read that returned entries: where a throughput clock ends."""
    committed_ids: dict[int, list[bytes]] = field(default_factory=dict)


class BufferConsumer:
    """A bridge process's share of the tick buffer (see the module docstring).

    ``name`` must be unique among the live consumers of the buffer (a restarted process reuses its name and takes its
    partitions back at once). ``record_ids`` keeps every committed entry id (tests).
    """

    def __init__(
        self,
        buffer: TickBuffer,
        name: str,
        online: OnlineSink | None,
        offline: OfflineWriter | None = None,
        refiller: Refiller | None = None,
        *,
        flush_interval_ms: int = 100,
        commit_interval_s: float = 2.0,
        lateness_ms: int = 2_000,
        lease_ms: int = 5_000,
        read_count: int = 500,
        record_ids: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if flush_interval_ms <= 0 or lease_ms <= 0:
            raise ValueError("flush_interval_ms and lease_ms must be positive")
        self.buffer = buffer
        self.name = name
        self.online = online
        self.offline = offline
        self.refiller = refiller
        self.flush_interval_ms = flush_interval_ms
        self.commit_interval_s = commit_interval_s
        self.lateness_ms = lateness_ms
        self.lease_ms = lease_ms
        self.read_count = read_count
        self.record_ids = record_ids
        self.clock_ns = clock_ns
        self.owned: dict[int, _Partition] = {}
        self.stats = ConsumerStats()
        self.recv_latency = LatencyHistogram()
        self.buffer_wait = LatencyHistogram()
        """Receive -> read out of the buffer, per tick: the share of ``recv_latency`` spent before this consumer."""
        self.last_rows: pd.DataFrame | None = None
        self._receipts: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._last_committed = -1
        from ingestion.store.online import OnlineWriter

        self._recording = online.record_every_s if isinstance(online, OnlineWriter) else None
        # Each consumer starts its search for free partitions at its own place, so two new members rarely collide.
        self._offset = zlib.crc32(name.encode())

    # -- control ---------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to hand its partitions over and return (safe from any thread or a signal handler)."""
        self._stop.set()

    def run(self, seconds: float | None = None, until: Callable[[], bool] | None = None) -> ConsumerStats:
        """Consume until :meth:`stop`, ``seconds`` or ``until()``; then commit and release every partition."""
        self.buffer.setup()
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            self.loop(deadline, until)
        finally:
            self.handover()
        return self.stats

    def loop(self, deadline: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """The consume loop without the final handover (the single-process mode drains after it instead)."""
        interval = self.flush_interval_ms / 1000.0
        now = time.monotonic()
        next_lease, next_flush, next_commit = now, now + interval, now + self.commit_interval_s
        while not self._stop.is_set():
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or (until is not None and until()):
                break
            if now >= next_lease:
                self.rebalance()
                next_lease = now + self.lease_ms / 3000.0
            wait_ms = max(1, int((min(next_flush, next_lease) - now) * 1000))
            self.poll(block_ms=wait_ms)
            now = time.monotonic()
            if now >= next_flush:
                self.flush()
                next_flush = now + interval
            if now >= next_commit:
                # One partition at a time, in turn: each still commits every commit_interval_s, but the loop (and so
                # the online path) never stalls for every partition's fsync at once.
                self.commit_next()
                next_commit = now + self.commit_interval_s / max(1, len(self.owned))

    def poll(self, block_ms: int) -> int:
        """Read and fold new entries of the owned partitions; returns how many."""
        if not self.owned:
            self._stop.wait(block_ms / 1000.0)
            return 0
        began = time.perf_counter()
        got = self.buffer.read(
            self.name, {p: self.owned[p].seen for p in sorted(self.owned)}, self.read_count, block_ms
        )
        read = time.perf_counter()
        read_ns = self.clock_ns() if got.entries else 0
        for p in got.lost:
            if p in self.owned:
                self._lose(p)
        for p, seen in got.seen.items():
            if p in self.owned:
                self.owned[p].seen = seen
        # (receive time, ticks) of this read's entries, kept apart from the flush's receipts (a replayed commit
        # flushes inside the fold and takes those).
        waits = []
        for p, entry in got.entries:
            part = self.owned.get(p)
            if part is not None:
                waits.append((int(entry[1][b"r"]), self._fold(part, entry)))
        if waits:
            self.stats.last_read_ns = read_ns
            self.buffer_wait.add(_ages_ms(waits, read_ns))
        self.stats.read_seconds += read - began
        self.stats.fold_seconds += time.perf_counter() - read
        return len(got.entries)

    def drain(self, idle_reads: int = 3) -> ConsumerStats:
        """The stream has ended (its reader stopped): consume what is left, close the last minute, refill every pending
        window, commit, and release. Used by the single-process mode."""
        quiet = 0
        while quiet < idle_reads:
            self.rebalance()
            quiet = quiet + 1 if self.poll(block_ms=50) == 0 else 0
        self.flush()
        for part in list(self.owned.values()):
            self._commit(part, final=True)
        self.handover()
        return self.stats

    def handover(self) -> None:
        """Commit and release every owned partition, and leave the group's membership."""
        for p in list(self.owned):
            self._give_back(p)
        self.buffer.leave(self.name)

    # -- partitions ------------------------------------------------------------------------------------------------

    def rebalance(self) -> None:
        """Heartbeat, renew leases, and move toward ``ceil(partitions / live consumers)`` owned partitions."""
        now_ms = self.clock_ns() // 1_000_000
        live = self.buffer.heartbeat(self.name, now_ms, self.lease_ms)
        for p in list(self.owned):
            if not self.buffer.renew(p, self.name, self.lease_ms):
                self._lose(p)
        total = self.buffer.partitions
        share = math.ceil(total / max(1, len(live)))
        for p in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            self._give_back(p)
        for k in range(total):
            if len(self.owned) >= share:
                break
            p = (self._offset + k) % total
            if p not in self.owned and self.buffer.acquire(p, self.name, self.lease_ms):
                self._take(p)
        if self._recording is not None:
            # Feast's file registry is rewritten whole by each interval record: with several consumers writing it at
            # once a reader can meet a half-written file. Only the owner of partition 0 records (every 30 s).
            self.online.record_every_s = self._recording if 0 in self.owned else None  # type: ignore[union-attr]

    def _take(self, p: int) -> None:
        """Own partition ``p``: its checkpointed state, then every pending entry (a dead owner's replayed first)."""
        ckpt = self.buffer.checkpoint(p)
        part = _Partition(p, snapshot.load(ckpt.state, self.lateness_ms), ckpt, seen=ckpt.last_id)
        intent = self.buffer.intent(p)
        if intent is not None and intent.seq == ckpt.seq + 1 and intent.after == ckpt.last_id:
            part.replay = Counter(intent.flushes)
        self.owned[p] = part
        self.stats.acquired += 1
        log.info("consumer %s took partition %d (commit %d)", self.name, p, ckpt.seq)
        for page in self.buffer.claim_pending(self.name, p):
            for entry in page:
                self._fold(part, entry)
                part.seen = entry[0]
                if part.replay is not None and intent is not None and entry[0] == intent.end:
                    self._commit(part)
                    self.stats.replayed_commits += 1
        if part.replay is not None:
            # The intent's entries were not all pending (trimmed by hand?): the rows cannot be reproduced exactly.
            log.error("partition %d: the interrupted commit %d could not be replayed exactly", p, ckpt.seq + 1)
            part.replay = None

    def _give_back(self, p: int) -> None:
        part = self.owned[p]
        try:
            self.flush()
            self._commit(part)
        except LeaseLost:
            self._lose(p)
            return
        del self.owned[p]
        self.buffer.release(p, self.name)
        self.stats.released += 1

    def _lose(self, p: int) -> None:
        """The lease is gone: forget the partition without acknowledging (its next owner replays the entries)."""
        self.owned.pop(p, None)
        self.stats.leases_lost += 1
        log.warning(
            "consumer %s lost the lease of partition %d: its uncommitted entries go to the next owner", self.name, p
        )

    # -- entries and flushes ---------------------------------------------------------------------------------------

    def _fold(self, part: _Partition, entry: Entry) -> int:
        """Fold one entry into its partition's aggregator; returns its ticks."""
        eid, fields = entry
        agg = part.agg
        ticks = 0
        for kind, events in orjson.loads(fields[b"d"]):
            if kind == "T":
                agg.on_trades(events)
                ticks += len(events)
            elif kind == "Q":
                agg.on_quotes(events)
                ticks += len(events)
            elif kind == "G":
                agg.on_gap()
        part.ids.append(eid)
        part.ticks += ticks
        part.unflushed = True
        self._receipts.append((int(fields[b"r"]), ticks))
        if part.replay is not None:
            # Replaying an interrupted commit: flush exactly where the dead consumer flushed.
            for _ in range(part.replay.pop(eid, 0)):
                self._flush_parts([part], record=False)
        return ticks

    def flush(self) -> None:
        """Rows of every owned partition with new entries -> one online write; record each partition's boundary."""
        parts = [p for p in self.owned.values() if p.unflushed and p.replay is None]
        if parts:
            self._flush_parts(parts, record=True)

    def _flush_parts(self, parts: list[_Partition], record: bool, final: bool = False) -> None:
        created = self._now()
        frames: list[pd.DataFrame] = []
        for part in parts:
            agg = part.agg
            rows = agg.take_rows(created)
            agg.take_tick_times()  # SIP freshness is the in-process bridge's figure; here, receive -> online
            if len(rows):
                frames.append(rows)
                part.quotes.append(rows)
            agg.close_bars(final=final)
            bars = agg.take_bars(created)
            if len(bars):
                part.bars.append(bars)
            part.windows += agg.ready_windows()
            if final:
                part.windows += agg.close_windows()
            if record and part.unflushed:
                part.flushes.append(part.ids[-1])
            part.unflushed = False
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else (frames[0] if frames else None)
        if rows is not None:
            began = time.perf_counter()
            if self.online is not None:
                self.online.write(REALTIME_QUOTES.name, rows)
            self.stats.online_seconds += time.perf_counter() - began
            self.stats.online_rows += len(rows)
            self.last_rows = rows
        self.stats.flushes += 1
        if self._receipts:
            self.recv_latency.add(_ages_ms(self._receipts, self.clock_ns()))
            self._receipts = []

    # -- commits ---------------------------------------------------------------------------------------------------

    def commit_next(self) -> None:
        """Commit the owned partition whose turn it is (round robin over the owned partitions)."""
        if not self.owned:
            return
        order = sorted(self.owned)
        p = next((q for q in order if q > self._last_committed), order[0])
        self._last_committed = p
        try:
            self._commit(self.owned[p])
        except LeaseLost:
            self._lose(p)

    def _commit(self, part: _Partition, final: bool = False) -> None:
        """Refill, last flush, intent, offline files, then XACK + checkpoint in one MULTI (see the module docstring)."""
        if not part.ids and not part.windows and not final:
            return
        began = time.perf_counter()
        replayed = part.replay is not None
        part.replay = None
        self._run_refills(part)
        self._flush_parts([part], record=False, final=final)
        if final:
            self._run_refills(part)  # the windows the final close cut
            self._flush_parts([part], record=False)
        seq = part.ckpt.seq + 1
        last = part.ids[-1] if part.ids else part.ckpt.last_id
        if part.ids:
            self.buffer.write_intent(part.index, self.name, Intent(seq, part.ckpt.last_id, last, tuple(part.flushes)))
        self._write_offline(part)
        # Windows the last flush made ready are refilled at the next commit: they travel in the checkpoint, so a
        # next owner (after a handover or a kill) refills them too.
        part.agg.requeue_windows(part.windows)
        part.windows = []
        ckpt = Checkpoint(last_id=last, seq=seq, state=snapshot.dump(part.agg))
        self.buffer.commit(part.index, self.name, part.ids, ckpt)
        self.stats.commits += 1
        self.stats.commit_seconds += time.perf_counter() - began
        self.stats.entries += len(part.ids)
        self.stats.ticks += part.ticks
        if self.record_ids:
            self.stats.committed_ids.setdefault(part.index, []).extend(part.ids)
        part.ckpt = ckpt
        part.ids, part.flushes, part.ticks = [], [], 0
        if replayed:
            log.info("partition %d: commit %d replayed with its recorded flushes", part.index, seq)

    def _write_offline(self, part: _Partition) -> None:
        quotes, bars = part.quotes, part.bars
        part.quotes, part.bars = [], []
        if self.offline is None:
            return
        if quotes:
            frame = pd.concat(quotes, ignore_index=True)
            self.stats.offline_quote_rows += self.offline.append(
                REALTIME_QUOTES.name, frame, use_watermark=False
            ).written
        if bars:
            frame = pd.concat(bars, ignore_index=True)
            self.stats.offline_bar_rows += self.offline.append(OHLCV_MINUTE.name, frame, use_watermark=False).written

    def _run_refills(self, part: _Partition) -> None:
        windows, part.windows = part.windows, []
        if self.refiller is None or self.offline is None:
            self.stats.windows_without_refill += len(windows)
            return
        # Synchronous, inside the commit: the correction then lands at the same point of the entry order on a replay.
        for window in windows:
            # The minutes already counted come from the partition's (checkpointed) state, not the refiller's memory.
            landing = Landing.for_writer(self.offline)
            result = self.refiller.refill(window, part.agg.symbols(), self._now(), landing, part.agg.refilled_minutes)
            self.stats.refill_windows += 1
            self.stats.refill_minutes += result.minutes
            self.stats.refill_errors += len(result.errors)
            self.stats.refills.append({"reason": window.reason, "minutes": result.minutes, "partition": part.index})
            for symbol, volume in result.volume.items():
                part.agg.apply_refill(
                    window, symbol, volume, result.first_open.get(symbol), result.counted.get(symbol, ())
                )

    def _now(self) -> pd.Timestamp:
        return pd.Timestamp(self.clock_ns() // 1_000 * 1_000, unit="ns", tz="UTC")

    # -- figures ---------------------------------------------------------------------------------------------------

    def freshness(self) -> dict[str, float | int | None]:
        """Receive -> readable online, in ms, per tick (a tick of a replayed entry counts its whole wait)."""
        return {
            "recv_p50_ms": self.recv_latency.percentile(50),
            "recv_p99_ms": self.recv_latency.percentile(99),
            "recv_samples": self.recv_latency.total,
            "buffer_wait_p50_ms": self.buffer_wait.percentile(50),
            "buffer_wait_p99_ms": self.buffer_wait.percentile(99),
        }

    def summary(self) -> dict[str, Any]:
        """Counters as JSON-friendly values (what ``stream --role bridge`` prints at the end)."""
        s = self.stats
        return {
            "consumer": self.name,
            "entries": s.entries,
            "ticks": s.ticks,
            "commits": s.commits,
            "acquired": s.acquired,
            "released": s.released,
            "leases_lost": s.leases_lost,
            "replayed_commits": s.replayed_commits,
            "online_rows": s.online_rows,
            "offline_quote_rows": s.offline_quote_rows,
            "offline_bar_rows": s.offline_bar_rows,
            "refill_windows": s.refill_windows,
            "refill_minutes": s.refill_minutes,
            "refill_errors": s.refill_errors,
            "seconds": {
                "read": round(s.read_seconds, 3),
                "fold": round(s.fold_seconds, 3),
                "online": round(s.online_seconds, 3),
                "commit": round(s.commit_seconds, 3),
            },
            **self.freshness(),
        }


def _ages_ms(receipts: list[tuple[int, int]], now_ns: int) -> np.ndarray:
    """One age in ms (``now_ns`` minus the receive time) per tick of ``(receive time ns, ticks)`` pairs."""
    received = np.fromiter((r for r, _ in receipts), dtype=np.int64)
    weights = np.fromiter((n for _, n in receipts), dtype=np.int64)
    return np.repeat((now_ns - received) // 1_000_000, weights)


__all__ = ["BufferConsumer", "ConsumerStats"]
