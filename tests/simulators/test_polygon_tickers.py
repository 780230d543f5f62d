"""The simulator's renamed (FB -> META) and delisted (TWTR) tickers: the ticker list and ticker events shaped like the
real captures, ticker details as of a date, aggregates under the ticker as traded, and the clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server

D = dt.date
AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}
CHANGE = D(2022, 6, 9)
TWTR_LAST = D(2022, 10, 27)


def get(server: PolygonRestServer, path: str, **params: Any) -> requests.Response:
    return requests.get(server.url + path, params=params, headers=AUTH, timeout=30)


def _capture(vendor: Path, name: str) -> Any:
    return json.loads((vendor / "polygon" / "rest-captures" / name).read_text())


def _types(value: dict[str, Any]) -> dict[str, type]:
    return {k: type(v) for k, v in value.items()}


@pytest.fixture(scope="module")
def server() -> Iterator[PolygonRestServer]:
    market = Market(symbols=("META", "AAPL", "SPY"), start=D(2022, 1, 3), end=D(2023, 3, 31))
    with polygon_rest_server(market) as running:
        yield running


def test_events_are_shaped_like_the_capture(server: PolygonRestServer, vendor: Path) -> None:
    capture = _capture(vendor, "vX/reference/tickers/META/events&types=ticker_change.json")
    ours = get(server, "/vX/reference/tickers/META/events", types="ticker_change").json()
    assert set(ours) == set(capture) and ours["status"] == "OK"
    assert _types(ours["results"]) == _types(capture["results"])
    for event, theirs in zip(ours["results"]["events"], capture["results"]["events"], strict=True):
        assert _types(event) == _types(theirs) and set(event["ticker_change"]) == set(theirs["ticker_change"])
        assert (
            event["type"] == "ticker_change" and event["ticker_change"]["ticker"] == theirs["ticker_change"]["ticker"]
        )
    assert [e["date"] for e in ours["results"]["events"]] == ["2022-06-09", "2012-05-18"]  # newest first
    assert ours["results"]["name"] == capture["results"]["name"]
    # By FIGI: the same security; by its old name: not found (the spec: a ticker names the entity it names now).
    figi = ours["results"]["composite_figi"]
    assert get(server, f"/vX/reference/tickers/{figi}/events").json()["results"] == ours["results"]
    assert get(server, "/vX/reference/tickers/FB/events").status_code == 404
    assert get(server, "/vX/reference/tickers/NOPE/events").status_code == 404
    other = get(server, "/vX/reference/tickers/AAPL/events").json()["results"]["events"]
    assert other == [{"ticker_change": {"ticker": "AAPL"}, "type": "ticker_change", "date": "1980-12-12"}]


def test_the_ticker_list_is_shaped_like_the_capture(server: PolygonRestServer, vendor: Path) -> None:
    capture = _capture(vendor, "v3/reference/tickers.json")
    ours = get(server, "/v3/reference/tickers", date="2022-01-03", limit=2).json()
    assert set(ours) == set(capture)
    assert ours["count"] == len(ours["results"]) == 2
    for record in ours["results"]:
        assert _types(record) == _types(capture["results"][0])  # the same fields, in JSON types
        assert record["last_updated_utc"] == "2022-01-03T00:00:00Z"
    assert ours["next_url"].startswith(server.url + "/v3/reference/tickers?cursor=")
    assert POLYGON_SIM_KEY not in ours["next_url"]
    # An inactive ticker carries delisted_utc as well (the spec's field).
    gone = get(server, "/v3/reference/tickers", active="false").json()["results"]
    assert {r["ticker"] for r in gone} == {"FB", "TWTR"}
    for record in gone:
        assert set(record) == set(capture["results"][0]) | {"delisted_utc"} and record["active"] is False
    assert {r["ticker"]: r["delisted_utc"] for r in gone} == {
        "FB": "2022-06-08T04:00:00Z",
        "TWTR": "2022-10-27T04:00:00Z",
    }


def _all_pages(server: PolygonRestServer, **params: Any) -> list[dict[str, Any]]:
    body = get(server, "/v3/reference/tickers", **params).json()
    out = list(body["results"])
    while "next_url" in body:
        body = requests.get(body["next_url"], headers=AUTH, timeout=30).json()
        out += body["results"]
    return out


def test_the_ticker_list_as_of_a_date_filters_and_pages(server: PolygonRestServer) -> None:
    def tickers(**params: Any) -> list[str]:
        return [r["ticker"] for r in _all_pages(server, **params)]

    assert tickers(date="2022-01-03") == ["AAPL", "FB", "SPY", "TWTR"]  # as called that day, delisted later
    assert tickers(date="2022-01-03", limit=1) == ["AAPL", "FB", "SPY", "TWTR"]  # four pages, same list
    assert tickers(date="2022-07-01") == ["AAPL", "META", "SPY", "TWTR"]
    assert tickers() == ["AAPL", "META", "SPY"]  # today: TWTR is gone
    assert tickers(date="2022-07-01", active="false") == ["FB"]
    assert tickers(date="2022-01-03", **{"ticker.gte": "FB", "ticker.lt": "T"}) == ["FB", "SPY"]
    assert tickers(date="2022-01-03", order="desc") == ["TWTR", "SPY", "FB", "AAPL"]
    assert tickers(date="2022-01-03", type="ETF") == ["SPY"]
    assert tickers(date="2022-01-03", market="crypto") == []
    assert tickers(date="2022-01-03", search="twitter") == ["TWTR"]
    assert get(server, "/v3/reference/tickers", sort="bogus").status_code == 400


def test_ticker_details_name_the_ticker_valid_that_day(server: PolygonRestServer) -> None:
    def details(ticker: str, **params: Any) -> requests.Response:
        return get(server, f"/v3/reference/tickers/{ticker}", **params)

    fb = details("FB", date="2022-01-03").json()["results"]
    meta = details("META", date="2022-07-01").json()["results"]
    assert fb["ticker"] == "FB" and fb["active"] is True and "delisted_utc" not in fb
    assert meta["ticker"] == "META" and meta["active"] is True
    for field in ("composite_figi", "share_class_figi", "cik", "list_date"):
        assert fb[field] == meta[field], field
    assert details("META", date="2022-06-08").status_code == 404  # not a ticker yet
    old = details("FB").json()["results"]
    assert old["active"] is False and old["delisted_utc"] == "2022-06-08T04:00:00Z"
    twtr = details("TWTR").json()["results"]
    assert twtr["active"] is False and twtr["delisted_utc"] == "2022-10-27T04:00:00Z"
    assert twtr["list_date"] == "2013-11-07" and twtr["name"] == "Twitter, Inc. Common Stock"
    before = details("TWTR", date="2022-10-01").json()["results"]
    assert before["active"] is True and "delisted_utc" not in before  # not known before it happens


def _bars(server: PolygonRestServer, ticker: str, lo: str, hi: str, timespan: str = "day") -> list[dict[str, Any]]:
    body = get(server, f"/v2/aggs/ticker/{ticker}/range/1/{timespan}/{lo}/{hi}", adjusted="false", limit=50000).json()
    assert body["ticker"] == ticker and "next_url" not in body
    return list(body.get("results", []))


def _day(bar: dict[str, Any]) -> dt.date:
    return dt.datetime.fromtimestamp(bar["t"] / 1000, dt.UTC).date()  # NY midnight is 04:00/05:00 UTC: same date


def test_aggregates_are_served_under_the_ticker_as_traded(server: PolygonRestServer) -> None:
    fb, meta = _bars(server, "FB", "2022-05-02", "2022-07-29"), _bars(server, "META", "2022-05-02", "2022-07-29")
    assert max(map(_day, fb)) == D(2022, 6, 8) and min(map(_day, meta)) == CHANGE
    truth = server.market.daily_bars("META", "2022-05-02", "2022-07-29", adjusted=False)
    np.testing.assert_array_equal([b["c"] for b in fb + meta], truth["close"].to_numpy())
    minutes = _bars(server, "FB", "2022-06-08", "2022-06-09", "minute")
    assert minutes and {_day(b) for b in minutes} == {D(2022, 6, 8)}
    twtr = _bars(server, "TWTR", "2022-10-01", "2022-12-30")
    assert max(map(_day, twtr)) == TWTR_LAST and len(twtr) == 19
    assert _bars(server, "TWTR", "2022-11-01", "2022-11-30", "minute") == []


def test_the_clock_hides_a_change_that_has_not_happened() -> None:
    market = Market(symbols=("META",), start=D(2022, 1, 3), as_of=D(2022, 6, 1))
    with polygon_rest_server(market) as server:
        assert get(server, "/vX/reference/tickers/META/events").status_code == 404
        events = get(server, "/vX/reference/tickers/FB/events").json()["results"]["events"]
        assert [e["ticker_change"]["ticker"] for e in events] == ["FB"]
        assert [r["ticker"] for r in _all_pages(server)] == ["FB", "TWTR"]
        assert get(server, "/v3/reference/tickers/FB").json()["results"]["active"] is True
        assert _bars(server, "META", "2022-05-02", "2022-05-31") == []
        market.set_as_of(D(2022, 6, 30))
        assert get(server, "/vX/reference/tickers/META/events").status_code == 200
        assert get(server, "/vX/reference/tickers/FB/events").status_code == 404


def test_grouped_daily_names_each_bar_as_traded(server: PolygonRestServer) -> None:
    def tickers(day: str) -> list[str]:
        body = get(server, f"/v2/aggs/grouped/locale/us/market/stocks/{day}", adjusted="false").json()
        return sorted(r["T"] for r in body["results"])

    assert tickers("2022-06-08") == ["AAPL", "FB", "SPY", "TWTR"]
    assert tickers("2022-06-09") == ["AAPL", "META", "SPY", "TWTR"]
    assert tickers("2022-10-28") == ["AAPL", "META", "SPY"]  # the day after TWTR's last session


def test_trades_are_served_under_the_ticker_as_traded(server: PolygonRestServer) -> None:
    def trades(ticker: str, day: str) -> list[dict[str, Any]]:
        return list(get(server, f"/v3/trades/{ticker}", timestamp=day, limit=5).json()["results"])

    assert trades("FB", "2022-06-08") and trades("META", "2022-06-09")
    assert trades("META", "2022-06-08") == [] and trades("FB", "2022-06-09") == []
    assert trades("TWTR", "2022-10-27") and trades("TWTR", "2022-10-28") == []


def test_the_official_client_pages_tickers_and_reads_events(server: PolygonRestServer) -> None:
    from massive import RESTClient

    client = RESTClient(api_key=POLYGON_SIM_KEY, base=server.url, retries=0)
    assert [t.ticker for t in client.list_tickers(date="2022-01-03", limit=1)] == ["AAPL", "FB", "SPY", "TWTR"]
    events = client.get_ticker_events("META", types="ticker_change")
    assert [e["ticker_change"]["ticker"] for e in events.events] == ["META", "FB"]
