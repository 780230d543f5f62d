"""The Polygon (Massive) WebSocket client: a supervised connection, a bounded queue, and a dispatcher.

Two threads share the work, so that reading the socket never waits on whoever consumes the data:

* the **I/O thread** runs an asyncio loop with the ``websockets`` connection. It authenticates, restores every
  subscription, and moves each frame onto a bounded :class:`FrameQueue` as raw bytes with its receive time, without
  parsing it. Polygon kills a slow reader's connection server-side, so the read loop does nothing else.
* the **consumer** (the thread calling :meth:`PolygonWebSocketClient.run` or :meth:`~PolygonWebSocketClient.dispatch`)
  parses frames, validates events, drops duplicate trades, counts sequence anomalies and calls the callbacks.

Overload policy (``drop-newest, then refill``): when the queue holds ``max_queue_frames`` frames, an incoming frame
is dropped and counted, and a :class:`StreamGap` marker is queued ahead of the next frame that fits. Blocking the read
loop instead would let the server's buffer fill until Polygon disconnects us, which loses more; a gap marker lets the
stream bridge refill the hole from REST exactly as after a reconnect.

Reconnects: exponential backoff with jitter and no lifetime cap (the official client stops after 5). The backoff
restarts after a connection has delivered data. ``auth_failed`` and ``max_connections`` are not retried: retrying a
rejected key, or evicting our own other connection in a loop, is the storm this client must not cause. They stop the
client and surface as :class:`~ingestion.errors.AuthError` / :class:`MaxConnections`.

Times: Polygon's ``t`` is the SIP time in epoch **milliseconds** UTC. Receive times here are ``time.time_ns()``
(epoch **nanoseconds**, wall clock), so they can be compared with SIP times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ingestion.errors import AuthError, ClientError, TransportError
from ingestion.http.redaction import register_secret
from ingestion.polygon.ws_events import parse_ws_frame
from ingestion.polygon.ws_rules import split_ticks
from ingestion.rejects import Rejected

log = logging.getLogger(__name__)

VENDOR = "polygon"
CLUSTERS = ("stocks", "options", "forex", "crypto", "indices")
PREFIXES = ("T.", "Q.", "A.", "AM.")

Event = dict[str, Any]
Callback = Callable[[list[Event]], None]
GapCallback = Callable[["StreamGap"], None]


class MaxConnections(ClientError):
    """The server refused or evicted this connection because another one uses the same key and cluster."""


@dataclass(frozen=True)
class StreamGap:
    """A hole in the stream: events may be missing between the frames before and after this marker.

    ``reason`` is ``"reconnect"`` or ``"overflow"``; ``at_ns`` is when the hole was noticed (epoch ns, wall clock);
    ``dropped_frames`` counts frames the queue refused (overflow only).
    """

    reason: str
    at_ns: int
    dropped_frames: int = 0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` waits ``min(cap, initial * factor**n) * U(1 - jitter, 1)`` s."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.cap, self.initial * self.factor ** min(attempt, 64))
        return base * rng.uniform(1.0 - self.jitter, 1.0)


@dataclass
class StreamStats:
    """Counters of the client. Read them any time; they only grow (except the gauges ``queue_depth``, ``lag_ms``)."""

    connect_attempts: int = 0
    connections: int = 0
    reconnects: int = 0
    frames_received: int = 0
    data_frames: int = 0
    frames_dropped: int = 0
    events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    sequence_anomalies: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    status_messages: Counter[str] = field(default_factory=Counter)
    queue_depth: int = 0
    max_queue_depth: int = 0
    lag_ms: float = 0.0
    max_lag_ms: float = 0.0


QueueItem = tuple[int, bytes] | StreamGap


class FrameQueue:
    """A bounded single-producer, single-consumer queue of ``(received_ns, frame)`` items and gap markers.

    ``put`` never blocks (see the module's overload policy); ``drain`` waits up to ``timeout`` seconds for items.
    ``deque.append``/``popleft`` are atomic under the GIL, so the only lock is the wake-up event.
    """

    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.max_frames = max_frames
        self._items: deque[QueueItem] = deque()
        self._wake = threading.Event()
        self._pending_drops = 0
        self.dropped = 0
        self.max_depth = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: QueueItem) -> bool:
        """Queue an item; False when it was dropped because the queue is full."""
        items = self._items
        depth = len(items)
        if depth >= self.max_frames and not isinstance(item, StreamGap):
            self._pending_drops += 1
            self.dropped += 1
            return False
        if self._pending_drops:
            items.append(StreamGap("overflow", time.time_ns(), self._pending_drops))
            self._pending_drops = 0
        items.append(item)
        if depth >= self.max_depth:
            self.max_depth = depth + 1
        if not self._wake.is_set():
            self._wake.set()
        return True

    def drain(self, max_items: int, timeout: float) -> list[QueueItem]:
        """Take up to ``max_items`` items, waiting at most ``timeout`` seconds when the queue is empty."""
        self._wake.clear()
        items = self._items
        if not items:
            self._wake.wait(timeout)
        out: list[QueueItem] = []
        pop = items.popleft
        with contextlib.suppress(IndexError):
            for _ in range(min(max_items, len(items))):
                out.append(pop())
        return out

    def wake(self) -> None:
        """Wake a consumer waiting in :meth:`drain` (used on shutdown)."""
        self._wake.set()


class Deduper:
    """Recent trade keys ``(symbol, exchange, trade id)``; memory is bounded by two generations of sets.

    The dispatcher tests and adds keys inline (a method call per trade costs a tenth of its budget).

    When ``current`` reaches ``capacity`` keys it becomes ``previous`` (the one before is forgotten), so a duplicate
    is caught as long as it arrives within ``capacity`` to ``2 * capacity`` trades of the original.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        self.current: set[tuple[str, int, str]] = set()
        self.previous: set[tuple[str, int, str]] = set()

    def rotate(self) -> None:
        self.previous, self.current = self.current, set()


def _resolve_url(ws_url: str | None, cluster: str) -> str:
    """``ws_url`` as given when it names a path, else ``<ws_url or default host>/<cluster>``."""
    if ws_url is None:
        from ingestion.config import settings

        default = settings().polygon_ws_url
        parts = urlsplit(default)
        return f"{parts.scheme}://{parts.netloc}/{cluster}"
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError("ws_url must start with ws:// or wss://")
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}/{cluster}"
    return ws_url


