"""WebSocket receive and the stream bridge, side by side on the same simulated stream, in one run.

A feeder **process** (so it never competes for this process's GIL) replays the simulator's ground-truth ticks (``T``
and ``Q`` of a session slice, :func:`ingestion.simulators.polygon_ws.replay_events`) as pre-encoded frames, once per
connection, speaking Polygon's handshake. Each consumer then reads the very same frames:

* ``raw loop``: a bare ``websockets`` receive loop with ``orjson.loads`` (the floor of any Python client);
* ``massive``: the official ``massive`` WebSocketClient (it builds a model object per event);
* ``our client``: :class:`~ingestion.polygon.websocket.PolygonWebSocketClient` (queue, validation, dedupe, callbacks);
* ``our bridge``: the client plus :class:`~ingestion.stream.bridge.StreamBridge` writing ``realtime_quotes`` into a
  real Redis (Feast's bytes) and Parquet, as fast as the frames come, and again paced at a fixed rate
  (``PACED_RATE`` ticks/s) for the tick -> online latency under sustained load.

* ``via Redis Streams buffer``: the same frames through the durable tick buffer, paced (receive -> online latency
  per tick, side by side with the in-process bridge) and as fast as fed (its capacity): a reader here, two bridge
  consumer processes (:mod:`ingestion.bench.stream_buffer`). Issue 23's goal: >= 100k ticks/s and p99 <= 250 ms.

Then the bridge's own rows are written online through our writer and through Feast ``push``, for rows/s of each.
Throughput is ticks/s over the wall time from the first data frame to the last tick processed. Goals (issue 7):
client >= 0.7x raw loop; bridge >= 100k ticks/s with p99 tick -> online <= 250 ms; online writes >= 5x Feast push.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

DESCRIPTION = "WebSocket receive and the stream bridge vs a raw websockets loop and the official client"
PACED_RATE = 100_000
SYMBOLS_FULL = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "TSLA", "AMD", "JPM", "NFLX", "SPY", "QQQ")
DAY = "2024-03-04"


# -- the feeder (runs in its own process) ---------------------------------------------------------------------------


def build_frames(symbols: tuple[str, ...], minutes: int, batch: int) -> list[str]:
    """The replay's trades and quotes, ``batch`` events per frame, encoded once."""
    from ingestion.simulators.market import Market
    from ingestion.simulators.polygon_ws import Replay, replay_events

    replay = Replay(day=DAY, symbols=symbols, start_minute=0, minutes=minutes)
    events = [e for e in replay_events(Market(), replay) if e["ev"] in ("T", "Q")]
    return [orjson.dumps(events[i : i + batch]).decode() for i in range(0, len(events), batch)]


