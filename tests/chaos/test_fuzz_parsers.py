"""Property-based fuzzing of every vendor parser and of the WebSocket client's frame handler.

Each payload starts from a real simulator response (or real WebSocket events) and is damaged by hypothesis: rows
dropped, fields removed or given any JSON value (huge integers, NaN/Infinity tokens, nested objects, odd strings),
rows replaced by non-objects, the envelope broken, the body truncated or replaced by random bytes. For every payload
the parser must either raise a typed :class:`~ingestion.errors.IngestionError` (``SchemaError``) or account for every
row: good rows + rejected rows = rows in. Any other exception is a crash and fails the test; a row that is neither
kept nor rejected is a silent drop and fails it too.

The default suite runs a few hundred payloads in total, derandomized; ``-m slow`` runs more than 10k.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import orjson
import pytest
from fixtures.chaos import Figures, add_row
from fixtures.uw_simulator import UW_NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.errors import IngestionError
from ingestion.polygon.parse import parse_aggs, parse_grouped_daily
from ingestion.polygon.reference import parse_news, parse_ticker_details
from ingestion.polygon.ticks import parse_quotes, parse_trades
from ingestion.polygon.websocket import PolygonWebSocketClient
from ingestion.polygon.ws_events import parse_ws_frame
from ingestion.rejects import ParseResult
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import polygon_rest_server
from ingestion.simulators.unusual_whales import CLIENT_API_ID, uw_server
from ingestion.unusual_whales import parse as uw

SHORT_EXAMPLES = 12
LONG_EXAMPLES = 650  # x 18 targets: more than 10k payloads with -m slow
COUNTS: Counter[str] = Counter()
Parser = Callable[[bytes], ParseResult]

# -- real payloads to start from -----------------------------------------------------------------------------------

POLYGON_TARGETS: dict[str, tuple[str, Parser]] = {
    "polygon aggs": (
        "/v2/aggs/ticker/AAPL/range/1/minute/2024-03-04/2024-03-04?limit=12",
        lambda b: parse_aggs(b, symbol="AAPL", timespan="minute", multiplier=1, adjusted=True, endpoint="aggs"),
    ),
    "polygon aggs day": (
        "/v2/aggs/ticker/MSFT/range/1/day/2024-02-01/2024-02-20",
        lambda b: parse_aggs(b, symbol="MSFT", timespan="day", multiplier=1, adjusted=True, endpoint="aggs"),
    ),
    "polygon grouped": (
        "/v2/aggs/grouped/locale/us/market/stocks/2024-03-04",
        lambda b: parse_grouped_daily(b, adjusted=True, endpoint="grouped"),
    ),
    "polygon trades": (
        "/v3/trades/AAPL?timestamp=2024-03-04&limit=8&order=asc",
        lambda b: parse_trades(b, symbol="AAPL", endpoint="trades"),
    ),
    "polygon quotes": (
        "/v3/quotes/AAPL?timestamp=2024-03-04&limit=8&order=asc",
        lambda b: parse_quotes(b, symbol="AAPL", endpoint="quotes"),
    ),
    "polygon ticker details": ("/v3/reference/tickers/AAPL", lambda b: parse_ticker_details(b, endpoint="ticker")),
    "polygon news": ("/v2/reference/news?ticker=AAPL&limit=6", lambda b: parse_news(b, endpoint="news")),
}


def _uw(fn: Callable[..., ParseResult], path: str) -> Parser:
    return lambda b: fn(b, endpoint=path)


UW_TARGETS: dict[str, tuple[str, Parser]] = {
    "uw flow alerts": ("/api/option-trades/flow-alerts?limit=6", _uw(uw.parse_flow_alerts, uw.FLOW_ALERTS)),
    "uw flow recent": ("/api/stock/AAPL/flow-recent", _uw(uw.parse_flow_recent, "/api/stock/AAPL/flow-recent")),
    "uw options volume": (
        "/api/stock/AAPL/options-volume?limit=5",
        _uw(uw.parse_options_volume, "/api/stock/AAPL/options-volume"),
    ),
    "uw net prem ticks": (
        "/api/stock/AAPL/net-prem-ticks?date=2024-03-04",
        _uw(uw.parse_net_prem_ticks, "/api/stock/AAPL/net-prem-ticks"),
    ),
    "uw ohlc": ("/api/stock/AAPL/ohlc/5m?date=2024-03-04&limit=6", _uw(uw.parse_ohlc, "/api/stock/AAPL/ohlc/5m")),
    "uw dark pool": ("/api/darkpool/AAPL?date=2024-03-04&limit=6", _uw(uw.parse_dark_pool, "/api/darkpool/AAPL")),
    "uw insider": ("/api/insider/transactions?limit=6", _uw(uw.parse_insider_transactions, uw.INSIDER_TRANSACTIONS)),
    "uw etf flow": ("/api/etfs/SPY/in-outflow", _uw(uw.parse_etf_in_outflow, "/api/etfs/SPY/in-outflow")),
    "uw market tide": ("/api/market/market-tide?date=2024-03-04", _uw(uw.parse_market_tide, uw.MARKET_TIDE)),
}


@cache
def samples() -> dict[str, Any]:
    """One real decoded response per target, served by the simulators' handlers (no socket needed)."""
    out: dict[str, Any] = {}
    polygon = polygon_rest_server(Market())
    for name, (path, _) in POLYGON_TARGETS.items():
        response = polygon.dispatch("GET", path, {"authorization": f"Bearer {POLYGON_SIM_KEY}"})
        assert response.status == 200, (name, response.body[:200])
        out[name] = orjson.loads(response.body)
    import datetime as dt

    market = Market(seed=7, start=dt.date(2024, 1, 2), end=dt.date(2024, 3, 28))
    server = uw_server(market, clock=SimClock(speed=0.0, start=UW_NOW))
    headers = {"authorization": f"Bearer {UW_SIM_TOKEN}", "uw-client-api-id": CLIENT_API_ID}
    for name, (path, _) in UW_TARGETS.items():
        response = server.dispatch("GET", path, headers)
        assert response.status == 200, (name, response.body[:200])
        out[name] = orjson.loads(response.body)
    return out