def _split_channels(channels: str | Iterable[str]) -> list[str]:
    items = channels.split(",") if isinstance(channels, str) else list(channels)
    out = []
    for raw in items:
        topic = raw.strip()
        if not topic:
            continue
        if "." not in topic:
            raise ValueError(f"channel {topic!r} must look like PREFIX.SYMBOL, e.g. T.AAPL or AM.*")
        out.append(topic)
    return out


class PolygonWebSocketClient:
    """Polygon WebSocket client (the seed's API) with supervised reconnects and a bounded frame queue.

    ``api_key`` defaults to ``POLYGON_API_KEY`` / ``MASSIVE_API_KEY``, read when :meth:`connect` runs. ``ws_url``
    overrides the host (``ws://127.0.0.1:PORT`` for the simulator); with a path it is used as is.
    ``ping_interval``/``ping_timeout`` (seconds) are the heartbeat: a server that stops answering pings is
    treated as a dropped connection and reconnected. ``close_timeout`` (s) bounds the wait for a close handshake.

    Callbacks receive lists of validated event dicts (Polygon's field names) of one channel, in arrival order,
    and run on the consumer thread, never on the I/O thread.
    """

    def __init__(
        self,
        api_key: str | None = None,
        cluster: str = "stocks",
        ws_url: str | None = None,
        *,
        max_queue_frames: int = 50_000,
        backoff: Backoff | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        compression: str | None = None,
        dedupe_capacity: int = 500_000,
        reject_sink: Callable[[Rejected], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if cluster not in CLUSTERS:
            raise ValueError(f"cluster must be one of {', '.join(CLUSTERS)}")
        self._api_key = api_key
        self.cluster = cluster
        self._ws_url = ws_url
        if ws_url is not None:
            _resolve_url(ws_url, cluster)  # a bad URL fails here, not in the I/O thread
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.compression = compression
        self.queue = FrameQueue(max_queue_frames)
        self.stats = StreamStats()
        self._rng = rng or random.Random()
        self._callbacks: dict[str, list[Callback]] = {}
        self._gap_callbacks: list[GapCallback] = []
        self._reject_sink = reject_sink
        self.rejects: deque[Rejected] = deque(maxlen=10_000)
        self._dedupe = Deduper(dedupe_capacity)
        self._seq_t: dict[str, int] = {}  # last sequence number per symbol, trades
        self._seq_q: dict[str, int] = {}  # and quotes
        self._subscriptions: dict[str, None] = {}  # insertion-ordered set
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ws: ClientConnection | None = None
        self._authenticated = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self.error: BaseException | None = None
        self._evicted: str | None = None
        # Receive times (epoch ns) of dispatched frames, kept only after track_receipts().
        self._receipts: list[int] | None = None

    # -- public API (the seed's names) ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return _resolve_url(self._ws_url, self.cluster)

    @property
    def subscriptions(self) -> list[str]:
        """Channels that are (or will be, after a reconnect) subscribed."""
        with self._lock:
            return list(self._subscriptions)

    @property
    def connected(self) -> bool:
        return self._authenticated.is_set() and not self._stopped.is_set()

    def register_callback(self, channel_prefix: str, callback: Callback) -> None:
        """Call ``callback(events)`` with the events of one channel prefix: ``"T."``, ``"Q."``, ``"A."``, ``"AM."``."""
        if channel_prefix not in PREFIXES:
            raise ValueError(f"channel_prefix must be one of {', '.join(PREFIXES)}")
        self._callbacks.setdefault(channel_prefix[:-1], []).append(callback)

    def register_gap_callback(self, callback: GapCallback) -> None:
        """Call ``callback(gap)`` on the consumer thread when the stream may have a hole (reconnect or overflow)."""
        self._gap_callbacks.append(callback)

    def subscribe(self, channels: str | Iterable[str]) -> None:
        """Add channels (``"T.AAPL,Q.AAPL"`` or a list); sent now when connected, and again after every reconnect."""
        topics = _split_channels(channels)
        with self._lock:
            new = [t for t in topics if t not in self._subscriptions]
            self._subscriptions.update(dict.fromkeys(new))
        if new:
            self._send_soon("subscribe", new)

    def unsubscribe(self, channels: str | Iterable[str]) -> None:
        """Remove channels; they are not restored after a reconnect."""
        topics = _split_channels(channels)
        with self._lock:
            gone = [t for t in topics if t in self._subscriptions]
            for t in gone:
                del self._subscriptions[t]
        if gone:
            self._send_soon("unsubscribe", gone)

    def start(self) -> None:
        """Start the I/O thread (connect, authenticate, subscribe, reconnect forever) without waiting for it.

        Raises :class:`~ingestion.errors.AuthError` at once when no key is configured.
        """
        if self._thread is not None:
            return
        key = self._api_key
        if key is None:
            from ingestion.config import settings

            key = settings().polygon_api_key
        if not key:
            raise AuthError(
                "no Polygon API key: pass api_key or set POLYGON_API_KEY (or MASSIVE_API_KEY)",
                vendor=VENDOR,
                endpoint=f"websocket/{self.cluster}",
            )
        # Registered for redaction: the websockets library logs the auth frame (with the key) at DEBUG.
        register_secret(key)
        url = self.url
        self._stopping = False
        self._stopped.clear()
        self.error = None
        self._thread = threading.Thread(target=self._thread_main, args=(url, key), name="polygon-ws-io", daemon=True)
        self._thread.start()

    def connect(self, timeout: float = 30.0) -> None:
        """Start the I/O thread and wait until the first connection is authenticated.

        Raises :class:`~ingestion.errors.AuthError` (bad or missing key), :class:`MaxConnections`, or
        :class:`~ingestion.errors.TransportError` when no connection was authenticated within ``timeout`` s
        (the client keeps trying in the background until :meth:`disconnect`).
        """
        self.start()
        deadline = time.monotonic() + timeout
        while not self._authenticated.is_set():
            if self.error is not None:
                raise self.error
            if self._stopped.is_set():
                raise TransportError("client stopped before it connected", vendor=VENDOR)
            if time.monotonic() >= deadline:
                raise TransportError(
                    f"not connected after {timeout:.0f} s (still retrying)", vendor=VENDOR, endpoint=self.cluster
                )
            self._authenticated.wait(0.05)

    def disconnect(self, timeout: float = 10.0) -> None:
        """Close the connection and stop the I/O thread. Frames already queued stay there for a final dispatch."""
        self._stopping = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        self.queue.wake()

    def run(self, poll_timeout: float = 0.1) -> None:
        """Connect (if needed) and dispatch events to the callbacks until :meth:`disconnect`; then drain the queue.

        Re-raises a fatal error (auth_failed, max_connections) after draining what was received before it.
        """
        self.connect()
        while not self._stopped.is_set():
            self.dispatch(timeout=poll_timeout)
        while self.dispatch(timeout=0.0):
            pass
        if self.error is not None:
            raise self.error

    @property
    def stopped(self) -> bool:
        """True once the I/O thread has ended (after :meth:`disconnect` or a fatal error)."""
        return self._stopped.is_set()

    def wake(self) -> None:
        """Return a :meth:`dispatch` waiting for frames at once (safe from any thread, e.g. to shut down)."""
        self.queue.wake()

    def queue_depth(self) -> int:
        """Frames (and gap markers) received and not yet dispatched."""
        return len(self.queue)

    def track_receipts(self) -> None:
        """From now on, keep the receive time of every dispatched frame for :meth:`take_receipts`."""
        if self._receipts is None:
            self._receipts = []

    def take_receipts(self) -> list[int]:
        """Receive times (epoch ns, wall clock) of the frames dispatched since the last call, in order; empty unless
        :meth:`track_receipts` was called. Call it on the consumer thread (the one calling :meth:`dispatch`)."""
        taken = self._receipts
        if not taken:
            return []
        self._receipts = []
        return taken

    # -- consumer side ---------------------------------------------------------------------------------------------

    def dispatch(self, timeout: float = 0.1, max_frames: int = 1024) -> int:
        """Process up to ``max_frames`` queued frames; returns the number of items taken from the queue."""
        items = self.queue.drain(max_frames, timeout)
        if not items:
            self.stats.queue_depth = len(self.queue)
            return 0
        newest_ns = 0
        receipts = self._receipts
        for item in items:
            if isinstance(item, StreamGap):
                for gap_cb in self._gap_callbacks:
                    gap_cb(item)
                continue
            newest_ns, payload = item
            if receipts is not None:
                receipts.append(newest_ns)
            # Callbacks run per frame: grouping a long backlog by channel would reorder trades against quotes by
            # whole minutes, and consumers rely on time order across channels.
            batches: dict[str, list[Event]] = {}
            self._process_frame(payload, batches)
            self._flush_batches(batches)
        stats = self.stats
        # Lag: how long the newest frame of this batch waited between the socket and its callbacks.
        stats.lag_ms = (time.time_ns() - newest_ns) / 1e6 if newest_ns else 0.0
        stats.max_lag_ms = max(stats.max_lag_ms, stats.lag_ms)
        stats.queue_depth = len(self.queue)
        stats.max_queue_depth = self.queue.max_depth
        stats.frames_dropped = self.queue.dropped
        return len(items)

    def _flush_batches(self, batches: dict[str, list[Event]]) -> None:
        for ev, events in batches.items():
            for cb in self._callbacks.get(ev, ()):
                cb(events)

    def _process_frame(self, payload: bytes, batches: dict[str, list[Event]]) -> None:
        try:
            decoded = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._exact(payload)
            return
        if type(decoded) is dict:
            # A lone object is one event, as parse_ws_frame reads it; judging it as a frame would lose it silently.
            decoded = [decoded]
        elif type(decoded) is not list:
            self._exact(payload)
            return
        stats = self.stats
        dedupe = self._dedupe
        recent, older = dedupe.current, dedupe.previous
        duplicates = 0
        # Trades and quotes (most of the volume) are judged by the compiled rules that parse_ws_frame applies too
        # (ws_rules), so a tick is accepted here exactly when the exact parser would accept it. Everything else,
        # refused ticks included, goes to the exact parser, which counts it and gives the reason.
        candidates, quotes, rest = split_ticks(decoded)
        for e in rest:
            ev = e.get("ev") if type(e) is dict else None
            if ev != "status" and self._exact(e):
                batches.setdefault(str(ev), []).append(e)
        trades: list[Event] = []
        # The rules make `i` a str: safe in a set key.
        for e in candidates:
            trade_id = e.get("i")
            if trade_id is not None:
                key = (e["sym"], e["x"], trade_id)
                if key in recent or key in older:
                    duplicates += 1
                    continue
                recent.add(key)
            trades.append(e)
        if len(recent) >= dedupe.capacity:
            dedupe.rotate()
        if trades:
            batches["T"] = trades
        if quotes:
            batches["Q"] = quotes
        for name, events in batches.items():
            stats.events[name] += len(events)
        stats.duplicates += duplicates
        stats.sequence_anomalies += _sequence_anomalies(trades, self._seq_t) + _sequence_anomalies(quotes, self._seq_q)

    def _exact(self, item: Any) -> bool:
        """Judge an event (or an undecodable frame) with the exact parser; count and keep what it refuses."""
        parsed = parse_ws_frame(item if isinstance(item, bytes) else orjson.dumps([item]))
        for rejected in parsed.rejected:
            self.stats.rejected += 1
            self.rejects.append(rejected)
            if self._reject_sink is not None:
                self._reject_sink(rejected)
        for ev, count in parsed.skipped.items():
            self.stats.skipped[ev] += count
        return not parsed.rejected and not parsed.skipped and isinstance(item, dict)

    # -- I/O thread --------------------------------------------------------------------------------------------------

    def _send_soon(self, action: str, topics: Sequence[str]) -> None:
        loop, ws = self._loop, self._ws
        if loop is None or ws is None or not self._authenticated.is_set() or loop.is_closed():
            return  # sent by the subscription restore when the connection is (re)established
        message = orjson.dumps({"action": action, "params": ",".join(topics)})
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._send_quietly(ws, message), loop)

    @staticmethod
    async def _send_quietly(ws: ClientConnection, message: bytes) -> None:
        # A send racing a drop is harmless: the restore after the reconnect sends the full set again.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(message.decode())

    def _thread_main(self, url: str, key: str) -> None:
        try:
            asyncio.run(self._supervise(url, key))
        except BaseException as exc:  # surfaced to connect()/run() on the caller's thread
            self.error = exc
        finally:
            self._authenticated.clear()
            self._stopped.set()
            self.queue.wake()

    async def _supervise(self, url: str, key: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stopping:
            return
        attempt = 0
        first = True
        try:
            while not self._stop.is_set():
                self.stats.connect_attempts += 1
                delivered = False
                try:
                    delivered = await self._session(url, key, reconnected=not first)
                except (AuthError, MaxConnections):
                    raise
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, TransportError) as exc:
                    log.warning("polygon websocket %s: %s", self.cluster, _describe(exc))
                finally:
                    self._ws = None
                    self._authenticated.clear()
                if self._stop.is_set():
                    break
                first = False
                attempt = 0 if delivered else attempt + 1
                delay = self.backoff.delay(attempt, self._rng)
                self.stats.reconnects += 1
                log.info("polygon websocket %s: reconnecting in %.2f s", self.cluster, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
        finally:
            self._loop = None

    async def _session(self, url: str, key: str, reconnected: bool) -> bool:
        """One connection: handshake, subscriptions, read loop. Returns True when data frames arrived."""
        self._evicted = None
        async with connect(
            url,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            compression=self.compression,
            max_size=None,
            max_queue=64,
            user_agent_header="feast-market-data",
        ) as ws:
            await self._handshake(ws, key)
            self._ws = ws
            self.stats.connections += 1
            with self._lock:
                topics = list(self._subscriptions)
            if topics:
                await ws.send(orjson.dumps({"action": "subscribe", "params": ",".join(topics)}).decode())
            if reconnected:
                self.queue.put(StreamGap("reconnect", time.time_ns()))
            self._authenticated.set()
            # Shutdown closes the socket, which ends the read loop's recv(); the loop itself never polls a flag.
            closer = asyncio.ensure_future(self._close_on_stop(ws))
            try:
                return await self._read_loop(ws)
            finally:
                closer.cancel()

    async def _close_on_stop(self, ws: ClientConnection) -> None:
        assert self._stop is not None
        await self._stop.wait()
        await ws.close()

    async def _read_loop(self, ws: ClientConnection) -> bool:
        put = self.queue.put
        stats = self.stats
        clock = time.time_ns
        recv = ws.recv
        delivered = False
        while True:
            try:
                frame = await recv(decode=False)
            except ConnectionClosed as exc:
                if self._stop is not None and self._stop.is_set():
                    return delivered
                self._raise_if_evicted(exc)
                raise
            stats.frames_received += 1
            if frame[:64].find(b'"status"') >= 0:
                self._on_status(frame)
                continue
            stats.data_frames += 1
            put((clock(), frame))
            delivered = True

    def _on_status(self, frame: bytes) -> None:
        with contextlib.suppress(orjson.JSONDecodeError):
            for e in orjson.loads(frame):
                if not isinstance(e, dict) or e.get("ev") != "status":
                    continue
                status = str(e.get("status"))
                self.stats.status_messages[status] += 1
                if status == "max_connections":
                    self._evicted = str(e.get("message", "maximum number of connections exceeded"))
                elif status not in ("success", "connected", "auth_success"):
                    log.warning("polygon websocket %s status %s: %s", self.cluster, status, e.get("message"))

    def _raise_if_evicted(self, exc: ConnectionClosed) -> None:
        if self._evicted is not None:
            raise MaxConnections(self._evicted, vendor=VENDOR, endpoint=f"websocket/{self.cluster}") from None
        rcvd = exc.rcvd
        if rcvd is not None and rcvd.code == 1008 and "max" in (rcvd.reason or "").lower():
            raise MaxConnections(rcvd.reason, vendor=VENDOR, endpoint=f"websocket/{self.cluster}") from None

    async def _handshake(self, ws: ClientConnection, key: str) -> None:
        endpoint = f"websocket/{self.cluster}"
        try:
            first = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), self.open_timeout))
            self._check_statuses(first, endpoint)
            await ws.send(orjson.dumps({"action": "auth", "params": key}).decode())
            while True:
                reply = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), self.open_timeout))
                statuses = self._check_statuses(reply, endpoint)
                if "auth_success" in statuses:
                    return
        except ConnectionClosed as exc:
            self._raise_if_evicted(exc)
            raise TransportError(
                f"closed during the handshake ({_describe(exc)})", vendor=VENDOR, endpoint=endpoint
            ) from None
        except orjson.JSONDecodeError:
            raise TransportError("handshake frame was not JSON", vendor=VENDOR, endpoint=endpoint) from None

    def _check_statuses(self, frame: Any, endpoint: str) -> list[str]:
        statuses = []
        for e in frame if isinstance(frame, list) else [frame]:
            if not isinstance(e, dict) or e.get("ev") != "status":
                continue
            status = str(e.get("status"))
            self.stats.status_messages[status] += 1
            statuses.append(status)
            message = str(e.get("message", ""))
            if status == "auth_failed":
                # The server's message never contains the key; ours does not either.
                raise AuthError(f"authentication failed: {message}", vendor=VENDOR, endpoint=endpoint)
            if status == "max_connections":
                raise MaxConnections(
                    message or "maximum number of connections exceeded", vendor=VENDOR, endpoint=endpoint
                )
            if status == "auth_timeout":
                raise TransportError("server timed out waiting for auth", vendor=VENDOR, endpoint=endpoint)
        return statuses


def _sequence_anomalies(events: list[Event], last: dict[str, int]) -> int:
    """Events whose sequence number ``q`` repeats or steps back from the last one of their symbol (kept in ``last``).

    Polygon's q increases per ticker but is not contiguous: only repeats and steps back count. The rules make ``q``
    an int when present, so the comparison is safe.
    """
    anomalies = 0
    for e in events:
        q = e.get("q")
        if q is not None:
            prev = last.get(e["sym"])
            if prev is not None and q <= prev:
                anomalies += 1
            else:
                last[e["sym"]] = q
    return anomalies


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"connection closed (code {rcvd.code} {rcvd.reason!r})" if rcvd else "connection lost"
    return f"{type(exc).__name__}: {exc}"


__all__ = [
    "CLUSTERS",
    "PREFIXES",
    "Backoff",
    "Deduper",
    "FrameQueue",
    "MaxConnections",
    "PolygonWebSocketClient",
    "StreamGap",
    "StreamStats",
]
