"""The Polygon.io (Massive) stocks WebSocket simulator: a ``websockets`` server replaying a simulated session.

Protocol, as the real cluster speaks it (every server frame is a JSON array of events):

1. on connect: ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``;
2. the client sends ``{"action":"auth","params":"<key>"}`` and gets ``auth_success`` or ``auth_failed`` (then the
   connection closes); no auth within ``auth_timeout`` seconds gives ``auth_timeout`` and a close;
3. ``{"action":"subscribe","params":"T.AAPL,Q.*,AM.MSFT"}`` is acked per topic (``subscribed to: T.AAPL``), likewise
   ``unsubscribe``; ``*`` stands for every symbol.

One connection per key: a second authenticated connection evicts the first with a ``max_connections`` status and
close code 1008.

The feed replays one session of the ground truth (:class:`Replay`): ``T`` trades (exactly
:func:`~ingestion.simulators.market.minute_trades`, in SIP-time order, ``t`` in epoch ms), ``Q`` quotes, ``A``
per-second and ``AM`` per-minute aggregates (from the raw minute bars), batched into frames, at ``rate`` events per
second or as fast as possible. It is one market for every client: it starts at the first subscription and runs on
whether a client is connected or not, so a client that drops misses what was sent meanwhile (refill from REST, where
the same trades are served). :attr:`PolygonWsServer.emitted` is the ground truth of what the feed produced and
:meth:`PolygonWsServer.sent` what each key was actually sent (duplicates included), so tests can prove that nothing
was lost.

Faults (:class:`WsFaults`, changeable while running): drop every N seconds or N messages with close code 1008/1011,
duplicate trades (same ``i``), out-of-order sequence numbers, and a slow-consumer mode in which a client that does
not read makes the server stall and then disconnect it (``slow_consumer``, close code 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ingestion.simulators import polygon_ticks as ticks
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.rollup import roll_up, trades_as_bars

Event = dict[str, Any]

CONNECTED = {"ev": "status", "status": "connected", "message": "Connected Successfully"}
AUTH_SUCCESS = {"ev": "status", "status": "auth_success", "message": "authenticated"}
AUTH_FAILED = {"ev": "status", "status": "auth_failed", "message": "authentication failed"}
AUTH_TIMEOUT = {"ev": "status", "status": "auth_timeout", "message": "no authentication received"}
MAX_CONNECTIONS = {
    "ev": "status",
    "status": "max_connections",
    "message": "Maximum number of websocket connections exceeded. You have reached the connection limit for your "
    "account.",
}
SLOW_CONSUMER = {
    "ev": "status",
    "status": "slow_consumer",
    "message": "Disconnected: client is not reading fast enough",
}
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class Replay:
    """Which session the feed replays and how fast.

    ``day`` defaults to the market's last session; ``symbols`` to the market's universe; ``start_minute`` and
    ``minutes`` pick a slice of the regular session (minute 0 = 09:30 New York); ``rate`` is events per second over
    all channels (``None`` = as fast as possible); ``batch`` is the most events in one frame.
    """

    day: dt.date | str | None = None
    symbols: tuple[str, ...] | None = None
    start_minute: int = 0
    minutes: int | None = None
    rate: float | None = None
    batch: int = 100


@dataclass
class WsFaults:
    """WebSocket faults; fields may be changed while the server runs. ``None`` / ``False`` = off."""

    drop_every_messages: int | None = None
    """Close each connection after it was sent this many events."""
    drop_every_seconds: float | None = None
    """Close each connection this many seconds after it authenticated."""
    close_code: int = INTERNAL_ERROR
    """Close code of the drops above: 1011 (server error / keepalive) or 1008 (policy)."""
    duplicate_every: int | None = None
    """Send every Nth trade to a connection twice in its frame (same ``i``)."""
    out_of_order_every: int | None = None
    """In every Nth frame holding two trades or more, swap the first two (sequence numbers go backwards)."""
    slow_consumer: bool = False
    """Disconnect a client whose outgoing queue stays full for ``slow_consumer_grace`` seconds."""
    slow_consumer_frames: int = 32
    slow_consumer_grace: float = 0.2


def _frame(*events: Event) -> str:
    return orjson.dumps(list(events)).decode()


# -- the replay's events ----------------------------------------------------------------------------------------------


def _minute_events(market: Market, symbol: str, bar: pd.Series, day_state: dict[str, float]) -> list[tuple[int, Event]]:
    """The events of one symbol's minute, each with its sort key in ns (trades, quotes, then A and AM at their end)."""
    m = ticks.minute_ticks(market, symbol, bar)
    out: list[tuple[int, Event]] = []
    for k in range(len(m.trade_sip_ns)):
        out.append((int(m.quote_sip_ns[k]), ticks.quote_event(m, k)))
        out.append((int(m.trade_sip_ns[k]), ticks.trade_event(m, k)))
    trades = trades_as_bars(m.price, m.size)
    seconds = roll_up(trades, m.trade_sip_ns // 1_000_000_000, notional=True)
    for sec, second in zip(seconds.index.tolist(), seconds.to_dict("records"), strict=True):
        day_state["volume"] += second["volume"]
        day_state["notional"] += second["notional"]
        out.append(
            ((sec + 1) * 1_000_000_000, _agg_event("A", symbol, second, sec * 1000, sec * 1000 + 1000, day_state))
        )
    start = int(bar["window_start_ms"])
    # Volume and trade count of the whole minute from its trades; prices and vwap are set from the bar below.
    minute = roll_up(trades, np.zeros(len(trades), dtype=np.int64)).to_dict("records")[0]
    am = _agg_event("AM", symbol, minute, start, start + 60_000, day_state)
    am.update({"o": float(bar["open"]), "h": float(bar["high"]), "l": float(bar["low"]), "c": float(bar["close"])})
    am["vw"] = float(bar["vwap"])
    out.append(((start + 60_000) * 1_000_000 + 1, am))
    return out


def _agg_event(ev: str, symbol: str, bar: Mapping[str, Any], s: int, e: int, day: dict[str, float]) -> Event:
    """A Polygon aggregate event of one rolled-up window (:func:`~ingestion.simulators.rollup.roll_up`)."""
    volume = float(bar["volume"])
    return {
        "ev": ev,
        "sym": symbol,
        "v": int(volume),
        "av": int(day["volume"]),
        "op": day["open"],
        "vw": float(bar["vwap"]),
        "o": float(bar["open"]),
        "c": float(bar["close"]),
        "h": float(bar["high"]),
        "l": float(bar["low"]),
        "a": round(day["notional"] / day["volume"], 4),
        "z": round(volume / int(bar["transactions"])),
        "s": s,
        "e": e,
    }


def replay_events(market: Market, replay: Replay) -> Iterator[Event]:
    """Every event of a replay, in feed order. Deterministic: this is the ground truth the feed emits."""
    day = pd.Timestamp(replay.day).date() if replay.day is not None else market.sessions()[-1]
    symbols = replay.symbols or market.symbols
    bars: dict[str, pd.DataFrame] = {}
    state: dict[str, dict[str, float]] = {}
    for symbol in symbols:
        raw = market.minute_bars(symbol, day, adjusted=False)
        if raw.empty:
            continue
        minute_index = (raw["window_start_ms"] - raw["window_start_ms"].iloc[0]) // 60_000
        before = raw[minute_index < replay.start_minute]
        # The day's running volume / VWAP start from the minutes before the slice, as they would on a live feed.
        state[symbol] = {
            "open": float(raw["open"].iloc[0]),
            "volume": float(before["volume"].sum()),
            "notional": float((before["vwap"] * before["volume"]).sum()),
        }
        bars[symbol] = raw.assign(minute=minute_index)
    if not bars:
        return
    last = max(int(b["minute"].max()) for b in bars.values())
    stop = last + 1 if replay.minutes is None else min(last + 1, replay.start_minute + replay.minutes)
    for minute in range(replay.start_minute, stop):
        events: list[tuple[int, Event]] = []
        for symbol, frame in bars.items():
            row = frame[frame["minute"] == minute]
            if not row.empty:
                events.extend(_minute_events(market, symbol, row.iloc[0], state[symbol]))
        events.sort(key=lambda pair: pair[0])
        for _, event in events:
            yield event


# -- the server -------------------------------------------------------------------------------------------------------


@dataclass(eq=False)  # identity semantics: connections live in sets
class _Conn:
    ws: ServerConnection
    key: str | None = None
    subs: set[str] = field(default_factory=set)
    queue: asyncio.Queue[list[Event]] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    sent_events: int = 0
    frames: int = 0
    trades: int = 0
    closing: bool = False

    def wants(self, event: Event) -> bool:
        return f"{event['ev']}.{event['sym']}" in self.subs or f"{event['ev']}.*" in self.subs


class PolygonWsServer:
    """The stocks WebSocket simulator, running its own event loop in a thread; start/stop from sync code.

    ``keys``: accepted keys (default ``{POLYGON_SIM_KEY}``); ``auth_timeout``: seconds to wait for the auth message;
    ``record=False`` keeps no ground-truth log of emitted and sent events (a long-running ``simulate`` process would
    otherwise grow by every event of the session).
    """

    def __init__(
        self,
        market: Market,
        *,
        keys: set[str] | frozenset[str] | None = None,
        replay: Replay | None = None,
        faults: WsFaults | None = None,
        auth_timeout: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
        cluster: str = "stocks",
        record: bool = True,
    ) -> None:
        self.market = market
        self.record = record
        self.keys = set(keys or {POLYGON_SIM_KEY})
        self.replay = replay or Replay()
        self.faults = faults or WsFaults()
        self.auth_timeout = auth_timeout
        self.cluster = cluster
        self._host, self._port = host, port
        self.emitted: list[Event] = []
        """Every event the feed produced, in order (the ground truth of the replay so far)."""
        self.counters: Counter[str] = Counter()
        """connections, auth_success, auth_failed, auth_timeout, evictions, drops, duplicates, out_of_order,
        slow_consumer, frames."""
        self.replay_done = threading.Event()
        self._sent: dict[str, list[Event]] = {}
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._by_key: dict[str, _Conn] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._feed: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._bound_port = 0

    # -- sync face ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The stocks cluster URL, e.g. ``ws://127.0.0.1:PORT/stocks``."""
        if not self._bound_port:
            raise RuntimeError("polygon-ws simulator is not running")
        return f"ws://{self._host}:{self._bound_port}/{self.cluster}"

    @property
    def feed_host(self) -> str:
        """``host:port``: what the official client takes as ``feed`` (with ``secure=False``)."""
        return self.url.split("://", 1)[1].rsplit("/", 1)[0]

    def start(self) -> PolygonWsServer:
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._open())
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="polygon-ws", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop, self._thread, self._bound_port = None, None, 0

    def __enter__(self) -> PolygonWsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_replay(self, timeout: float = 30.0) -> bool:
        """Block until the replay has emitted its last event; False on timeout."""
        return self.replay_done.wait(timeout)

    def sent(self, key: str = POLYGON_SIM_KEY, ev: str | None = None, symbol: str | None = None) -> list[Event]:
        """Events written to the connections of ``key`` so far (in order, duplicates included)."""
        with self._lock:
            events = list(self._sent.get(key, ()))
        return [e for e in events if (ev is None or e["ev"] == ev) and (symbol is None or e.get("sym") == symbol)]

    def emitted_events(self, ev: str | None = None, symbol: str | None = None) -> list[Event]:
        """Events the feed produced so far, optionally of one type and one symbol."""
        with self._lock:
            events = list(self.emitted)
        return [e for e in events if (ev is None or e["ev"] == ev) and (symbol is None or e.get("sym") == symbol)]

    def truth(self, ev: str | None = None, symbol: str | None = None) -> list[Event]:
        """The full replay, computed from the ground truth without running it."""
        return [
            e
            for e in replay_events(self.market, self.replay)
            if (ev is None or e["ev"] == ev) and (symbol is None or e.get("sym") == symbol)
        ]

    # -- event loop side ---------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        # Its own logger: the library's INFO lines ("server listening") would clutter the `simulate` output.
        quiet = logging.getLogger("ingestion.simulators.polygon_ws.server")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self._server = await serve(self._handle, self._host, self._port, max_queue=64, logger=quiet)
        self._bound_port = int(next(iter(self._server.sockets)).getsockname()[1])

    async def _close(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _ensure_feed(self) -> None:
        if self._feed is None:
            self._feed = asyncio.get_running_loop().create_task(self._run_feed())

    async def _run_feed(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[Event] = []
        count = 0
        t0 = loop.time()
        for event in replay_events(self.market, self.replay):
            batch.append(event)
            if len(batch) < self.replay.batch:
                continue
            count += len(batch)
            await self._publish(batch)
            batch = []
            await self._pace(t0, count)
        if batch:
            await self._publish(batch)
        self.replay_done.set()

    async def _pace(self, t0: float, count: int) -> None:
        rate = self.replay.rate
        if rate is None:
            await asyncio.sleep(0)
            return
        delay = t0 + count / rate - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, delay))

    async def _publish(self, batch: list[Event]) -> None:
        if self.record:
            with self._lock:
                self.emitted.extend(batch)
        for conn in list(self._conns):
            if conn.key is None or conn.closing or not conn.subs:
                continue
            events = [e for e in batch if conn.wants(e)]
            if not events:
                continue
            events = self._damage(conn, events)
            if conn.queue.full() and self.faults.slow_consumer:
                self.counters["stalls"] += 1
                task = asyncio.get_running_loop().create_task(self._stall_then_drop(conn))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                continue
            await conn.queue.put(events)

    def _damage(self, conn: _Conn, events: list[Event]) -> list[Event]:
        faults = self.faults
        if faults.duplicate_every:
            out: list[Event] = []
            for event in events:
                out.append(event)
                if event["ev"] == "T":
                    conn.trades += 1
                    if conn.trades % faults.duplicate_every == 0:
                        out.append(dict(event))
                        self.counters["duplicates"] += 1
            events = out
        trades = [i for i, e in enumerate(events) if e["ev"] == "T"]
        if faults.out_of_order_every and len(trades) >= 2:
            conn.frames += 1
            if conn.frames % faults.out_of_order_every == 0:
                a, b = trades[0], trades[1]
                events[a], events[b] = events[b], events[a]
                self.counters["out_of_order"] += 1
        return events

    async def _stall_then_drop(self, conn: _Conn) -> None:
        if conn.closing:
            return
        conn.closing = True
        await asyncio.sleep(self.faults.slow_consumer_grace)
        self.counters["slow_consumer"] += 1
        await self._drop(conn, POLICY_VIOLATION, "slow consumer", SLOW_CONSUMER)

    async def _drop(self, conn: _Conn, code: int, reason: str, status: Event | None = None) -> None:
        conn.closing = True
        if status is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.send(_frame(status)), 0.5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(code, reason), 2)
        conn.ws.transport.abort()

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path.rstrip("/") != f"/{self.cluster}":
            await ws.close(POLICY_VIOLATION, "unknown cluster")
            return
        depth = self.faults.slow_consumer_frames if self.faults.slow_consumer else 256
        if self.faults.slow_consumer:
            # A small kernel send buffer, like the real cluster's bounded per-client buffer: a client that stops
            # reading fills it within a few frames instead of after megabytes of loopback buffering.
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        conn = _Conn(ws, queue=asyncio.Queue(maxsize=depth))
        self._conns.add(conn)
        self.counters["connections"] += 1
        writer: asyncio.Task[None] | None = None
        timer: asyncio.Task[None] | None = None
        try:
            await ws.send(_frame(CONNECTED))
            if not await self._authenticate(conn):
                return
            writer = asyncio.get_running_loop().create_task(self._write(conn))
            if self.faults.drop_every_seconds:
                timer = asyncio.get_running_loop().create_task(self._drop_after(conn, self.faults.drop_every_seconds))
            async for message in ws:
                await self._command(conn, message)
        except ConnectionClosed:
            pass
        finally:
            for task in (writer, timer):
                if task is not None:
                    task.cancel()
            self._conns.discard(conn)
            if conn.key is not None and self._by_key.get(conn.key) is conn:
                del self._by_key[conn.key]

    async def _authenticate(self, conn: _Conn) -> bool:
        try:
            raw = await asyncio.wait_for(conn.ws.recv(), self.auth_timeout)
        except TimeoutError:
            self.counters["auth_timeout"] += 1
            await self._drop(conn, POLICY_VIOLATION, "auth timeout", AUTH_TIMEOUT)
            return False
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = {}
        key = message.get("params") if isinstance(message, dict) and message.get("action") == "auth" else None
        if not isinstance(key, str) or key not in self.keys:
            self.counters["auth_failed"] += 1
            await self._drop(conn, POLICY_VIOLATION, "authentication failed", AUTH_FAILED)
            return False
        previous = self._by_key.get(key)
        if previous is not None and previous is not conn:
            self.counters["evictions"] += 1
            previous.closing = True
            # In the background: the new connection must not wait for the evicted client's close handshake.
            task = asyncio.get_running_loop().create_task(
                self._drop(previous, POLICY_VIOLATION, "max_connections", MAX_CONNECTIONS)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn.key = key
        self._by_key[key] = conn
        self.counters["auth_success"] += 1
        await conn.ws.send(_frame(AUTH_SUCCESS))
        return True

    async def _command(self, conn: _Conn, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await conn.ws.send(_frame({"ev": "status", "status": "error", "message": "invalid JSON"}))
            return
        action = message.get("action") if isinstance(message, dict) else None
        params = message.get("params", "") if isinstance(message, dict) else ""
        if action not in ("subscribe", "unsubscribe") or not isinstance(params, str):
            await conn.ws.send(_frame({"ev": "status", "status": "error", "message": f"unknown action: {action}"}))
            return
        for topic in (t.strip() for t in params.split(",") if t.strip()):
            if action == "subscribe":
                conn.subs.add(topic)
                text = f"subscribed to: {topic}"
            else:
                conn.subs.discard(topic)
                text = f"unsubscribed to: {topic}"
            await conn.ws.send(_frame({"ev": "status", "status": "success", "message": text}))
        if action == "subscribe":
            self._ensure_feed()

    async def _write(self, conn: _Conn) -> None:
        while True:
            events = await conn.queue.get()
            if conn.closing:
                continue
            try:
                await conn.ws.send(orjson.dumps(events).decode())
            except ConnectionClosed:
                return
            self.counters["frames"] += 1
            conn.sent_events += len(events)
            if self.record:
                with self._lock:
                    self._sent.setdefault(conn.key or "", []).extend(events)
            limit = self.faults.drop_every_messages
            if limit and conn.sent_events >= limit:
                self.counters["drops"] += 1
                await self._drop(conn, self.faults.close_code, "simulated drop")
                return

    async def _drop_after(self, conn: _Conn, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.counters["drops"] += 1
        await self._drop(conn, self.faults.close_code, "simulated drop")


def polygon_ws_server(
    market: Market,
    *,
    keys: set[str] | frozenset[str] | None = None,
    replay: Replay | None = None,
    faults: WsFaults | None = None,
    port: int = 0,
    auth_timeout: float = 5.0,
    record: bool = True,
) -> PolygonWsServer:
    """A stocks WebSocket simulator over ``market`` (not started: use it as a context manager or call ``start()``)."""
    return PolygonWsServer(
        market, keys=keys, replay=replay, faults=faults, port=port, auth_timeout=auth_timeout, record=record
    )