# -- damage --------------------------------------------------------------------------------------------------------

ODD_STRINGS = st.sampled_from(
    ["", " ", "nan", "NaN", "inf", "-1", "1e400", "-0", "1_000", "9" * 30, "2024-13-45", "true", "null", "\u0000"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | ODD_STRINGS
)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)  # fmt: skip


@st.composite
def damaged_row(draw: st.DrawFn, row: Any) -> Any:
    """A row with fields removed, retyped or added, or replaced by a value that is not an object."""
    if not isinstance(row, dict) or draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    row = dict(row)
    keys = sorted(row)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "retype", "add"]))
        if action == "add" or not keys:
            row[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        elif action == "drop":
            row.pop(draw(st.sampled_from(keys)), None)
        else:
            row[draw(st.sampled_from(keys))] = draw(JSON_VALUES)
    return row


def _records(doc: Any) -> tuple[str | None, Any]:
    """Where a vendor body keeps its rows: ``results`` (Polygon), ``data`` (UW) or the body itself."""
    if isinstance(doc, dict):
        for key in ("results", "data"):
            if key in doc:
                return key, doc[key]
    return None, doc


@st.composite
def damaged_body(draw: st.DrawFn, doc: Any) -> bytes:
    """A body derived from a real one: rows damaged, envelope broken, truncated, or random bytes."""
    kind = draw(st.sampled_from(["rows", "rows", "rows", "envelope", "truncate", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    key, records = _records(doc)
    if kind == "rows" or kind == "envelope":
        if isinstance(records, list):
            kept = records[: draw(st.integers(0, len(records)))]
            records = [draw(damaged_row(r)) if draw(st.booleans()) else r for r in kept]
        elif isinstance(records, dict):
            records = draw(damaged_row(records))
        out: Any = {**doc, key: records} if key is not None else records
        if kind == "envelope":
            out = draw(damaged_row(out)) if isinstance(out, dict) else draw(JSON_VALUES)
        # The stdlib encoder writes NaN/Infinity tokens and integers of any size: invalid or out-of-range JSON.
        return json.dumps(out, allow_nan=True).encode()
    raw = orjson.dumps(doc)
    return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]


# -- the oracle --------------------------------------------------------------------------------------------------------


def rows_in(body: bytes, vendor: str) -> int | None:
    """How many rows a body holds, judged independently of the parsers; None when it is not JSON at all.

    Polygon keeps rows under ``results`` only (absent = none); Unusual Whales under ``data``, in a bare list, or as
    a bare object that is itself one row.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    polygon_rows = doc.get("results") if isinstance(doc, dict) else doc
    records = polygon_rows if vendor == "polygon" else _records(doc)[1]
    if isinstance(records, list):
        return len(records)
    return 0 if records is None else 1


def check(name: str, parse: Parser, body: bytes) -> None:
    COUNTS[name] += 1
    try:
        result = parse(body)
    except IngestionError:
        return  # typed: the page as a whole was refused, with the endpoint named
    expected = rows_in(body, name.split()[0])
    assert expected is not None, f"{name}: a body that is not JSON was accepted"
    assert len(result.frame) + len(result.rejected) == expected, f"{name}: rows lost or invented"


@pytest.fixture(autouse=True, scope="module")
def _figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(COUNTS.values())
    if total:
        add_row(
            Figures(
                "Parser and frame-handler fuzzing (hypothesis)",
                faults=f"{total} malformed payloads over {len(COUNTS)} targets",
                notes="0 crashes, 0 silent drops (every payload: typed error, or good + rejected = rows in)",
            )
        )
        COUNTS.clear()


def fuzz(long: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    n = LONG_EXAMPLES if long else SHORT_EXAMPLES
    return settings(
        max_examples=n, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )  # fmt: skip


TARGETS = {**POLYGON_TARGETS, **UW_TARGETS}


def _vendor_case(name: str, long: bool) -> None:
    parse = TARGETS[name][1]

    @fuzz(long)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        check(name, parse, data.draw(damaged_body(samples()[name])))

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_vendor_parsers_never_crash_nor_drop(name: str) -> None:
    _vendor_case(name, long=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_vendor_parsers_never_crash_nor_drop_long(name: str) -> None:
    _vendor_case(name, long=True)


# -- WebSocket frames ----------------------------------------------------------------------------------------------

WS_EVENTS: list[dict[str, Any]] = [
    {"ev": "T", "sym": "AAPL", "x": 4, "i": "5096", "z": 3, "p": 171.25, "s": 100, "c": [12, 37],
     "t": 1709562600123, "q": 7041},
    {"ev": "Q", "sym": "AAPL", "bx": 12, "bp": 171.2, "bs": 2, "ax": 11, "ap": 171.3, "as": 3, "c": 1,
     "t": 1709562600125, "q": 7042, "z": 3},
    {"ev": "AM", "sym": "MSFT", "v": 4110, "av": 912_000, "op": 410.1, "vw": 411.02, "o": 411.0, "c": 411.1,
     "h": 411.3, "l": 410.9, "a": 410.7, "z": 80, "s": 1709562600000, "e": 1709562660000},
    {"ev": "A", "sym": "MSFT", "v": 40, "o": 411.0, "c": 411.1, "h": 411.1, "l": 411.0, "s": 1709562600000,
     "e": 1709562601000},
    {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"},
]  # fmt: skip


@st.composite
def ws_frame(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["events", "events", "events", "object", "truncate", "bytes", "value"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "value":
        return json.dumps(draw(JSON_VALUES), allow_nan=True).encode()
    events = [draw(st.sampled_from(WS_EVENTS)) for _ in range(draw(st.integers(0, 6)))]
    events = [draw(damaged_row(e)) if draw(st.booleans()) else e for e in events]
    if kind == "object":
        return json.dumps(events[0] if events else {}, allow_nan=True).encode()
    raw = json.dumps(events, allow_nan=True).encode()
    return raw[: draw(st.integers(0, max(0, len(raw) - 1)))] if kind == "truncate" else raw


def _ws_events_in(body: bytes) -> int | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return len(doc) if isinstance(doc, list) else 1


def check_ws_parser(body: bytes) -> None:
    COUNTS["ws parse_ws_frame"] += 1
    frame = parse_ws_frame(body)
    expected = _ws_events_in(body)
    if expected is None or not isinstance(orjson.loads(body), list | dict):
        assert len(frame.rejected) == 1 and frame.event_count == 1
    else:
        assert frame.event_count == expected


def check_ws_client(body: bytes) -> None:
    """The client's consumer path: every event of a frame ends in a callback batch, a duplicate count, the skipped
    or rejected counters, or is a status message; a frame that is not an array is rejected or handled as one event."""
    COUNTS["ws client frame handler"] += 1
    client = PolygonWebSocketClient(api_key="fuzz", ws_url="ws://127.0.0.1:9", dedupe_capacity=64)
    batches: dict[str, list[dict[str, Any]]] = {}
    client._process_frame(body, batches)
    stats = client.stats
    accounted = sum(map(len, batches.values())) + stats.rejected + sum(stats.skipped.values()) + stats.duplicates
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        assert stats.rejected == 1 and accounted == 1
        return
    events = doc if isinstance(doc, list) else [doc]
    statuses = sum(1 for e in events if isinstance(e, dict) and e.get("ev") == "status")
    assert accounted + statuses == len(events), "events lost or invented by the frame handler"


def _ws_case(long: bool, check_one: Callable[[bytes], None]) -> None:
    @fuzz(long)
    @given(body=ws_frame())
    def run(body: bytes) -> None:
        check_one(body)

    run()


@pytest.mark.parametrize("target", [check_ws_parser, check_ws_client], ids=["parse_ws_frame", "client"])
def test_websocket_frames_never_crash_nor_drop(target: Callable[[bytes], None]) -> None:
    _ws_case(False, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", [check_ws_parser, check_ws_client], ids=["parse_ws_frame", "client"])
def test_websocket_frames_never_crash_nor_drop_long(target: Callable[[bytes], None]) -> None:
    _ws_case(True, target)


# -- what the fuzzing found, kept as plain regression cases ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b" null\n",
        b'{"status": ["OK"], "results": []}',
        b'{"status": "OK", "results": [{"o": 1.0, "t": 1709562600000, "": [null, null]}]}',
        b'{"data": null}',
        b"[null]",
    ],
    ids=["null", "spaced-null", "list-status", "empty-field-name", "null-data", "list-of-null"],
)
def test_bodies_that_once_crashed_a_parser(name: str, body: bytes) -> None:
    # `null` killed the process inside Arrow's JSON reader (SIGSEGV); a list status raised TypeError (unhashable);
    # a field named "" made Arrow raise ArrowIndexError outside the fast path's guard.
    check(name, TARGETS[name][1], body)


def test_a_lone_object_frame_is_one_event_not_a_silent_drop() -> None:
    check_ws_client(orjson.dumps(WS_EVENTS[0]))
    check_ws_parser(orjson.dumps(WS_EVENTS[0]))


@pytest.mark.parametrize(("ev", "field", "value"), [("T", "i", []), ("T", "q", []), ("T", "q", "7"), ("Q", "q", [])])
def test_mistyped_id_or_sequence_is_rejected_not_a_crash(ev: str, field: str, value: Any) -> None:
    # The client's fast path once accepted these, then crashed on a set lookup or a comparison.
    good = next(e for e in WS_EVENTS if e["ev"] == ev)
    check_ws_client(orjson.dumps([good, {**good, field: value}, good]))
