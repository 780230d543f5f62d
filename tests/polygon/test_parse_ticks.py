"""v3 trades and quotes pages: real captures field by field, nanosecond times, bad rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from ingestion.errors import SchemaError
from ingestion.polygon.ticks import QUOTE_COLUMNS, TRADE_COLUMNS, parse_quotes, parse_trades

TRADES = "/v3/trades/{ticker}"
QUOTES = "/v3/quotes/{ticker}"
NS_FIELDS = ("sip_timestamp", "participant_timestamp", "trf_timestamp")


def capture(vendor: Path, name: str) -> bytes:
    return (vendor / "polygon" / "rest-captures" / "v3" / name).read_bytes()


def ns(value: int | None) -> Any:
    return pd.NaT if value is None else pd.Timestamp(value, unit="ns", tz="UTC")


def assert_rows_match(frame: pd.DataFrame, raw: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    assert tuple(frame.columns) == columns and len(frame) == len(raw)
    for (_, got), want in zip(frame.iterrows(), raw, strict=True):
        for name in columns[2:]:
            value = want.get(name)
            if name in NS_FIELDS:
                assert got[name] is pd.NaT if value is None else got[name] == ns(value), name
            elif value is None:
                assert got[name] is None or pd.isna(got[name]), name
            elif isinstance(value, list):
                assert list(got[name]) == value, name
            else:
                assert got[name] == value, name


def test_trades_capture_field_by_field(vendor: Path) -> None:
    body = capture(vendor, "trades/AAPL&limit=2.json")
    raw = orjson.loads(body)["results"]
    result = parse_trades(body, symbol="aapl", endpoint=TRADES)
    assert result.ok and result.drift == set()
    assert_rows_match(result.frame, raw, TRADE_COLUMNS)
    assert (result.frame["symbol"] == "AAPL").all()
    first = result.frame.iloc[0]  # literal spot checks read off the file
    assert (first["price"], first["size"], first["exchange"], first["id"]) == (156.43, 10.0, 11, "183276")
    assert first["sip_timestamp"] == pd.Timestamp("2022-04-28 21:37:02.4619794", tz="UTC")


@pytest.mark.parametrize(
    "name",
    [
        "quotes/AAPL.json",
        "quotes/AAPL&cursor=YXA9MTkyODgxNjYmYXM9JmxpbWl0PTEwJm9yZGVyPWRlc2Mmc29ydD10aW1lc3RhbXAmdGltZXN0YW1wLmx0ZT0yMDIyLTA1LTEwVDE0JTNBMTElM0ExMi42OTA2NjExODla.json",
    ],
)
def test_quotes_captures_field_by_field(vendor: Path, name: str) -> None:
    body = capture(vendor, name)
    raw = orjson.loads(body)["results"]
    result = parse_quotes(body, symbol="AAPL", endpoint=QUOTES)
    assert result.ok and result.drift == set()
    assert_rows_match(result.frame, raw, QUOTE_COLUMNS)


def test_quote_capture_literal_values(vendor: Path) -> None:
    body = capture(vendor, "quotes/AAPL.json")
    first = parse_quotes(body, symbol="AAPL", endpoint=QUOTES).frame.iloc[0]
    assert (first["bid_price"], first["bid_size"], first["ask_price"], first["ask_size"]) == (155.85, 4, 155.87, 3)
    assert first["sequence_number"] == 19288684


def test_nanosecond_times_are_kept_and_event_time_rounds_up_to_the_microsecond() -> None:
    sip = 1_652_191_872_690_386_918  # .690386918 s: the trailing 918 ns must survive
    body = orjson.dumps(
        {
            "status": "OK",
            "results": [
                {"sip_timestamp": sip, "price": 1.0, "size": 1, "exchange": 4, "id": "a"},
                {"sip_timestamp": sip + 1, "price": 1.0, "size": 1, "exchange": 4, "id": "b"},
                {"sip_timestamp": sip - 918, "price": 1.0, "size": 1, "exchange": 4, "id": "c"},
            ],
        }
    )
    frame = parse_trades(body, symbol="AAPL", endpoint=TRADES).frame
    assert str(frame["sip_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert [t.value for t in frame["sip_timestamp"]] == [sip, sip + 1, sip - 918]
    assert frame["sip_timestamp"].is_unique  # distinct trades in one microsecond stay distinct
    whole_us = (sip - 918) // 1000
    assert [t.value // 1000 for t in frame["event_timestamp"]] == [whole_us + 1, whole_us + 1, whole_us]
    assert (frame["event_timestamp"] >= frame["sip_timestamp"]).all()  # never before the tick was published


def trade(**fields: Any) -> dict[str, Any]:
    row = {"sip_timestamp": 1_652_191_872_690_386_918, "price": 10.0, "size": 5, "exchange": 4, "id": "1", **fields}
    return {k: v for k, v in row.items() if v is not None}


BAD_TRADES = [
    (trade(price=None), "missing required field 'price'"),
    (trade(sip_timestamp=None), "missing required field 'sip_timestamp'"),
    (
        trade(sip_timestamp="1652191872690386918"),
        "field 'sip_timestamp' is string '1652191872690386918', expected an integer",
    ),
    (trade(id=183276), "field 'id' is integer 183276, expected a string"),
    (trade(conditions=[12, "x"]), "field 'conditions' is array [12, 'x'], expected an array of an integer"),
    (trade(price=-1.0), "negative or non-finite price"),
    (trade(size=-5), "negative or non-finite size"),
    (trade(sip_timestamp=0), "non-positive sip_timestamp"),
]


def test_bad_trades_are_rejected_and_counts_add_up() -> None:
    good = [trade(id=str(i)) for i in range(4)]
    raw = good[:2] + [r for r, _ in BAD_TRADES] + good[2:]
    result = parse_trades(orjson.dumps({"status": "OK", "results": raw}), symbol="AAPL", endpoint=TRADES)
    assert len(result.frame) + len(result.rejected) == len(raw)
    assert [(r.payload, r.reason) for r in result.rejected] == BAD_TRADES
    assert list(result.frame["id"]) == ["0", "1", "2", "3"]
    assert {r.dataset for r in result.rejected} == {"polygon_trades"}


def test_bad_quote_is_rejected_but_a_crossed_quote_is_kept() -> None:
    base = {"sip_timestamp": 1_652_191_872_690_386_918, "participant_timestamp": 1, "sequence_number": 1}
    crossed = {**base, "bid_price": 10.1, "ask_price": 10.0, "bid_size": 1, "ask_size": 1}
    one_sided = {**base, "bid_price": 10.0, "bid_size": 2}
    bad = {**base, "ask_price": -0.01}
    body = orjson.dumps({"status": "OK", "results": [crossed, bad, one_sided]})
    result = parse_quotes(body, symbol="AAPL", endpoint=QUOTES)
    assert [r.reason for r in result.rejected] == ["negative or non-finite ask_price"]
    assert len(result.frame) == 2 and pd.isna(result.frame["ask_price"].iloc[1])


@pytest.mark.parametrize("parse", [parse_trades, parse_quotes])
def test_empty_and_malformed_tick_pages(parse: Any) -> None:
    empty = parse(b'{"status":"OK","request_id":"x"}', symbol="AAPL", endpoint=TRADES)
    columns = TRADE_COLUMNS if parse is parse_trades else QUOTE_COLUMNS
    assert empty.frame.empty and tuple(empty.frame.columns) == columns
    assert str(empty.frame["sip_timestamp"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(SchemaError, match="results is a JSON dict"):
        parse(b'{"status":"OK","results":{}}', symbol="AAPL", endpoint=TRADES)
