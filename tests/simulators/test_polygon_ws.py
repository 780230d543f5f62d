"""Polygon WebSocket simulator: handshake, subscriptions, the replay's ground truth, eviction and faults."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from fixtures.simulators import TEST_REPLAY, MakePolygonWs
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market, minute_trades
from ingestion.simulators.polygon_ws import PolygonWsServer, Replay, WsFaults

Event = dict[str, Any]


def recv(ws: ClientConnection, timeout: float = 10.0) -> list[Event]:
    frame = orjson.loads(ws.recv(timeout=timeout))
    assert isinstance(frame, list)  # every server frame is a JSON array
    return frame


@contextmanager
def session(
    server: PolygonWsServer, key: str = POLYGON_SIM_KEY, sock: socket.socket | None = None
) -> Iterator[ClientConnection]:
    """A connected and authenticated client."""
    ws = connect(server.url, sock=sock, max_queue=4) if sock is not None else connect(server.url)
    try:
        assert recv(ws) == [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]
        ws.send(orjson.dumps({"action": "auth", "params": key}).decode())
        assert recv(ws)[0]["status"] == "auth_success"
        yield ws
    finally:
        ws.close()


def subscribe(ws: ClientConnection, params: str) -> None:
    ws.send(orjson.dumps({"action": "subscribe", "params": params}).decode())
    for topic in params.split(","):
        assert recv(ws) == [{"ev": "status", "status": "success", "message": f"subscribed to: {topic}"}]


def collect(ws: ClientConnection, done: Callable[[list[Event]], bool]) -> list[Event]:
    """Data events until ``done`` says enough (status events are kept out)."""
    events: list[Event] = []
    while not done(events):
        events.extend(e for e in recv(ws) if e["ev"] != "status")
    return events


def key_of(event: Event) -> tuple[Any, ...]:
    return (event["sym"], event["i"], event["p"], event["s"], event["t"], event["q"])


def closed_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent (1006 when it sent none)."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    return info.value.rcvd.code if info.value.rcvd is not None else 1006


def test_handshake_subscribe_and_unsubscribe_acks(polygon_ws: PolygonWsServer) -> None:
    with session(polygon_ws) as ws:
        subscribe(ws, "T.AAPL,Q.AAPL")
        ws.send(orjson.dumps({"action": "unsubscribe", "params": "Q.AAPL"}).decode())
        acks: list[Event] = []
        while not any(e.get("message") == "unsubscribed to: Q.AAPL" for e in acks):
            acks.extend(recv(ws))
        assert {"ev": "status", "status": "success", "message": "unsubscribed to: Q.AAPL"} in acks


def test_bad_key_gets_auth_failed_and_is_closed(polygon_ws: PolygonWsServer) -> None:
    with connect(polygon_ws.url) as ws:
        recv(ws)
        ws.send(orjson.dumps({"action": "auth", "params": "wrong"}).decode())
        assert recv(ws)[0]["status"] == "auth_failed"
        assert closed_code(ws) == 1008


def test_no_auth_in_time_gets_auth_timeout(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws(auth_timeout=0.1)
    with connect(server.url) as ws:
        assert recv(ws)[0]["status"] == "connected"
        assert recv(ws)[0]["status"] == "auth_timeout"
        assert closed_code(ws) == 1008
    assert server.counters["auth_timeout"] == 1


def test_replay_delivers_every_trade_of_the_ground_truth(make_polygon_ws: MakePolygonWs, market: Market) -> None:
    server = make_polygon_ws()
    truth = server.truth("T", "AAPL")
    with session(server) as ws:
        subscribe(ws, "T.AAPL")
        got = collect(ws, lambda events: len(events) >= len(truth))
    assert [key_of(e) for e in got] == [key_of(e) for e in truth]
    assert {e["ev"] for e in got} == {"T"} and {e["sym"] for e in got} == {"AAPL"}
    # In SIP-time order, ms timestamps, and equal to the market's trades of those minutes.
    assert [e["t"] for e in got] == sorted(e["t"] for e in got)
    bars = market.minute_bars("AAPL", TEST_REPLAY.day or "", adjusted=False).head(TEST_REPLAY.minutes or 0)
    expected = [minute_trades(market, "AAPL", bar) for _, bar in bars.iterrows()]
    assert [e["p"] for e in got] == [float(p) for t in expected for p in t.price]
    assert [e["i"] for e in got] == [i for t in expected for i in t.trade_id]
    assert server.wait_replay(30)
    assert [key_of(e) for e in server.emitted_events("T", "AAPL")] == [key_of(e) for e in truth]
    assert [key_of(e) for e in server.sent(ev="T")] == [key_of(e) for e in truth]


def test_minute_aggregates_match_the_bars_and_wildcards_cover_all_symbols(
    make_polygon_ws: MakePolygonWs, market: Market
) -> None:
    server = make_polygon_ws()
    with session(server) as ws:
        subscribe(ws, "AM.*")
        got = collect(ws, lambda events: len(events) >= 2 * (TEST_REPLAY.minutes or 0))
    assert {e["sym"] for e in got} == {"AAPL", "MSFT"} and {e["ev"] for e in got} == {"AM"}
    bars = market.minute_bars("MSFT", TEST_REPLAY.day or "", adjusted=False).head(TEST_REPLAY.minutes or 0)
    msft = [e for e in got if e["sym"] == "MSFT"]
    assert [e["s"] for e in msft] == bars["window_start_ms"].tolist()
    assert [e["e"] - e["s"] for e in msft] == [60_000] * len(msft)
    assert [(e["o"], e["h"], e["l"], e["c"], e["v"]) for e in msft] == [
        (b.open, b.high, b.low, b.close, int(b.volume)) for b in bars.itertuples()
    ]
    assert msft[-1]["av"] == int(bars["volume"].sum())


def test_second_connection_with_the_same_key_evicts_the_first(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws()
    with session(server) as first, session(server) as second:
        status = recv(first)
        assert status[0]["status"] == "max_connections"
        assert closed_code(first) == 1008
        subscribe(second, "T.MSFT")
        assert collect(second, lambda events: len(events) > 0)[0]["sym"] == "MSFT"
    assert server.counters["evictions"] == 1


def test_drop_every_n_messages_with_close_code_1011(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws(faults=WsFaults(drop_every_messages=100, close_code=1011))
    with session(server) as ws:
        subscribe(ws, "T.*")
        assert closed_code(ws) == 1011
    sent = server.sent(ev="T")
    assert 100 <= len(sent) < 100 + TEST_REPLAY.batch
    assert server.counters["drops"] == 1


def test_drop_every_n_seconds_with_close_code_1008(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws(faults=WsFaults(drop_every_seconds=0.05, close_code=1008))
    with session(server) as ws:
        assert closed_code(ws) == 1008
    assert server.counters["drops"] == 1


def test_duplicates_repeat_a_trade_id_and_lose_nothing(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws(faults=WsFaults(duplicate_every=10))
    truth = server.truth("T", "AAPL")
    with session(server) as ws:
        subscribe(ws, "T.AAPL")
        got = collect(ws, lambda events: len(events) >= len(truth) + len(truth) // 10)
    ids = [e["i"] for e in got]
    assert len(ids) == len(truth) + len(truth) // 10
    assert set(ids) == {e["i"] for e in truth}
    assert server.counters["duplicates"] == len(truth) // 10


def test_out_of_order_sequence_numbers(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws(faults=WsFaults(out_of_order_every=2))
    truth = server.truth("T", "AAPL")
    with session(server) as ws:
        subscribe(ws, "T.AAPL")
        got = collect(ws, lambda events: len(events) >= len(truth))
    q = [e["q"] for e in got]
    assert any(b < a for a, b in itertools.pairwise(q))
    assert sorted(key_of(e) for e in got) == sorted(key_of(e) for e in truth)
    assert server.counters["out_of_order"] > 0


def test_slow_consumer_is_stalled_then_disconnected(make_polygon_ws: MakePolygonWs) -> None:
    replay = Replay(day="2024-03-04", symbols=("AAPL", "MSFT"), minutes=120, batch=20)
    server = make_polygon_ws(replay=replay, faults=WsFaults(slow_consumer=True, slow_consumer_frames=4))
    host, port = server.feed_host.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    gone = threading.Event()
    with session(server, sock=sock) as ws:
        subscribe(ws, "T.*,Q.*,A.*")
        # Stop reading; the server must notice and cut the client off (bounded wait, no timing asserted).
        deadline = time.monotonic() + 60
        while server.counters["slow_consumer"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.counters["slow_consumer"] == 1
        try:
            while True:
                ws.recv(timeout=10)
        except (ConnectionClosed, TimeoutError):
            gone.set()
    assert gone.is_set()
    assert len(server.sent()) < len(server.emitted_events())


def test_paced_replay_batches_quotes_and_second_aggregates(make_polygon_ws: MakePolygonWs) -> None:
    replay = Replay(day="2024-03-04", symbols=("AAPL", "MSFT"), minutes=1, rate=50_000, batch=10)
    server = make_polygon_ws(replay=replay)
    quotes, seconds = server.truth("Q", "AAPL"), server.truth("A", "AAPL")
    frames: list[list[Event]] = []
    with session(server) as ws:
        subscribe(ws, "Q.AAPL,A.AAPL")
        while sum(len(f) for f in frames) < len(quotes) + len(seconds):
            frames.append([e for e in recv(ws) if e["ev"] != "status"])
    assert all(0 < len(frame) <= replay.batch for frame in frames if frame)
    got = [e for frame in frames for e in frame]
    assert [e for e in got if e["ev"] == "Q"] == quotes
    assert [e for e in got if e["ev"] == "A"] == seconds
    assert all(q["bp"] < q["ap"] for q in quotes)
    # Per-second aggregates add up to the minute's trades.
    assert sum(a["v"] for a in seconds) == sum(t["s"] for t in server.truth("T", "AAPL"))
    assert all(a["e"] - a["s"] == 1000 for a in seconds)
