"""Polygon REST simulator: auth, plans, aggregates for every timespan, limit and paging, reference, ticks."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
from fixtures.simulators import MakePolygonRest

from ingestion import calendar
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market, minute_trades
from ingestion.simulators.polygon_rest import PolygonRestServer

AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}


def get(
    server: PolygonRestServer, path: str, headers: dict[str, str] | None = None, **params: Any
) -> requests.Response:
    return requests.get(server.url + path, params=params, headers=AUTH if headers is None else headers, timeout=30)


def follow(server: PolygonRestServer, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every result and every page body of a paged query, following next_url with the Bearer header."""
    body = get(server, path, **params).json()
    pages, results = [body], list(body.get("results", []))
    while "next_url" in body:
        body = requests.get(body["next_url"], headers=AUTH, timeout=30).json()
        pages.append(body)
        results.extend(body.get("results", []))
    return results, pages


def ny_ms(day: str) -> int:
    return int(pd.Timestamp(day).tz_localize(calendar.NEW_YORK).value // 1_000_000)


# -- auth and plans --------------------------------------------------------------------------------------------------


def test_missing_and_unknown_keys_get_polygons_401_body(polygon_rest: PolygonRestServer) -> None:
    missing = get(polygon_rest, "/v3/reference/tickers/AAPL", headers={})
    assert missing.status_code == 401
    body = missing.json()
    assert body["status"] == "ERROR" and body["error"] == "API Key was not provided" and body["request_id"]
    unknown = get(polygon_rest, "/v3/reference/tickers/AAPL", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json()["status"] == "ERROR"


def test_bearer_header_and_apikey_query_are_both_accepted(polygon_rest: PolygonRestServer) -> None:
    by_header = get(polygon_rest, "/v3/reference/tickers/MSFT")
    by_query = get(polygon_rest, "/v3/reference/tickers/MSFT", headers={}, apiKey=POLYGON_SIM_KEY)
    assert by_header.status_code == by_query.status_code == 200
    assert by_header.json()["results"] == by_query.json()["results"]


def test_free_plan_allows_five_requests_per_simulated_minute(make_polygon_rest: MakePolygonRest) -> None:
    clock = SimClock(speed=0.0, start=1_700_000_000.0)  # frozen: only advance() moves it
    sim = make_polygon_rest(clock=clock)
    free = {"Authorization": "Bearer free-key"}
    statuses = [get(sim.server, "/v3/reference/tickers/AAPL", headers=free).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = get(sim.server, "/v3/reference/tickers/AAPL", headers=free)
    assert limited.json()["status"] == "ERROR" and "maximum requests per minute" in limited.json()["error"]
    assert sim.server.rate_limited["free-key"] == 3
    clock.advance(60)
    assert get(sim.server, "/v3/reference/tickers/AAPL", headers=free).status_code == 200
    # The server counts accepted requests only: never more than 5 in any simulated minute.
    assert sim.server.log.max_in_window("free-key", 60.0) == 5
    assert sim.server.log.by_key["free-key"] == 6
    # The unlimited key is not limited by the free key's traffic.
    assert all(get(sim.server, "/v3/reference/tickers/AAPL").status_code == 200 for _ in range(8))


def test_free_plan_is_not_entitled_to_old_history_nor_ticks(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest(keys={"free-key": "free"})
    free = {"Authorization": "Bearer free-key"}
    old = get(sim.server, "/v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-10", headers=free)
    assert old.status_code == 403
    assert old.json()["status"] == "NOT_AUTHORIZED" and "timeframe" in old.json()["message"]
    recent_day = (pd.Timestamp.now(tz=calendar.NEW_YORK) - pd.Timedelta(days=30)).date().isoformat()
    recent = get(sim.server, f"/v2/aggs/ticker/AAPL/range/1/day/{recent_day}/{recent_day}", headers=free)
    assert recent.status_code == 200
    trades = get(sim.server, "/v3/trades/AAPL", headers=free)
    assert trades.status_code == 403 and trades.json()["status"] == "NOT_AUTHORIZED"


# -- aggregates ------------------------------------------------------------------------------------------------------


def test_daily_bars_equal_ground_truth_with_envelope(polygon_rest: PolygonRestServer, market: Market) -> None:
    body = get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/day/2024-03-01/2024-03-29").json()
    truth = market.daily_bars("AAPL", "2024-03-01", "2024-03-29")
    assert body["ticker"] == "AAPL" and body["status"] == "OK" and body["adjusted"] is True
    assert body["resultsCount"] == body["count"] == len(truth) == body["queryCount"]
    bars = pd.DataFrame(body["results"])
    assert bars["t"].tolist() == truth["window_start_ms"].tolist()
    assert bars["t"].iloc[0] == ny_ms("2024-03-01")  # New York midnight
    assert np.allclose(
        bars[["o", "h", "l", "c", "v", "vw"]].to_numpy(),
        truth[["open", "high", "low", "close", "volume", "vwap"]].to_numpy(),
    )
    assert bars["n"].tolist() == truth["transactions"].tolist()
    assert all(
        isinstance(r["t"], int) and isinstance(r["n"], int) and isinstance(r["v"], float) for r in body["results"]
    )


def test_no_data_means_no_results_key(polygon_rest: PolygonRestServer) -> None:
    weekend = get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/day/2024-03-02/2024-03-03").json()
    assert weekend["resultsCount"] == 0 and "results" not in weekend and weekend["status"] == "OK"
    unknown = get(polygon_rest, "/v2/aggs/ticker/NOPE/range/1/day/2024-03-01/2024-03-08").json()
    assert "results" not in unknown


def test_minute_range_pages_with_opaque_cursor_and_equals_truth(
    polygon_rest: PolygonRestServer, market: Market
) -> None:
    results, pages = follow(polygon_rest, "/v2/aggs/ticker/MSFT/range/1/minute/2024-03-04/2024-03-06", limit=500)
    truth = market.minute_bars_range("MSFT", ny_ms("2024-03-04"), ny_ms("2024-03-07") - 1)
    assert [r["t"] for r in results] == truth["window_start_ms"].tolist()
    assert [r["c"] for r in results] == truth["close"].tolist()
    assert len(pages) == -(-len(truth) // 500)
    for page in pages[:-1]:
        assert page["queryCount"] == 500
        parts = urlsplit(page["next_url"])
        assert "apiKey" not in parts.query and POLYGON_SIM_KEY not in page["next_url"]
        cursor = parse_qs(parts.query)["cursor"][0]
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        assert POLYGON_SIM_KEY not in decoded
        # `from` is rewritten to the epoch ms of the next page's first window.
        assert parts.path.split("/")[-2].isdigit()
    assert "next_url" not in pages[-1]


def test_next_url_never_carries_a_query_key(polygon_rest: PolygonRestServer) -> None:
    body = get(
        polygon_rest,
        "/v2/aggs/ticker/AAPL/range/1/minute/2024-03-04/2024-03-04",
        headers={},
        apiKey=POLYGON_SIM_KEY,
        limit=10,
    ).json()
    assert POLYGON_SIM_KEY not in body["next_url"]
    # Following it needs the key again (re-added by the client), as with the real API.
    assert requests.get(body["next_url"], timeout=30).status_code == 401


def test_limit_caps_base_aggregates_and_never_splits_a_bucket(polygon_rest: PolygonRestServer, market: Market) -> None:
    # The session opens at 09:30 New York: the first hour bucket holds 30 minutes, the second 60. 140 minute bars
    # reach into the third hour, so the page stops after the two complete ones.
    body = get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/hour/2024-03-04/2024-03-04", limit=140).json()
    assert body["queryCount"] == 90 and body["resultsCount"] == 2
    hours, _ = follow(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/hour/2024-03-04/2024-03-04", limit=140)
    minutes = market.minute_bars("AAPL", "2024-03-04")
    bucket = minutes["window_start_ms"] // 3_600_000 * 3_600_000
    grouped = minutes.groupby(bucket)
    assert [h["t"] for h in hours] == list(grouped.groups)
    assert [h["v"] for h in hours] == grouped["volume"].sum().tolist()
    assert [h["h"] for h in hours] == grouped["high"].max().tolist()
    assert [h["o"] for h in hours] == grouped["open"].first().tolist()
    # More than the maximum is clamped to 50000 base aggregates.
    big = get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/minute/2023-01-01/2024-12-31", limit=90000).json()
    assert big["queryCount"] == 50_000 and "next_url" in big
    default = get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-01/2024-03-31").json()
    assert default["queryCount"] == 5_000


@pytest.mark.parametrize(
    ("timespan", "multiplier"), [("week", 1), ("month", 1), ("quarter", 1), ("year", 1), ("day", 3)]
)
def test_day_based_timespans_aggregate_daily_bars(
    polygon_rest: PolygonRestServer, market: Market, timespan: str, multiplier: int
) -> None:
    results, _ = follow(
        polygon_rest, f"/v2/aggs/ticker/NVDA/range/{multiplier}/{timespan}/2023-01-01/2023-12-31", limit=50
    )
    daily = market.daily_bars("NVDA", "2023-01-01", "2023-12-31")
    assert sum(r["n"] for r in results) == daily["transactions"].sum()
    assert sum(r["v"] for r in results) == daily["volume"].sum()
    assert max(r["h"] for r in results) == daily["high"].max()
    assert results[0]["o"] == daily["open"].iloc[0] and results[-1]["c"] == daily["close"].iloc[-1]
    starts = [pd.Timestamp(r["t"], unit="ms", tz="UTC").tz_convert(calendar.NEW_YORK) for r in results]
    assert all(s.hour == 0 and s.minute == 0 for s in starts)  # New York midnight
    if timespan == "week":
        assert all(s.dayofweek == 6 for s in starts)  # weeks start on Sunday
    if timespan in ("month", "quarter", "year"):
        assert all(s.day == 1 for s in starts)
    assert [r["t"] for r in results] == sorted({r["t"] for r in results})


def test_second_bars_come_from_the_minutes_trades(polygon_rest: PolygonRestServer, market: Market) -> None:
    raw = market.minute_bars("AMD", "2024-03-04", adjusted=False).iloc[0]
    start = int(raw["window_start_ms"])
    results, _ = follow(polygon_rest, f"/v2/aggs/ticker/AMD/range/1/second/{start}/{start + 59_999}", limit=20)
    trades = minute_trades(market, "AMD", raw)
    assert sum(r["n"] for r in results) == len(trades) == raw["transactions"]
    assert sum(r["v"] for r in results) == raw["volume"]
    assert results[0]["o"] == raw["open"] and results[-1]["c"] == raw["close"]
    assert max(r["h"] for r in results) == raw["high"]
    assert all(r["t"] % 1000 == 0 and start <= r["t"] < start + 60_000 for r in results)


def test_adjusted_switch_and_desc_sort(polygon_rest: PolygonRestServer, market: Market) -> None:
    path = "/v2/aggs/ticker/AAPL/range/1/day/2020-08-27/2020-09-01"
    adjusted = get(polygon_rest, path).json()["results"]
    raw = get(polygon_rest, path, adjusted="false").json()
    assert raw["adjusted"] is False
    before_split = [r for r in raw["results"] if r["t"] < ny_ms("2020-08-31")]
    assert (
        before_split[0]["c"] == market.daily_bars("AAPL", "2020-08-27", "2020-08-27", adjusted=False)["close"].iloc[0]
    )
    assert before_split[0]["c"] / adjusted[0]["c"] == pytest.approx(4, rel=1e-3)
    results, pages = follow(polygon_rest, path, sort="desc", limit=2)
    assert [r["t"] for r in results] == [r["t"] for r in reversed(adjusted)]
    assert len(pages) == 2


def test_bad_parameters_are_400(polygon_rest: PolygonRestServer) -> None:
    assert get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/fortnight/2024-01-01/2024-01-31").status_code == 400
    assert get(polygon_rest, "/v2/aggs/ticker/AAPL/range/1/day/yesterday/2024-01-31").status_code == 400
    assert get(polygon_rest, "/v2/aggs/ticker/AAPL/range/x/day/2024-01-01/2024-01-31").status_code == 400


def test_grouped_daily_is_stamped_at_the_session_close(make_polygon_rest: MakePolygonRest) -> None:
    market = Market(symbols=("AAPL", "JPM", "SPY"))  # a small universe: grouped daily builds every symbol's year
    polygon_rest = make_polygon_rest(over=market).server
    body = get(polygon_rest, "/v2/aggs/grouped/locale/us/market/stocks/2024-11-29").json()  # a half day
    assert {r["T"] for r in body["results"]} == set(market.symbols)
    close_ms = int(calendar.session_close(dt.date(2024, 11, 29)).value // 1_000_000)
    assert {r["t"] for r in body["results"]} == {close_ms}
    aapl = next(r for r in body["results"] if r["T"] == "AAPL")
    assert aapl["c"] == market.daily_bars("AAPL", "2024-11-29", "2024-11-29")["close"].iloc[0]
    holiday = get(polygon_rest, "/v2/aggs/grouped/locale/us/market/stocks/2024-11-28").json()
    assert holiday["resultsCount"] == 0 and "results" not in holiday


# -- reference -------------------------------------------------------------------------------------------------------


def test_ticker_details_and_unknown_ticker(polygon_rest: PolygonRestServer) -> None:
    body = get(polygon_rest, "/v3/reference/tickers/AAPL", date="2020-10-01").json()
    assert body["status"] == "OK" and body["results"]["ticker"] == "AAPL" and body["results"]["market_cap"] > 0
    assert get(polygon_rest, "/v3/reference/tickers/SPY").json()["results"]["type"] == "ETF"
    missing = get(polygon_rest, "/v3/reference/tickers/NOPE")
    assert missing.status_code == 404 and missing.json()["status"] == "NOT_FOUND"


def test_news_pages_without_gaps_or_duplicates(polygon_rest: PolygonRestServer) -> None:
    window: dict[str, Any] = {"published_utc.gte": "2024-03-01", "published_utc.lt": "2024-04-01"}
    everything = get(polygon_rest, "/v2/reference/news", ticker="TSLA", limit=1000, **window).json()["results"]
    paged, pages = follow(polygon_rest, "/v2/reference/news", ticker="TSLA", limit=7, **window)
    assert len(pages) > 2
    assert [a["id"] for a in paged] == [a["id"] for a in everything]
    assert len({a["id"] for a in paged}) == len(paged)
    stamps = [a["published_utc"] for a in paged]
    assert stamps == sorted(stamps, reverse=True)  # newest first by default
    assert all("TSLA" in a["tickers"] and "2024-03-01" <= a["published_utc"] < "2024-04-01" for a in paged)


# -- trades and quotes -----------------------------------------------------------------------------------------------


def test_trades_page_in_ns_and_agree_with_the_bars(polygon_rest: PolygonRestServer, market: Market) -> None:
    bars = market.minute_bars("NFLX", "2024-03-05", adjusted=False).head(3)
    lo = int(bars["window_start_ms"].iloc[0]) * 1_000_000
    hi = (int(bars["window_start_ms"].iloc[-1]) + 60_000) * 1_000_000
    params = {"timestamp.gte": lo, "timestamp.lt": hi, "order": "asc", "limit": 50}
    trades, pages = follow(polygon_rest, "/v3/trades/NFLX", **params)
    assert len(pages) > 1
    assert len(trades) == bars["transactions"].sum()
    sip = [t["sip_timestamp"] for t in trades]
    assert sip == sorted(sip) and len(set(sip)) == len(sip) and lo <= sip[0] and sip[-1] < hi
    assert all(t["participant_timestamp"] < t["sip_timestamp"] for t in trades)
    assert sum(t["size"] for t in trades) == bars["volume"].sum()
    first_minute = [t for t in trades if t["sip_timestamp"] < lo + 60_000_000_000]
    assert first_minute[0]["price"] == bars["open"].iloc[0] and first_minute[-1]["price"] == bars["close"].iloc[0]
    desc, _ = follow(polygon_rest, "/v3/trades/NFLX", **{**params, "order": "desc"})
    assert [t["id"] for t in desc] == [t["id"] for t in reversed(trades)]


def test_quotes_default_to_newest_first_and_bracket_trades(polygon_rest: PolygonRestServer) -> None:
    body = get(polygon_rest, "/v3/quotes/AAPL", timestamp="2024-03-05", limit=5).json()
    quotes = body["results"]
    assert len(quotes) == 5 and "next_url" in body
    stamps = [q["sip_timestamp"] for q in quotes]
    assert stamps == sorted(stamps, reverse=True)
    assert all(q["bid_price"] < q["ask_price"] and isinstance(q["bid_size"], int) for q in quotes)
    day_end = int(calendar.session_close(dt.date(2024, 3, 5)).value)
    assert stamps[0] < day_end
