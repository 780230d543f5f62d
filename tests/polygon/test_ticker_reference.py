"""Ticker lists and ticker events: the real captures field by field, bad payloads refused with reasons, and the client
paging through the simulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pandas as pd
import pytest

from ingestion.errors import SchemaError
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.polygon.tickers import TICKER_LIST_COLUMNS, TickerChange, parse_ticker_events, parse_tickers
from ingestion.rejects import Rejected
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer

D = dt.date
EVENTS = "vX/reference/tickers/META/events&types=ticker_change.json"


def _capture(vendor: Path, name: str) -> bytes:
    return (vendor / "polygon" / "rest-captures" / name).read_bytes()


def test_the_events_capture_parses_field_by_field(vendor: Path) -> None:
    body = _capture(vendor, EVENTS)
    raw = orjson.loads(body)["results"]
    parsed = parse_ticker_events(body, endpoint="events")
    assert parsed.rejected == [] and parsed.drift == set()
    assert (parsed.name, parsed.composite_figi, parsed.cik) == (raw["name"], raw["composite_figi"], raw["cik"])
    # Oldest first; the vendor lists newest first.
    assert parsed.changes == tuple(
        TickerChange(e["ticker_change"]["ticker"], D.fromisoformat(e["date"])) for e in reversed(raw["events"])
    )
    assert parsed.changes == (TickerChange("FB", D(2012, 5, 18)), TickerChange("META", D(2022, 6, 11)))
    assert parsed.current == "META"


@pytest.mark.parametrize("name", ["v3/reference/tickers.json", None])
def test_the_ticker_list_captures_parse_field_by_field(vendor: Path, name: str | None) -> None:
    if name is None:  # the second page of the capture (a cursor in its file name)
        folder = vendor / "polygon" / "rest-captures" / "v3" / "reference"
        name = str(next(folder.glob("tickers&cursor=*.json")).relative_to(folder.parent.parent))
    body = _capture(vendor, name)
    raw = orjson.loads(body)["results"]
    parsed = parse_tickers(body, endpoint="tickers")
    assert parsed.rejected == [] and parsed.drift == set()
    frame = parsed.frame
    assert tuple(frame.columns) == TICKER_LIST_COLUMNS and len(frame) == len(raw) > 0
    for row, record in zip(frame.to_dict("records"), raw, strict=True):
        for key, value in record.items():
            if key == "last_updated_utc":
                assert row[key] == pd.Timestamp(value)
            else:
                assert row[key] == value, key
        assert row["delisted_utc"] is pd.NaT


def test_bad_events_are_refused_with_a_reason_and_the_rest_kept() -> None:
    body = json.dumps(
        {
            "status": "OK",
            "request_id": "r",
            "results": {
                "name": "X",
                "events": [
                    {"type": "ticker_change", "date": "2022-06-09", "ticker_change": {"ticker": "META"}},
                    {"event_type": "ticker_change", "date": "2012-05-18", "ticker_change": {"ticker": "fb"}},
                    {"type": "ticker_change", "date": "06/09/2022", "ticker_change": {"ticker": "META"}},
                    {"type": "ticker_change", "date": "2020-01-02", "ticker_change": {"ticker": ""}},
                    {"type": "ticker_change", "date": "2020-01-02"},
                    {"type": "delisting", "date": "2024-01-02"},  # another kind: not a ticker change
                    ["not", "an", "object"],
                    {"date": "2020-01-02"},
                ],
            },
        }
    )
    parsed = parse_ticker_events(body, endpoint="events")
    assert parsed.changes == (TickerChange("FB", D(2012, 5, 18)), TickerChange("META", D(2022, 6, 9)))
    reasons = sorted(r.reason for r in parsed.rejected)
    assert len(reasons) == 5
    assert any("06/09/2022" in r and "not a YYYY-MM-DD" in r for r in reasons)
    assert sum("is not a ticker symbol" in r for r in reasons) == 2
    assert "event is a JSON list, expected an object" in reasons and "event has no type" in reasons
    assert all(isinstance(r, Rejected) and r.dataset == "polygon_ticker_events" for r in parsed.rejected)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"status": "ERROR", "error": "boom"}',
        b'{"status": "OK", "results": []}',
        b'{"status": "OK"}',
        b'{"status": "OK", "results": {"events": {"a": 1}}}',
    ],
)
def test_a_broken_events_page_is_a_schema_error(body: bytes) -> None:
    with pytest.raises(SchemaError):
        parse_ticker_events(body, endpoint="events")


def test_bad_ticker_rows_are_refused_with_a_reason() -> None:
    good = {"ticker": "A", "name": "Agilent", "market": "stocks", "locale": "us", "active": True}
    rows = [
        good,
        {**good, "ticker": "TWTR", "active": False, "delisted_utc": "2022-10-27T04:00:00Z"},
        {**good, "ticker": "B", "delisted_utc": "yesterday"},
        {**good, "ticker": "bad ticker"},
        {**good, "ticker": "C", "active": "yes"},
        {k: v for k, v in good.items() if k != "name"},
    ]
    parsed = parse_tickers(json.dumps({"status": "OK", "results": rows}), endpoint="tickers")
    assert list(parsed.frame["ticker"]) == ["A", "TWTR"]
    assert parsed.frame["delisted_utc"].iloc[1] == pd.Timestamp("2022-10-27T04:00:00Z")
    reasons = sorted(r.reason for r in parsed.rejected)
    assert len(reasons) == 4
    assert any("delisted_utc 'yesterday'" in r for r in reasons)
    assert any("'bad ticker'" in r for r in reasons)
    assert any("field 'active' is string" in r for r in reasons)
    assert any("missing required field 'name'" in r for r in reasons)
    with pytest.raises(SchemaError):
        parse_tickers(b'{"status": "OK", "results": {"ticker": "A"}}', endpoint="tickers")


def test_the_client_pages_through_the_ticker_list_and_reads_events(polygon_rest: PolygonRestServer) -> None:
    rejected: list[Rejected] = []
    client = PolygonRESTClient(POLYGON_SIM_KEY, polygon_rest.url, use_cache=False, on_rejected=rejected.extend)
    try:
        before = polygon_rest.log.by_route["tickers"]
        paged = client.list_tickers("2022-01-03", limit=2)
        pages = polygon_rest.log.by_route["tickers"] - before
        whole = client.list_tickers("2022-01-03")
        assert paged.equals(whole) and pages == -(-len(whole) // 2) > 1
        listed = set(whole["ticker"])
        assert {"FB", "TWTR"} <= listed and "META" not in listed  # as called that day
        gone = client.list_tickers(active=False)
        assert set(gone["ticker"]) == {"FB", "TWTR"} and gone["delisted_utc"].notna().all()
        events = client.get_ticker_events("META")
        assert events is not None and [c.ticker for c in events.changes] == ["FB", "META"]
        assert client.get_ticker_events("FB") is None  # an old name names no security now
        assert events.composite_figi is not None
        by_figi = client.get_ticker_events(events.composite_figi)
        assert by_figi is not None and by_figi.changes == events.changes
        assert rejected == []
    finally:
        client.close()


def test_the_market_fixture_has_the_default_reference(market: Market) -> None:
    # The tests above rely on the default universe's renamed and delisted tickers.
    assert market.reference.knows("FB") and market.reference.knows("TWTR")
