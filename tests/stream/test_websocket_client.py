"""PolygonWebSocketClient against the loopback WebSocket simulator, plus unit tests of its policies."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fixtures.stream import STREAM_REPLAY, MakeClient

from ingestion.errors import AuthError
from ingestion.polygon.websocket import (
    Backoff,
    FrameQueue,
    MaxConnections,
    PolygonWebSocketClient,
    StreamGap,
)
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_ws import WsFaults

TOPICS = ["T.AAPL", "Q.AAPL", "T.MSFT", "Q.MSFT"]


def pump(client: PolygonWebSocketClient, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Dispatch until ``until()`` holds; a bounded loop (the guard fails the test, it measures nothing)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached (the stream stalled)"
        client.dispatch(timeout=0.02)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def drained(server: Any, client: PolygonWebSocketClient) -> Callable[[], bool]:
    """The replay is over and every frame the server wrote to us has been dispatched."""
    return lambda: (
        server.replay_done.is_set()
        and server.counters["frames"] == client.stats.data_frames
        and client.queue_depth() == 0
    )


def test_subscriptions_are_restored_after_forced_drops(
    make_polygon_ws: Any, make_ws_client: MakeClient, stream_market: Market
) -> None:
    # The feed runs on while the client reconnects, so on a loaded machine a connection receives fewer events: drops
    # every 500 events leave room for at least three even if half the replay is missed.
    server = make_polygon_ws(replay=STREAM_REPLAY, faults=WsFaults(drop_every_messages=500))
    client = make_ws_client(server)
    seen: dict[int, set[str]] = {}

    def record(events: list[dict[str, Any]]) -> None:
        topics = seen.setdefault(client.stats.connections, set())
        topics.update(f"{e['ev']}.{e['sym']}" for e in events)

    client.register_callback("T.", record)
    client.register_callback("Q.", record)
    gaps: list[StreamGap] = []
    client.register_gap_callback(gaps.append)
    client.subscribe(",".join(TOPICS))
    client.connect()
    # Settled: the replay is over, everything received was dispatched, and the client came back after every drop.
    pump(
        client,
        lambda: (
            server.replay_done.is_set()
            and client.queue_depth() == 0
            and client.stats.connections == server.counters["drops"] + 1
        ),
    )

    assert client.stats.reconnects >= 3, f"only {client.stats.reconnects} reconnects; counters {server.counters}"
    assert server.counters["connections"] == client.stats.connections
    assert len(gaps) == client.stats.reconnects and {g.reason for g in gaps} == {"reconnect"}
    # Every connection that lived until its forced drop (500 events) carried every subscribed topic.
    full = [n for n in sorted(seen) if 1 < n < client.stats.connections]
    assert full, f"no reconnected connection lived a full drop cycle: {sorted(seen)}"
    for n in full:
        assert seen[n] == set(TOPICS), f"connection {n} lost subscriptions: {seen[n]}"
    assert client.subscriptions == TOPICS


def test_duplicates_dropped_and_sequence_anomalies_counted(
    make_polygon_ws: Any, make_ws_client: MakeClient, stream_market: Market
) -> None:
    server = make_polygon_ws(replay=STREAM_REPLAY, faults=WsFaults(duplicate_every=7, out_of_order_every=3))
    client = make_ws_client(server)
    trades: list[dict[str, Any]] = []
    client.register_callback("T.", trades.extend)
    client.subscribe(TOPICS)
    client.connect()
    pump(client, drained(server, client))

    keys = [(e["sym"], e["x"], e["i"]) for e in trades]
    assert len(keys) == len(set(keys)), "a duplicate trade reached the callback"
    sent = server.sent(ev="T")
    assert set(keys) == {(e["sym"], e["x"], e["i"]) for e in sent}, "a distinct trade was lost"
    assert server.counters["duplicates"] > 0
    assert client.stats.duplicates == len(sent) - len(set(keys)) == server.counters["duplicates"]
    # Oracle: repeats or steps back of q per symbol among the distinct trades, in the order they were sent.
    expected, last, firsts = 0, {}, set()
    for e in sent:
        key = (e["sym"], e["x"], e["i"])
        if key in firsts:
            continue
        firsts.add(key)
        if e["sym"] in last and e["q"] <= last[e["sym"]]:
            expected += 1
        else:
            last[e["sym"]] = e["q"]
    assert expected > 0
    assert client.stats.sequence_anomalies == expected


def test_auth_failed_raises_once_without_a_retry_storm(make_polygon_ws: Any, make_ws_client: MakeClient) -> None:
    server = make_polygon_ws()
    client = make_ws_client(server, api_key="wrong-key-123")
    client.subscribe(TOPICS)
    with pytest.raises(AuthError) as caught:
        client.connect(timeout=10)
    wait_for(lambda: client.stopped)
    assert server.counters["connections"] == 1
    assert server.counters["auth_failed"] == 1
    assert client.stats.connect_attempts == 1
    assert "wrong-key-123" not in str(caught.value)
    assert caught.value.vendor == "polygon"
    # The I/O thread has ended: nothing is left that could try again.
    with pytest.raises(AuthError):
        client.run(poll_timeout=0.01)
    assert server.counters["connections"] == 1


def test_second_connection_evicts_the_first_with_max_connections(
    make_polygon_ws: Any, make_ws_client: MakeClient
) -> None:
    server = make_polygon_ws()
    first = make_ws_client(server)
    first.subscribe(TOPICS)
    first.connect()
    second = make_ws_client(server)
    second.subscribe(TOPICS)
    second.connect()
    wait_for(lambda: first.stopped)
    assert isinstance(first.error, MaxConnections)
    assert first.stats.connect_attempts == 1, "an evicted client must not reconnect (it would evict the other)"
    assert second.connected
    assert server.counters["evictions"] == 1
    assert server.counters["connections"] == 2


def test_key_is_read_from_the_environment_when_connecting(
    make_polygon_ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_polygon_ws()
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    client = PolygonWebSocketClient(ws_url=server.url)
    with pytest.raises(AuthError):
        client.connect()
    assert server.counters["connections"] == 0
    monkeypatch.setenv("MASSIVE_API_KEY", "sim-polygon-key")
    late = PolygonWebSocketClient(ws_url=server.url)
    try:
        late.connect()
        assert late.connected
    finally:
        late.disconnect()


def test_disconnect_is_clean_and_keeps_queued_frames(
    make_polygon_ws: Any, make_ws_client: MakeClient, stream_market: Market
) -> None:
    server = make_polygon_ws(replay=STREAM_REPLAY)
    client = make_ws_client(server)
    trades: list[dict[str, Any]] = []
    client.register_callback("T.", trades.extend)
    client.subscribe(TOPICS)
    client.connect()
    wait_for(lambda: client.queue_depth() >= 3)
    client.disconnect()
    assert client.stopped and client.error is None
    dispatched = 0
    while n := client.dispatch(timeout=0.0):
        dispatched += n
    assert dispatched == client.stats.data_frames
    assert len(trades) == client.stats.events["T"] > 0


# -- unit tests of the policies ---------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.5)
    rng = random.Random(1)
    for attempt in range(200):  # no lifetime cap: attempt 200 still has a delay
        base = min(30.0, 0.5 * 2.0**attempt)
        delay = backoff.delay(attempt, rng)
        assert base * 0.5 <= delay <= base
    delays = {round(backoff.delay(3, rng), 6) for _ in range(20)}
    assert len(delays) > 1, "no jitter"


def test_queue_overflow_drops_newest_and_marks_a_gap() -> None:
    queue = FrameQueue(max_frames=2)
    assert queue.put((1, b"[]")) and queue.put((2, b"[]"))
    assert not queue.put((3, b"[]")) and not queue.put((4, b"[]"))
    assert queue.dropped == 2
    taken = queue.drain(10, timeout=0.0)
    assert taken == [(1, b"[]"), (2, b"[]")]
    assert queue.put((5, b"[]"))
    marker, frame = queue.drain(10, timeout=0.0)
    assert isinstance(marker, StreamGap) and marker.reason == "overflow" and marker.dropped_frames == 2
    assert frame == (5, b"[]")


def test_what_the_bridge_needs_is_asked_of_the_client_not_read_from_its_queue() -> None:
    client = PolygonWebSocketClient(api_key="unused", ws_url="ws://127.0.0.1:1/stocks")
    client.queue.put((1, b"[]"))
    client.queue.put((2, b"[]"))
    assert client.queue_depth() == 2
    assert client.dispatch(timeout=0.0) == 2
    assert client.queue_depth() == 0
    assert client.take_receipts() == [], "receive times are kept only when asked for"
    client.track_receipts()
    client.queue.put((3, b"[]"))
    client.queue.put(StreamGap("reconnect", 4))  # a gap marker is not a frame: no receive time
    client.queue.put((5, b"[]"))
    client.dispatch(timeout=0.0)
    assert client.take_receipts() == [3, 5]
    assert client.take_receipts() == [], "taken receipts are not handed out twice"

    # wake() returns a dispatch waiting on an empty queue (the bridge's stop() relies on it), long before 600 s.
    done = threading.Event()

    def wait_for_frames() -> None:
        client.dispatch(timeout=600.0)
        done.set()

    waiter = threading.Thread(target=wait_for_frames, daemon=True)
    waiter.start()

    def woken() -> bool:
        client.wake()  # again until it lands: a wake before the wait begins is cleared by dispatch itself
        return done.is_set()

    wait_for(woken)
    waiter.join()


def test_bad_events_are_rejected_with_reasons_and_good_ones_pass() -> None:
    client = PolygonWebSocketClient(api_key="unused", ws_url="ws://127.0.0.1:1/stocks")
    got: list[dict[str, Any]] = []
    client.register_callback("T.", got.extend)
    good = {"ev": "T", "sym": "AAPL", "x": 4, "i": "1", "p": 10.5, "s": 100, "t": 1_700_000_000_000, "q": 1}
    frame = [
        good,
        {**good, "i": "2", "p": "10.5"},  # price as a string
        {**good, "i": "3", "t": None},
        {k: v for k, v in good.items() if k != "sym"},
        {"ev": "XX", "sym": "AAPL"},  # unknown event type: counted as skipped
        {**good, "i": "4", "s": 7.5},  # fractional size is valid
    ]
    client.queue.put((time.time_ns(), orjson.dumps(frame)))
    client.queue.put((time.time_ns(), b"[{not json"))
    client.dispatch(timeout=0.0)
    assert [e["i"] for e in got] == ["1", "4"]
    assert client.stats.rejected == 4
    reasons = [r.reason for r in client.rejects]
    assert any("p is" in r for r in reasons) and any("t is" in r for r in reasons)
    assert any("'sym'" in r for r in reasons) and any("not valid JSON" in r for r in reasons)
    assert client.stats.skipped["XX"] == 1


def test_ws_url_selects_the_cluster_and_channels_are_validated() -> None:
    assert PolygonWebSocketClient(ws_url="ws://127.0.0.1:9", cluster="options").url == "ws://127.0.0.1:9/options"
    assert PolygonWebSocketClient(ws_url="ws://h:1/stocks").url == "ws://h:1/stocks"
    with pytest.raises(ValueError):
        PolygonWebSocketClient(ws_url="http://h")
    with pytest.raises(ValueError):
        PolygonWebSocketClient(cluster="bonds")
    client = PolygonWebSocketClient(ws_url="ws://h:1")
    with pytest.raises(ValueError):
        client.subscribe("AAPL")
    with pytest.raises(ValueError):
        client.register_callback("X.", lambda events: None)
    client.subscribe("T.AAPL, Q.AAPL")
    client.unsubscribe(["Q.AAPL"])
    assert client.subscriptions == ["T.AAPL"]


def test_a_consumer_that_stops_reading_overflows_our_queue_not_the_server(
    make_polygon_ws: Any, make_ws_client: MakeClient, stream_market: Market
) -> None:
    # The server disconnects clients that stop reading (slow_consumer); the read loop must keep reading regardless.
    server = make_polygon_ws(replay=STREAM_REPLAY, faults=WsFaults(slow_consumer=True, slow_consumer_frames=4))
    client = make_ws_client(server, max_queue_frames=3)
    gaps: list[StreamGap] = []
    client.register_gap_callback(gaps.append)
    client.subscribe(TOPICS)
    client.connect()
    wait_for(lambda: client.queue.dropped >= 5)  # nobody dispatches: the queue fills and overflows
    client.dispatch(timeout=0.0)  # room again; the next frame to arrive is queued behind a gap marker
    wait_for(lambda: client.queue_depth() > 0)
    pump(client, lambda: bool(gaps))
    assert gaps[0].reason == "overflow" and gaps[0].dropped_frames >= 5
    assert server.counters["slow_consumer"] == 0 and server.counters["stalls"] == 0
    assert client.stats.connections == 1


def test_a_peer_that_stops_answering_pings_is_reconnected() -> None:
    """Heartbeat: the server stops reading (so it never answers a ping); the client drops it and reconnects."""
    import asyncio
    import threading

    from websockets.asyncio.server import ServerConnection, serve

    from ingestion.simulators.polygon_ws import AUTH_SUCCESS, CONNECTED

    connections: list[int] = []
    ready = threading.Event()
    port: list[int] = []

    async def handle(ws: ServerConnection) -> None:
        connections.append(1)
        await ws.send(orjson.dumps([CONNECTED]).decode())
        await ws.recv()
        await ws.send(orjson.dumps([AUTH_SUCCESS]).decode())
        await ws.recv()
        ws.transport.pause_reading()  # a hung peer: pings are never read, so never answered
        await stop.wait()

    async def main() -> None:
        async with serve(handle, "127.0.0.1", 0, close_timeout=0.1) as server:
            port.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await stop.wait()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    client = PolygonWebSocketClient(
        api_key="k", ws_url=f"ws://127.0.0.1:{port[0]}/stocks", ping_interval=0.05, ping_timeout=0.05,
        close_timeout=0.1, backoff=Backoff(initial=0.005, cap=0.01),
    )  # fmt: skip
    try:
        client.subscribe(TOPICS)
        client.connect()
        wait_for(lambda: client.stats.connections >= 2)
        assert client.stats.reconnects >= 1 and client.error is None
    finally:
        client.disconnect()
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
    assert len(connections) >= 2
