"""The simulated market at universe scale: synthetic tickers, their ground truth, and the grouped daily endpoint."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import requests

from ingestion import calendar, publication
from ingestion.bench.universe import simulate_process
from ingestion.datasets import OHLCV_DAILY
from ingestion.polygon.parse import parse_grouped_daily
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import DEFAULT_SYMBOLS, Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server
from ingestion.simulators.universe import synthetic_names

CAPTURE = (
    Path(__file__).resolve().parents[3]
    / "shared/vendor/polygon/rest-captures/v2/aggs/grouped/locale/us/market/stocks/2005-04-04&adjusted=true.json"
)
END = dt.date(2024, 12, 31)
DAY = dt.date(2024, 3, 8)


@pytest.fixture(scope="module")
def wide() -> Market:
    return Market(universe_size=60, end=END)


@pytest.fixture(scope="module")
def wide_rest(wide: Market) -> Iterator[PolygonRestServer]:
    with polygon_rest_server(wide) as server:
        yield server


def _get(server: PolygonRestServer, path: str, **params: object) -> dict[str, object]:
    response = requests.get(
        server.url + path, params=params, headers={"Authorization": f"Bearer {POLYGON_SIM_KEY}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_synthetic_names_are_distinct_deterministic_and_clear_of_real_tickers() -> None:
    names = synthetic_names(7, 5000, frozenset(DEFAULT_SYMBOLS))
    assert len(set(names)) == 5000
    assert not set(names) & set(DEFAULT_SYMBOLS)
    assert all(len(n) == 4 and n.isalpha() and n.isupper() for n in names)
    assert synthetic_names(7, 5000, frozenset(DEFAULT_SYMBOLS)) == names
    # A narrower universe is a prefix of a wider one, and another seed names other tickers.
    assert synthetic_names(7, 100, frozenset(DEFAULT_SYMBOLS)) == names[:100]
    assert synthetic_names(8, 100, frozenset(DEFAULT_SYMBOLS)) != names[:100]


def test_universe_size_lists_real_then_synthetic_tickers_deterministically() -> None:
    a, b = Market(universe_size=300, end=END), Market(universe_size=300, end=END)
    narrow = Market(universe_size=40, end=END)
    assert len(a.symbols) == 300 and a.symbols[: len(DEFAULT_SYMBOLS)] == DEFAULT_SYMBOLS
    assert a.symbols == b.symbols and narrow.symbols == a.symbols[:40]
    for symbol in (a.symbols[14], a.symbols[39], a.symbols[-1]):
        assert a.is_synthetic(symbol) and a.has_symbol(symbol)
        first = a.daily_bars(symbol, "2020-01-01", "2024-12-31")
        pd.testing.assert_frame_equal(first, b.daily_bars(symbol, "2020-01-01", "2024-12-31"))
        if symbol in narrow.symbols:  # a ticker's bars do not depend on how wide the universe is
            pd.testing.assert_frame_equal(first, narrow.daily_bars(symbol, "2020-01-01", "2024-12-31"))
    assert not a.is_synthetic("AAPL")
    with pytest.raises(ValueError, match="below"):
        Market(universe_size=5)


def test_synthetic_bars_are_valid_every_session_and_continuous_across_years(wide: Market) -> None:
    symbol = wide.symbols[20]
    bars = wide.daily_bars(symbol, "2020-01-01", "2024-12-31")
    assert list(bars["day"]) == wide.sessions("2020-01-01", "2024-12-31")
    o, h, lo, c, vw = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "vwap"))
    assert (lo > 0).all() and (lo <= np.minimum(o, c)).all() and (h >= np.maximum(o, c)).all()
    assert ((vw >= lo - 1e-9) & (vw <= h + 1e-9)).all()
    assert (bars["volume"] > 0).all() and (bars["transactions"] >= 1).all()
    np.testing.assert_array_equal(np.round(c, 2), c)  # cents, as the vendor sends
    # Prices continue across years: a year's first open is a gap away from the previous year's last close.
    ends = bars.groupby(bars["day"].map(lambda d: d.year))
    for (_, prev), (_, nxt) in zip(list(ends)[:-1], list(ends)[1:], strict=True):
        assert abs(nxt["open"].iloc[0] / prev["close"].iloc[-1] - 1) < 0.2
    # Daily-only: no minute bars, no splits, adjusted changes nothing.
    assert wide.minute_bars(symbol, "2024-03-08").empty
    pd.testing.assert_frame_equal(bars, wide.daily_bars(symbol, "2020-01-01", "2024-12-31", adjusted=False))


def test_the_clock_hides_sessions_and_never_changes_a_served_value() -> None:
    clocked = Market(universe_size=40, end=END, as_of="2024-03-08")
    free = Market(universe_size=40, end=END)
    symbol = free.symbols[30]
    early = clocked.daily_bars(symbol, "2024-01-01", "2024-12-31")
    assert early["day"].max() == dt.date(2024, 3, 8)
    truth = free.daily_bars(symbol, "2024-01-01", "2024-03-08")
    pd.testing.assert_frame_equal(early, truth)
    clocked.set_as_of("2024-11-29")
    pd.testing.assert_frame_equal(clocked.daily_bars(symbol, "2024-01-01", "2024-03-08"), truth)


def test_grouped_daily_is_shaped_like_the_capture_field_by_field(wide: Market, wide_rest: PolygonRestServer) -> None:
    capture = json.loads(CAPTURE.read_text())
    body = _get(wide_rest, f"/v2/aggs/grouped/locale/us/market/stocks/{DAY}", adjusted="true")
    assert set(body) == set(capture)
    for key in capture:
        if key != "results":
            assert type(body[key]) is type(capture[key]), key
    assert body["adjusted"] is True and body["status"] == "OK"
    rows = body["results"]
    assert isinstance(rows, list) and body["resultsCount"] == body["count"] == len(rows) == len(wide.symbols)
    template = capture["results"][0]
    close_ms = int(calendar.session_close(DAY).value // 1_000_000)  # t is the END of the window: 16:00 New York
    for row in rows:
        assert set(row) == set(template)
        for key, value in template.items():
            # JSON numbers: the capture's integral doubles (v) may be ints; the types the clients read must match.
            wanted = (int, float) if isinstance(value, int) else type(value)
            assert isinstance(row[key], wanted), key
        assert isinstance(row["t"], int) and isinstance(row["n"], int) and isinstance(row["T"], str)
        assert row["t"] == close_ms
        truth = wide.daily_bars(row["T"], DAY, DAY, adjusted=True).iloc[0]
        assert (row["o"], row["h"], row["l"], row["c"]) == (truth["open"], truth["high"], truth["low"], truth["close"])
        assert (row["v"], row["vw"], row["n"]) == (truth["volume"], truth["vwap"], truth["transactions"])
    assert [r["T"] for r in rows] == list(wide.symbols)
    # No session: no results, as the vendor answers a weekend.
    weekend = _get(wide_rest, "/v2/aggs/grouped/locale/us/market/stocks/2024-03-09")
    assert weekend["resultsCount"] == 0 and "results" not in weekend


def test_the_capture_parses_with_t_as_the_end_of_the_window() -> None:
    parsed = parse_grouped_daily(CAPTURE.read_bytes(), adjusted=True, endpoint="grouped")
    assert not parsed.rejected
    row = parsed.frame.iloc[0]
    assert row["symbol"] == "GIK" and row["close"] == 10.02 and row["transactions"] == 96
    # t = 1602705600000 is 2020-10-14 16:00 New York: the bar of 2020-10-14, keyed at its New York midnight.
    assert row["window_start"] == pd.Timestamp("2020-10-14", tz=calendar.NEW_YORK)
    assert row["event_timestamp"] == publication.published_days(OHLCV_DAILY, [dt.date(2020, 10, 14)])[0]


def test_grouped_client_returns_truth_keyed_like_range_bars(wide: Market, wide_rest: PolygonRestServer) -> None:
    with PolygonRESTClient(POLYGON_SIM_KEY, wide_rest.url, use_cache=False) as client:
        parsed = client.fetch_grouped_daily(DAY, adjusted=False)
        ranged = client.fetch_aggregates(wide.symbols[25], 1, "day", DAY, DAY, adjusted=False).frame
    assert not parsed.rejected and len(parsed.frame) == len(wide.symbols)
    frame = parsed.frame.set_index("symbol")
    for symbol in (wide.symbols[0], wide.symbols[25], wide.symbols[-1]):
        truth = wide.daily_bars(symbol, DAY, DAY, adjusted=False).iloc[0]
        assert frame.loc[symbol, "close"] == truth["close"] and frame.loc[symbol, "volume"] == truth["volume"]
        assert frame.loc[symbol, "window_start"] == pd.Timestamp(DAY, tz=calendar.NEW_YORK)
    # The same bar through either endpoint: same key, same publication time, same values.
    mine = frame.loc[wide.symbols[25]]
    assert ranged.iloc[0]["window_start"] == mine["window_start"]
    assert ranged.iloc[0]["event_timestamp"] == mine["event_timestamp"]
    assert ranged.iloc[0]["close"] == mine["close"] and ranged.iloc[0]["vwap"] == mine["vwap"]


def test_simulate_command_serves_the_same_universe_from_another_process(wide: Market) -> None:
    with simulate_process("--universe-size", "60", "--as-of", str(DAY)) as url:
        response = requests.get(
            f"{url}/v2/aggs/grouped/locale/us/market/stocks/{DAY}",
            params={"adjusted": "false"},
            headers={"Authorization": f"Bearer {POLYGON_SIM_KEY}"},
            timeout=60,
        )
        rows = orjson.loads(response.content)["results"]
        assert [r["T"] for r in rows] == list(wide.symbols)
        for row in rows[14:]:
            truth = wide.daily_bars(row["T"], DAY, DAY, adjusted=False).iloc[0]
            assert (row["c"], row["v"]) == (truth["close"], truth["volume"])
        later = requests.get(
            f"{url}/v2/aggs/grouped/locale/us/market/stocks/2024-03-11",
            headers={"Authorization": f"Bearer {POLYGON_SIM_KEY}"},
            timeout=60,
        )
        assert orjson.loads(later.content)["resultsCount"] == 0  # after the clock