async def _feed(frames: list[str], events: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    from ingestion.simulators.polygon_ws import AUTH_SUCCESS, CONNECTED

    async def handle(ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        rate = float(query.get("rate", ["0"])[0]) or None
        await ws.send(orjson.dumps([CONNECTED]).decode())
        await ws.recv()  # auth: the feeder accepts any key
        await ws.send(orjson.dumps([AUTH_SUCCESS]).decode())
        subscribe = orjson.loads(await ws.recv())
        for topic in str(subscribe.get("params", "")).split(","):
            ack = {"ev": "status", "status": "success", "message": f"subscribed to: {topic}"}
            await ws.send(orjson.dumps([ack]).decode())
        loop = asyncio.get_running_loop()
        per_frame = events / len(frames)
        t0 = loop.time()
        for k, frame in enumerate(frames):
            await ws.send(frame)
            if rate is not None:
                delay = t0 + (k + 1) * per_frame / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        await ws.close()

    async with serve(handle, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT={port} EVENTS={events}", flush=True)
        await asyncio.Future()


def feeder_main(symbols: tuple[str, ...], minutes: int) -> None:
    frames = build_frames(symbols, minutes, batch=100)
    events = sum(len(orjson.loads(f)) for f in frames)
    asyncio.run(_feed(frames, events))


class Feeder:
    """The feeder process: ``url`` and ``events`` (ticks per replay) once started."""

    def __init__(self, symbols: tuple[str, ...], minutes: int) -> None:
        cmd = [sys.executable, "-m", "ingestion.bench.stream", "--feeder", ",".join(symbols), str(minutes)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT="):
            self.stop()
            raise RuntimeError(f"the feeder did not start: {line!r}")
        parts = dict(p.split("=") for p in line.split())
        self.url = f"ws://127.0.0.1:{parts['PORT']}/stocks"
        self.events = int(parts["EVENTS"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- consumers -------------------------------------------------------------------------------------------------------

TOPICS = "T.*,Q.*"


async def _raw(url: str, events: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(orjson.dumps({"action": "auth", "params": "bench"}).decode())
        await ws.recv()
        await ws.send(orjson.dumps({"action": "subscribe", "params": TOPICS}).decode())
        count, t0 = 0, 0.0
        async for message in ws:
            batch = orjson.loads(message)
            if batch and batch[0].get("ev") == "status":
                continue
            if not t0:
                t0 = time.perf_counter()
            count += len(batch)
        elapsed = time.perf_counter() - t0
    if count != events:
        raise RuntimeError(f"raw loop got {count} of {events} ticks")
    return count / elapsed


def raw_loop(url: str, events: int) -> float:
    """Ticks/s of a bare websockets + orjson loop."""
    return asyncio.run(_raw(url, events))


def massive_client(url: str, events: int) -> float:
    """Ticks/s of the official ``massive`` WebSocketClient on the same frames."""
    from massive import WebSocketClient

    host = urlsplit(url).netloc
    client = WebSocketClient(
        api_key="bench", feed=host, market="stocks", secure=False, subscriptions=TOPICS.split(","), max_reconnects=0
    )
    state = {"count": 0, "t0": 0.0, "t1": 0.0}

    def handle(messages: list[Any]) -> None:
        if not state["t0"]:
            state["t0"] = time.perf_counter()
        state["count"] += len(messages)
        state["t1"] = time.perf_counter()

    client.run(handle, compression=None, max_size=None)
    if state["count"] != events:
        raise RuntimeError(f"massive got {state['count']} of {events} ticks")
    return state["count"] / (state["t1"] - state["t0"])


def our_client(url: str, events: int) -> float:
    """Ticks/s of our client: every tick through the queue, validation, dedupe and a callback."""
    from ingestion.polygon.websocket import Backoff, PolygonWebSocketClient

    # The feeder closes after one replay; a reconnect would replay it again into the count, so none happens here.
    client = PolygonWebSocketClient(api_key="bench", ws_url=url, backoff=Backoff(initial=3600, cap=3600))
    seen = {"n": 0}

    def count(batch: list[Any]) -> None:
        seen["n"] += len(batch)

    client.register_callback("T.", count)
    client.register_callback("Q.", count)
    client.subscribe(TOPICS)
    # Receive times of every frame: the clock starts when the first one arrives, as for the raw loop.
    client.track_receipts()
    client.connect()
    deadline = time.monotonic() + 600
    while seen["n"] < events and time.monotonic() < deadline:
        client.dispatch(timeout=0.05)
    elapsed = (time.time_ns() - client.take_receipts()[0]) / 1e9
    client.disconnect()
    if seen["n"] != events:
        raise RuntimeError(f"our client got {seen['n']} of {events} ticks")
    return events / elapsed


class _Recording:
    """An online sink that keeps every frame it wrote (the rows are reused for the writer comparison)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frames: list[Any] = []

    def write(self, view: str, frame: Any) -> Any:
        self.frames.append(frame)
        return self.inner.write(view, frame)


def our_bridge(url: str, events: int, store: Any, data_dir: Path) -> dict[str, Any]:
    """Ticks/s and tick -> online latency of the bridge, writing into the real Redis and Parquet."""
    from ingestion.polygon.websocket import PolygonWebSocketClient
    from ingestion.store.offline import OfflineWriter
    from ingestion.store.online import OnlineWriter
    from ingestion.stream.bridge import StreamBridge
    from ingestion.stream.heap import frozen_heap

    client = PolygonWebSocketClient(api_key="bench", ws_url=url)
    client.subscribe(TOPICS)
    writer = OnlineWriter(store)
    writer.layout("realtime_quotes")  # resolve the view from the registry before the clock starts
    sink = _Recording(writer)
    bridge = StreamBridge(client, sink, OfflineWriter(data_dir), None, flush_interval_ms=100)
    done = {"at": 0.0}

    def finished() -> bool:
        # The feeder closes after its last frame and the client reconnects (a server close is a drop to it): stop
        # at the replay's last tick and time it there.
        if bridge.aggregator.trades + bridge.aggregator.quotes >= events:
            done["at"] = done["at"] or time.perf_counter()
            return True
        return False

    t0 = time.perf_counter()
    with frozen_heap():  # as the `stream` command does before its loop
        bridge.run(seconds=600, until=finished)
    if not done["at"]:
        raise RuntimeError(f"the bridge processed {bridge.aggregator.trades + bridge.aggregator.quotes} of {events}")
    elapsed = done["at"] - t0
    fresh = bridge.freshness()
    return {
        "ticks_per_s": events / elapsed,
        "p50_ms": fresh["recv_p50_ms"],
        "p99_ms": fresh["recv_p99_ms"],
        "online_rows": bridge.stats.online_rows,
        "rows": sink.frames,
    }


def online_writes(store: Any, frames: list[Any], universe: int) -> dict[str, float]:
    """Rows/s of the bridge's rows written online by our writer and by Feast ``push``.

    ``as produced``: the bridge's own micro-batches (one row per changed symbol). ``universe``: the same rows relabelled
    over ``universe`` symbols and cut into batches of that size, as a ``*`` subscription produces them.
    """
    import pandas as pd

    from ingestion.store.online import OnlineWriter
    from ingestion.stream.bridge import FeastPushSink

    rows = pd.concat(frames, ignore_index=True)
    wide = rows.loc[rows.index.repeat(max(1, -(-universe * 4 // len(rows))))].reset_index(drop=True)
    wide = wide.iloc[: (len(wide) // universe) * universe]
    wide["symbol"] = [f"S{i % universe:05d}" for i in range(len(wide))]
    big = [wide.iloc[i : i + universe] for i in range(0, len(wide), universe)]
    writer, push = OnlineWriter(store), FeastPushSink(store)
    push.write("realtime_quotes", frames[0])  # Feast's first push loads the registry: not part of the figure
    rates: dict[str, float] = {}
    day = 0
    for label, batches in (("as produced", frames), (f"{universe} symbols", big)):
        for name, sink in (("ours", writer), ("feast push", push)):
            day += 1
            # Event times newer than anything stored, so neither writer skips a row as not newer.
            shifted = [f.assign(event_timestamp=f["event_timestamp"] + pd.Timedelta(days=day)) for f in batches]
            t0 = time.perf_counter()
            for frame in shifted:
                sink.write("realtime_quotes", frame)
            rates[f"{name}, {label}"] = sum(len(f) for f in shifted) / (time.perf_counter() - t0)
    return rates


def run(quick: bool) -> dict[str, Any]:
    """All consumers on the same frames; see the module docstring."""
    from ingestion.bench.common import peak_rss_mb
    from ingestion.bench.stream_buffer import run_buffered
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_cli, open_store
    from ingestion.store.redis_server import RedisServer
    from ingestion.stream.aggregator import session_bounds

    symbols = SYMBOLS_FULL[:4] if quick else SYMBOLS_FULL
    minutes = 2 if quick else 30  # 30 min of 12 symbols: about 200k ticks, 2 s at the paced rate
    feeder = Feeder(symbols, minutes)
    session_bounds(1_709_562_600_000)  # load the exchange calendar once, before any clock starts
    try:
        with RedisServer() as redis_server, tempfile.TemporaryDirectory() as tmp:
            s = replace(settings({}), data_dir=Path(tmp), redis_url=redis_server.url)
            applied = feast_cli(s, redis_server.url, "apply")
            if applied.returncode != 0:
                raise RuntimeError(f"feast apply failed: {applied.stderr}")
            store = open_store(s, redis_server.url)
            raw = raw_loop(feeder.url, feeder.events)
            official = massive_client(feeder.url, feeder.events)
            ours = our_client(feeder.url, feeder.events)
            fast = our_bridge(feeder.url, feeder.events, store, Path(tmp) / "fast")
            paced_url = f"{feeder.url}?rate={PACED_RATE}"
            paced = our_bridge(paced_url, feeder.events, store, Path(tmp) / "paced")
            buffered = run_buffered(paced_url, feeder.events, redis_server.url, Path(tmp), Path(tmp) / "buffered")
            flat_out = run_buffered(feeder.url, feeder.events, redis_server.url, Path(tmp), Path(tmp) / "flat_out")
            writes = online_writes(store, fast["rows"] + paced["rows"], universe=200 if quick else 1000)
    finally:
        feeder.stop()
    labels = sorted({name.split(", ", 1)[1] for name in writes})
    rows = [
        {"variant": "raw websockets + orjson", "ticks_per_s": raw},
        {"variant": "massive WebSocketClient", "ticks_per_s": official},
        {"variant": "our client", "ticks_per_s": ours},
        {"variant": "our bridge (as fast as fed)", "ticks_per_s": fast["ticks_per_s"], "p50_ms": fast["p50_ms"],
         "p99_ms": fast["p99_ms"]},
        {"variant": f"our bridge (paced {PACED_RATE:,}/s)", "ticks_per_s": paced["ticks_per_s"],
         "p50_ms": paced["p50_ms"], "p99_ms": paced["p99_ms"]},
        {"variant": f"via Redis Streams buffer, 2 consumers (paced {PACED_RATE:,}/s)",
         "ticks_per_s": buffered["ticks_per_s"], "p50_ms": buffered["p50_ms"], "p99_ms": buffered["p99_ms"]},
        {"variant": "via Redis Streams buffer, paced, to the last online write",
         "ticks_per_s": buffered["ticks_per_s_to_last_write"]},
        {"variant": "via Redis Streams buffer, 2 consumers (as fast as fed)", "ticks_per_s": flat_out["ticks_per_s"],
         "p50_ms": flat_out["p50_ms"], "p99_ms": flat_out["p99_ms"]},
        {"variant": "via Redis Streams buffer, as fast as fed, to the last online write",
         "ticks_per_s": flat_out["ticks_per_s_to_last_write"]},
        *({"variant": f"online write {name} (rows/s)", "ticks_per_s": rate} for name, rate in writes.items()),
    ]  # fmt: skip
    # One process runs every consumer (the feeder is its own process), so the peak RSS is shared by the rows.
    rss = peak_rss_mb()
    for row in rows:
        row["peak_rss_mb"] = rss
    return {
        "ticks": feeder.events,
        "symbols": len(symbols),
        "rows": rows,
        "ratios": {
            "client / raw": ours / raw,
            "client / massive": ours / official,
            "bridge / raw": fast["ticks_per_s"] / raw,
            "buffered / in-process bridge, paced": buffered["ticks_per_s"] / paced["ticks_per_s"],
            **{
                f"online ours / feast push, {label}": writes[f"ours, {label}"] / writes[f"feast push, {label}"]
                for label in labels
            },
        },
        "goals": {
            "client >= 0.7x raw": ours / raw >= 0.7,
            "bridge >= 100k ticks/s": fast["ticks_per_s"] >= 100_000,
            "paced p99 <= 250 ms": (paced["p99_ms"] or 0.0) <= 250.0,
            # Capacity from the unpaced feed, to the last online write (a paced feed cannot show more than its rate).
            "buffered, 2 consumers: >= 100k ticks/s": flat_out["ticks_per_s_to_last_write"] >= 100_000,
            "buffered, 2 consumers: p99 <= 250 ms": (buffered["p99_ms"] or 0.0) <= 250.0,
            "online >= 5x feast push": all(
                writes[f"ours, {label}"] / writes[f"feast push, {label}"] >= 5.0 for label in labels
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion.bench.stream", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a tiny stream (seconds)")
    parser.add_argument("--feeder", nargs=2, metavar=("SYMBOLS", "MINUTES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.feeder:
        feeder_main(tuple(args.feeder[0].split(",")), int(args.feeder[1]))
        return 0
    result = run(quick=args.quick)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
