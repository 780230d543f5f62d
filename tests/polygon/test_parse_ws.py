"""WebSocket frames: the spec's example per channel, the handshake frames, and malformed input that never raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingestion.polygon.ws_events import AggBatch, StatusEvent, WsFrame, parse_ws_frame

PARSED = {"T", "Q", "A", "AM", "status"}


def examples(vendor: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((vendor / "polygon" / "ws-examples.json").read_text())
    return data


def handshake(vendor: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vendor / "polygon" / "ws-handshake-frames.json").read_text())
    return data


def agg_matches(batch: AggBatch, event: dict[str, Any]) -> None:
    assert len(batch) == 1
    assert (batch.symbol[0], batch.open[0], batch.high[0], batch.low[0], batch.close[0]) == (
        event["sym"],
        event["o"],
        event["h"],
        event["l"],
        event["c"],
    )
    assert (batch.start_ms[0], batch.end_ms[0]) == (event["s"], event["e"])
    assert batch.volume[0] == event.get("v") and batch.day_volume[0] == event.get("av")
    assert batch.vwap[0] == event.get("vw") and batch.day_open[0] == event.get("op")
    assert batch.day_vwap[0] == event.get("a") and batch.otc[0] is False


def test_every_channel_example_is_parsed_or_counted(vendor: Path) -> None:
    for channel, event in examples(vendor).items():
        out = parse_ws_frame(orjson.dumps([event]))
        assert out.rejected == [], channel
        assert out.event_count == 1, channel
        ev = event["ev"]
        if ev == "T":
            t = out.trades
            assert (t.symbol, t.price, t.size, t.sip_ms, t.exchange) == (
                [event["sym"]],
                [event["p"]],
                [event["s"]],
                [event["t"]],
                [event["x"]],
            ), channel
            assert t.trade_id == [event.get("i")] and t.sequence == [event.get("q")]
            assert t.conditions == [event.get("c")] and t.tape == [event.get("z")]
        elif ev == "Q":
            q = out.quotes
            assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size, q.sip_ms) == (
                [event["sym"]],
                [event["bp"]],
                [event["bs"]],
                [event["ap"]],
                [event["as"]],
                [event["t"]],
            ), channel
            assert q.bid_exchange == [event["bx"]] and q.ask_exchange == [event["ax"]]
        elif ev == "A":
            agg_matches(out.second_aggs, event)
        elif ev == "AM":
            agg_matches(out.minute_aggs, event)
        else:
            assert out.skipped == {ev: 1}, channel


def test_stock_trade_example_literal_values(vendor: Path) -> None:
    out = parse_ws_frame(json.dumps([examples(vendor)["/stocks/T"]]))
    t = out.trades
    assert (t.symbol[0], t.exchange[0], t.trade_id[0], t.price[0], t.size[0]) == ("MSFT", 4, "12345", 114.125, 100)
    assert (t.sip_ms[0], t.sequence[0], t.conditions[0], t.tape[0]) == (1536036818784, 3681328, [0, 12], 3)


def test_handshake_frames(vendor: Path) -> None:
    frames = handshake(vendor)
    for key, status in [
        ("server_on_connect", "connected"),
        ("server_auth_reply", "auth_success"),
        ("server_subscribe_ack", "success"),
        ("server_unsubscribe_ack", "success"),
    ]:
        out = parse_ws_frame(json.dumps(frames[key]))
        assert out.statuses == [StatusEvent(status, frames[key][0]["message"])]
    trades = [parse_ws_frame(json.dumps(frame)).trades for frame in frames["server_trade_frames"]]
    assert [b.symbol for b in trades] == [["AAPL"], ["AMZN", "AMZN"]]
    assert trades[1].trade_id == ["72815", "799"] and trades[1].conditions == [[14, 37, 41], None]
    assert trades[1].sip_ms == [1651684192536, 1651684192717]


def test_many_events_in_one_frame_are_batched_by_type() -> None:
    frame = [
        {"ev": "T", "sym": "A", "x": 1, "i": "1", "p": 1.0, "s": 10, "t": 1, "q": 1},
        {"ev": "Q", "sym": "A", "bx": 1, "bp": 0.9, "bs": 1, "ax": 2, "ap": 1.1, "as": 2, "t": 2},
        {"ev": "T", "sym": "B", "x": 1, "i": "2", "p": 2.0, "s": 0.5, "t": 3, "q": 2},
        {"ev": "status", "status": "max_connections", "message": "Maximum number of websocket connections exceeded."},
    ]
    out = parse_ws_frame(orjson.dumps(frame))
    assert out.trades.symbol == ["A", "B"] and out.trades.size == [10, 0.5]
    assert out.quotes.symbol == ["A"] and out.statuses[0].status == "max_connections"
    assert out.event_count == 4


T_OK: dict[str, Any] = {"ev": "T", "sym": "AAPL", "x": 4, "i": "1", "p": 10.0, "s": 100, "t": 1651684192462}
BAD_EVENTS: list[tuple[Any, str]] = [
    ({k: v for k, v in T_OK.items() if k != "p"}, "missing field 'p'"),
    ({**T_OK, "p": "10.0"}, "p is '10.0', expected a non-negative finite number"),
    ({**T_OK, "p": -1.0}, "p is -1.0, expected a non-negative finite number"),
    ({**T_OK, "s": True}, "s is True, expected a non-negative finite number"),
    ({**T_OK, "t": 1.5}, "t is 1.5, expected epoch milliseconds"),
    ({**T_OK, "sym": ""}, "sym is not a non-empty string"),
    ({**T_OK, "i": 5}, "i is 5, expected str"),
    ({**T_OK, "q": True}, "q is True, expected int"),
    ({"ev": "Q", "sym": "AAPL", "bp": 1.0, "bs": 1, "ap": 1.1, "t": 1}, "missing field 'as'"),
    (
        {"ev": "AM", "sym": "X", "o": 2.0, "h": 1.0, "l": 0.5, "c": 1.0, "s": 1, "e": 2},
        "high/low do not bound open and close",
    ),
    ({"ev": "A", "sym": "X", "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "s": 5, "e": 2}, "window end e before start s"),
    ({"ev": "A", "sym": "X", "o": 1, "h": 1, "l": 1, "c": 1, "s": 1, "e": 2, "v": -1}, "negative volume"),
    ({"ev": "status", "status": 5}, "status and message must be strings"),
    ({"sym": "AAPL"}, "event is not an object with a string 'ev'"),
    ("T", "event is not an object with a string 'ev'"),
    (None, "event is not an object with a string 'ev'"),
]


def test_bad_events_are_rejected_with_reasons_and_the_rest_parse() -> None:
    frame = [T_OK, *[e for e, _ in BAD_EVENTS], {**T_OK, "i": "2"}, {"ev": "LULD", "T": "MSFT"}]
    out = parse_ws_frame(orjson.dumps(frame))
    assert [(r.payload, r.reason) for r in out.rejected] == BAD_EVENTS
    assert out.trades.trade_id == ["1", "2"] and out.skipped == {"LULD": 1}
    assert out.event_count == len(frame)
    assert all(r.source == "polygon websocket" for r in out.rejected)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "frame is not valid JSON"),
        (b"", "frame is not valid JSON"),
        (b'[{"ev":"T"', "frame is not valid JSON"),
        ("42", "frame is a JSON int, expected an array"),
        (b'"hello"', "frame is a JSON str, expected an array"),
        (b"\xff\xfe", "frame is not valid JSON"),
    ],
)
def test_malformed_frames_never_raise(frame: bytes | str, reason: str) -> None:
    out = parse_ws_frame(frame)
    assert isinstance(out, WsFrame) and len(out.rejected) == 1
    assert out.rejected[0].reason.startswith(reason)
    assert out.event_count == 1 and len(out.trades) == 0


def test_a_lone_object_frame_is_read_as_one_event() -> None:
    out = parse_ws_frame(orjson.dumps(T_OK))
    assert out.trades.trade_id == ["1"]


def test_empty_array_frame_is_empty() -> None:
    out = parse_ws_frame(b"[]")
    assert out.event_count == 0 and out.rejected == []


def test_batch_columns_stay_in_step_whatever_is_rejected() -> None:
    frame = [{**T_OK, "i": str(n)} if n % 2 else e for n, (e, _) in enumerate(BAD_EVENTS)]
    frame += [{"ev": "Q", "sym": "A", "bp": 1.0, "bs": 1, "ap": 1.1, "as": 1, "t": 1, "bx": "x"}]
    frame += [{"ev": "AM", "sym": "A", "o": 1, "h": 1, "l": 1, "c": 1, "s": 1, "e": 2, "otc": "no"}]
    out = parse_ws_frame(orjson.dumps(frame))
    for batch in (out.trades, out.quotes, out.second_aggs, out.minute_aggs):
        assert len({len(column) for column in vars(batch).values()}) == 1
    assert out.event_count == len(frame)


@pytest.mark.parametrize("seed", range(3))
def test_seeded_fuzz_truncated_and_mutated_frames_never_raise(seed: int) -> None:
    import random

    rng = random.Random(seed)
    frame = orjson.dumps([T_OK, *[e for e, _ in BAD_EVENTS if isinstance(e, dict)]])
    for _ in range(200):
        cut = frame[: rng.randrange(len(frame) + 1)]
        pos = rng.randrange(len(cut) + 1)
        mutated = cut[:pos] + bytes([rng.randrange(256)]) + cut[pos:]
        out = parse_ws_frame(mutated)
        assert out.event_count >= 1 or mutated.strip() in (b"[]",)
        assert all(r.reason for r in out.rejected)
