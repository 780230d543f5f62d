"""The durable tick buffer: Redis Streams between the WebSocket reader and the bridge consumers.

Layout (``name`` defaults to ``ticks``; ``{...}`` is a Redis Cluster hash tag, so every key of one partition lives in
one slot and a partition's commit can be one ``MULTI``)::

    <name>:meta                  hash: partitions (fixed for the buffer's life; reader and consumers must agree)
    <name>:members               zset: consumer name -> last heartbeat (ms), for the fair share of partitions
    <name>:{p<i>}:stream         the partition's ticks (XADD by the reader, XREADGROUP by the group ``bridge``)
    <name>:{p<i>}:lease          which consumer owns the partition now (SET NX PX, renewed; value = consumer name)
    <name>:{p<i>}:ckpt           the partition's checkpoint: last acknowledged entry, commit number, aggregator state
    <name>:{p<i>}:intent         a commit in progress: the entry range and the flush boundaries of its offline rows

**Partitions, not one shared stream.** The aggregator keeps per-symbol state (the 60 s window, day volume, open minute
bars), so one symbol's ticks must be folded by one consumer, in order. A symbol always goes to partition
``crc32(symbol) % partitions``; each partition is owned by one consumer at a time (a lease), and the consumers of the
group share the partitions evenly. Within a partition the group's pending-entries list (PEL) is what survives a
``kill -9``: nothing is acknowledged before its online and offline writes.

**Fenced by the lease.** A consumer reads (XREADGROUP in a script that first checks the lease) and records a
commit's intent only while it holds the partition's lease, and its commit is a MULTI watched on the lease. A
consumer that stalled past its lease therefore cannot take entries the new owner will never see (they would sit in
the stalled consumer's PEL, behind entries the new owner folds) nor leave an intent for files the new owner does
not replay; everything it read while the lease was valid is in its PEL when the new owner claims it.

**Entries** are one per partition per reader dispatch, a compact orjson payload: ``r`` = receive time (epoch ns) of
the oldest frame in it, ``d`` = ``[[kind, events], ...]`` in arrival order, kind ``T`` / ``Q`` (validated, de-duplicated
Polygon events as received) or ``G`` (a gap marker: the WebSocket dropped or overflowed; every partition gets one).

**Retention.** The reader never trims (a stopped bridge must find every tick); the owner of a partition trims it to
its last acknowledged entry after each commit (``XTRIM MINID ~``), so only acknowledged entries are ever removed.
The backlog of a stopped bridge is bounded only by Redis memory (~200 bytes a tick).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
from redis.cluster import RedisCluster

GROUP = "bridge"
DEFAULT_NAME = "ticks"
DEFAULT_PARTITIONS = 8

Client = redis.Redis | RedisCluster
Entry = tuple[bytes, dict[bytes, bytes]]

# Renew a lease only when it is still ours (a lease that expired and went to another consumer is not taken back).
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Read new entries only of the partitions whose lease this consumer still holds (KEYS: lease, stream, lease, ...;
# ARGV: consumer, count, group). Atomic with the lease check: an entry delivered to a consumer after its lease went
# to another would sit in the wrong consumer's pending list, behind entries the new owner folds: lost for good.
# Returns {streams whose lease is not ours, XREADGROUP replies}.
_READ = """
local lost, out = {}, {}
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    local r = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[1], 'COUNT', ARGV[2], 'STREAMS', KEYS[i + 1], '>')
    if r then table.insert(out, r[1]) end
  else
    table.insert(lost, KEYS[i + 1])
  end
end
return {lost, out}
"""
# Record a commit's intent only while the lease is ours: the next owner reads the intent right after taking the
# lease, so an intent written later (by a consumer that lost it) would describe files the next owner never replays.
_INTENT = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[2], ARGV[2]) return 1 end return 0"
# Take a free lease, or one this consumer name already holds (a restarted process takes its partitions back at once).
_ACQUIRE = (
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0"
)


class LeaseLost(Exception):
    """The partition's lease went to another consumer: this consumer must drop it without acknowledging."""


def partition_of(symbol: str, partitions: int) -> int:
    """The partition of ``symbol``: stable across processes and runs (crc32, not Python's salted ``hash``)."""
    return zlib.crc32(symbol.encode()) % partitions


@dataclass
class Read:
    """What :meth:`TickBuffer.read` got: new entries (partition, entry) in id order per partition, the partitions
    whose lease is no longer this consumer's, and per partition the newest id seen (entries or a wake-up)."""

    entries: list[tuple[int, Entry]]
    lost: list[int]
    seen: dict[int, bytes]


@dataclass(frozen=True)
class Checkpoint:
    """What a partition's consumers have committed: entries up to ``last_id`` are written and acknowledged."""

    last_id: bytes = b"0-0"
    seq: int = 0
    state: bytes = b""


@dataclass(frozen=True)
class Intent:
    """Commit ``seq`` in progress: entries ``(after, end]`` with online flushes after each id of ``flushes``."""

    seq: int
    after: bytes
    end: bytes
    flushes: tuple[bytes, ...]


class TickBuffer:
    """The keys and Redis commands of one buffer (see the module docstring)."""

    def __init__(self, client: Client, name: str = DEFAULT_NAME, partitions: int = DEFAULT_PARTITIONS) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        # redis-py's stubs type every reply as "Awaitable | value" (sync and async share them): Any, honestly.
        self.r: Any = cast(Any, client)
        self.cluster = isinstance(client, RedisCluster)
        self.name = name
        self.partitions = partitions
        self.streams = [self.key(i, "stream") for i in range(partitions)]
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self._acquire = self.r.register_script(_ACQUIRE)
        self._read = self.r.register_script(_READ)
        self._intent = self.r.register_script(_INTENT)
        self._index = {s.encode(): i for i, s in enumerate(self.streams)}

    def key(self, partition: int, what: str) -> str:
        return f"{self.name}:{{p{partition}}}:{what}"

    # -- setup -----------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Record the partition count (refusing a different one) and create the group on every partition."""
        meta = f"{self.name}:meta"
        self.r.hsetnx(meta, "partitions", self.partitions)
        stored = int(self.r.hget(meta, "partitions") or self.partitions)
        if stored != self.partitions:
            raise ValueError(
                f"the buffer {self.name!r} has {stored} partitions, not {self.partitions}: symbols would move between "
                "partitions and lose their order; use --buffer-partitions {stored} or a new --buffer-name"
            )
        for stream in self.streams:
            try:
                self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- reader side -----------------------------------------------------------------------------------------------

    def append(self, items: dict[int, list[Any]], received_ns: int) -> None:
        """One entry per partition with items (``[kind, events]`` pairs in arrival order), in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for partition, payload in items.items():
            pipe.xadd(self.streams[partition], {"r": received_ns, "d": orjson.dumps(payload)})
        pipe.execute()

    # -- consumer side ---------------------------------------------------------------------------------------------

    def read(self, consumer: str, seen: Mapping[int, bytes], count: int, block_ms: int) -> Read:
        """New entries (XREADGROUP ``>``) of the partitions in ``seen`` whose lease ``consumer`` holds, oldest first
        per partition; ``seen`` maps each to the newest id the caller has seen there. With nothing new, waits up to
        ``block_ms`` for an entry after those ids (a plain XREAD: a script cannot block) and reads again."""
        got = self._read_owned(consumer, list(seen), count)
        if got.entries or got.lost or block_ms <= 0:
            return got
        if self.cluster:
            # Partitions live in different slots: no blocking read across them; an idle round sleeps instead.
            time.sleep(block_ms / 1000.0)
            return self._read_owned(consumer, list(seen), count)
        woke = self.r.xread({self.streams[p]: i for p, i in seen.items()}, count=1, block=block_ms) or []
        if not woke:
            return got
        again = self._read_owned(consumer, list(seen), count)
        for stream, entries in woke:
            p = self._partition_of(stream)
            # An id already delivered before this consumer took the partition must not wake it up again and again.
            again.seen[p] = max(again.seen.get(p, b"0-0"), entries[-1][0], key=_id_key)
        return again

    def _read_owned(self, consumer: str, partitions: Sequence[int], count: int) -> Read:
        out = Read([], [], {})
        if not partitions:
            return out
        groups = [partitions] if not self.cluster else [[p] for p in partitions]
        for group in groups:
            keys = [k for p in group for k in (self.key(p, "lease"), self.streams[p])]
            lost, replies = self._read(keys=keys, args=[consumer, count, GROUP])
            out.lost += [self._partition_of(s) for s in lost]
            for stream, entries in replies:
                p = self._partition_of(stream)
                for eid, flat in entries:
                    out.entries.append((p, (eid, dict(zip(flat[::2], flat[1::2], strict=True)))))
                if entries:
                    out.seen[p] = entries[-1][0]
        return out

    def _partition_of(self, stream: bytes | str) -> int:
        return self._index[stream if isinstance(stream, bytes) else stream.encode()]

    def claim_pending(self, consumer: str, partition: int, count: int = 1_000) -> Iterable[list[Entry]]:
        """Every pending entry of ``partition`` (delivered, never acknowledged), moved to ``consumer``, in id order,
        page by page. Whoever holds the lease may take them all at once (min idle 0): their last owner is gone."""
        start: Any = "0-0"
        while True:
            reply = self.r.xautoclaim(self.streams[partition], GROUP, consumer, 0, start_id=start, count=count)
            start, entries = reply[0], reply[1]
            # Entries trimmed while pending come back as None: nothing left to replay for them.
            page = [(eid, fields) for eid, fields in entries if fields is not None]
            if page:
                yield page
            if start in (b"0-0", "0-0"):
                return

    def pending(self, partition: int) -> int:
        """Entries delivered and not acknowledged in ``partition``."""
        info: Any = self.r.xpending(self.streams[partition], GROUP)
        return int(info["pending"])

    def backlog(self) -> int:
        """Entries of every partition not yet acknowledged or not yet delivered (0 = the bridge has caught up)."""
        total = 0
        for p, stream in enumerate(self.streams):
            groups: Any = self.r.xinfo_groups(stream)
            for g in groups:
                if g["name"] in (GROUP, GROUP.encode()):
                    lag = g.get("lag")
                    total += int(g["pending"]) + (int(lag) if lag is not None else self._undelivered(p, g))
        return total

    def _undelivered(self, partition: int, group: dict[str, Any]) -> int:
        last = group["last-delivered-id"]
        return len(self.r.xrange(self.streams[partition], min=f"({_text(last)}", max="+", count=1))

    # -- leases and membership -------------------------------------------------------------------------------------

    def heartbeat(self, consumer: str, now_ms: int, ttl_ms: int) -> list[str]:
        """Mark ``consumer`` alive; returns the live consumers (heartbeat within ``ttl_ms``), sorted."""
        members = f"{self.name}:members"
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(members, {consumer: now_ms})
        pipe.zremrangebyscore(members, "-inf", now_ms - ttl_ms)
        pipe.zrange(members, 0, -1)
        live = pipe.execute()[-1]
        return sorted(_text(m) for m in live)

    def leave(self, consumer: str) -> None:
        self.r.zrem(f"{self.name}:members", consumer)

    def acquire(self, partition: int, consumer: str, ttl_ms: int) -> bool:
        return bool(self._acquire(keys=[self.key(partition, "lease")], args=[consumer, ttl_ms]))

    def renew(self, partition: int, consumer: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self.key(partition, "lease")], args=[consumer, ttl_ms]))

    def release(self, partition: int, consumer: str) -> None:
        self._release(keys=[self.key(partition, "lease")], args=[consumer])

    def owner(self, partition: int) -> str | None:
        value = self.r.get(self.key(partition, "lease"))
        return None if value is None else _text(value)

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def checkpoint(self, partition: int) -> Checkpoint:
        raw: Any = self.r.hgetall(self.key(partition, "ckpt"))
        if not raw:
            return Checkpoint()
        return Checkpoint(last_id=raw[b"last_id"], seq=int(raw[b"seq"]), state=raw.get(b"state", b""))

    def intent(self, partition: int) -> Intent | None:
        raw: Any = self.r.get(self.key(partition, "intent"))
        if raw is None:
            return None
        d = orjson.loads(raw)
        return Intent(d["seq"], d["after"].encode(), d["end"].encode(), tuple(f.encode() for f in d["flushes"]))

    def write_intent(self, partition: int, consumer: str, intent: Intent) -> None:
        payload = {
            "seq": intent.seq,
            "after": _text(intent.after),
            "end": _text(intent.end),
            "flushes": [_text(f) for f in intent.flushes],
        }
        # Only while the lease is ours (see _INTENT); a consumer that lost it writes no file of this commit.
        if not self._intent(
            keys=[self.key(partition, "lease"), self.key(partition, "intent")], args=[consumer, orjson.dumps(payload)]
        ):
            raise LeaseLost(f"partition {partition} is no longer owned by {consumer}")

    def commit(self, partition: int, consumer: str, ids: Sequence[bytes], ckpt: Checkpoint) -> None:
        """Acknowledge ``ids``, store ``ckpt`` and clear the intent, atomically, only while ``consumer`` holds the
        lease (else :class:`LeaseLost`); then trim the acknowledged entries."""
        lease, stream = self.key(partition, "lease"), self.streams[partition]
        with self.r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(lease)
                if _text(pipe.get(lease) or b"") != consumer:
                    raise LeaseLost(f"partition {partition} is no longer owned by {consumer}")
                pipe.multi()
                for i in range(0, len(ids), 10_000):
                    pipe.xack(stream, GROUP, *ids[i : i + 10_000])
                pipe.hset(
                    self.key(partition, "ckpt"),
                    mapping={"last_id": ckpt.last_id, "seq": ckpt.seq, "state": ckpt.state},
                )
                pipe.delete(self.key(partition, "intent"))
                pipe.execute()
            except redis.WatchError:
                raise LeaseLost(f"partition {partition} changed owner during the commit") from None
        self.r.xtrim(stream, minid=_text(ckpt.last_id), approximate=True)

    def reset(self) -> None:
        """Delete every key of this buffer (tests and benchmarks)."""
        keys = [f"{self.name}:meta", f"{self.name}:members"]
        for p in range(self.partitions):
            keys += [self.key(p, w) for w in ("stream", "lease", "ckpt", "intent")]
        for k in keys:
            self.r.delete(k)


def _id_key(eid: bytes) -> tuple[int, int]:
    ms, _, seq = eid.partition(b"-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_PARTITIONS",
    "GROUP",
    "Checkpoint",
    "Entry",
    "Intent",
    "LeaseLost",
    "Read",
    "TickBuffer",
    "partition_of",
]
