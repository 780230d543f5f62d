"""The UW simulator's routes over HTTP: filters, limits and 422s, time windows, paging, visibility, holidays."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from fixtures.uw_simulator import UW_NOW, UWSim

from ingestion import calendar

DAY = dt.date(2024, 3, 4)
ALERTS = "/api/option-trades/flow-alerts"


def _epoch(text: str) -> float:
    return float(pd.Timestamp(text).value / 1e9)


def test_flow_alerts_newest_first_and_never_from_the_future(uw: UWSim) -> None:
    rows = uw.data(ALERTS, limit=200)
    assert len(rows) == 200
    created = [_epoch(r["created_at"]) for r in rows]
    assert created == sorted(created, reverse=True)
    assert max(created) <= UW_NOW
    uw.clock.advance(600)
    later = uw.data(ALERTS, limit=200)
    assert _epoch(later[0]["created_at"]) > UW_NOW  # ten more minutes of alerts became public


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"ticker_symbol": "AAPL,TSLA"}, lambda r: r["ticker"] in ("AAPL", "TSLA")),
        ({"ticker_symbol": "-AAPL,TSLA"}, lambda r: r["ticker"] not in ("AAPL", "TSLA")),
        ({"min_premium": 250000}, lambda r: int(r["total_premium"]) >= 250000),
        ({"min_volume": 2000}, lambda r: r["volume"] >= 2000),
        ({"min_open_interest": 5000}, lambda r: r["open_interest"] >= 5000),
        ({"is_sweep": "true"}, lambda r: r["has_sweep"]),
        ({"is_sweep": "false"}, lambda r: not r["has_sweep"]),
        ({"is_call": "true"}, lambda r: r["type"] == "call"),
        ({"is_put": "true"}, lambda r: r["type"] == "put"),
        ({"is_call": "false"}, lambda r: r["type"] == "put"),
        ({"rule_name[]": ["RepeatedHitsAscendingFill", "FloorTradeLargeCap"]},
         lambda r: r["alert_rule"] in ("RepeatedHitsAscendingFill", "FloorTradeLargeCap")),
    ],
)  # fmt: skip
def test_flow_alert_filters(uw: UWSim, params: dict[str, object], check: object) -> None:
    rows = uw.data(ALERTS, limit=200, **params)
    assert rows
    assert all(check(r) for r in rows)  # type: ignore[operator]
    unfiltered = uw.data(ALERTS, limit=200)
    assert not all(check(r) for r in unfiltered)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (ALERTS, {"limit": 201}),
        (ALERTS, {"limit": 0}),
        (ALERTS, {"limit": "ten"}),
        (ALERTS, {"min_premium": "lots"}),
        (ALERTS, {"is_sweep": "maybe"}),
        (ALERTS, {"rule_name[]": "BigWhale"}),
        (ALERTS, {"newer_than": "yesterday-ish"}),
        ("/api/darkpool/recent", {"limit": 201}),
        ("/api/darkpool/AAPL", {"limit": 501}),
        ("/api/darkpool/AAPL", {"date": "2023-02-140"}),
        ("/api/darkpool/AAPL", {"date": "2024-13-01"}),
        ("/api/darkpool/AAPL", {"date": "2024-03-06"}),  # in the future of the simulated clock
        ("/api/darkpool/AAPL", {"order_by": "mood"}),
        ("/api/insider/transactions", {"limit": 501}),
        ("/api/insider/transactions", {"start_date": "03/01/2024"}),
        ("/api/stock/AAPL/options-volume", {"limit": 501}),
        ("/api/stock/AAPL/net-prem-ticks", {"date": "2024-3-4"}),
        ("/api/stock/AAPL/ohlc/2m", {}),
        ("/api/stock/AAPL/ohlc/1m", {"limit": 2501}),
        ("/api/stock/AAPL/ohlc/1m", {"timeframe": "forever"}),
        ("/api/stock/AAPL/flow-recent", {"side": "UP"}),
        ("/api/etfs/SPY/in-outflow", {"start_date": "2020-01-02", "end_date": "2024-03-01"}),
        ("/api/market/market-tide", {"interval_5m": "often"}),
        ("/api/darkpool/MSFT12", {}),
    ],
)
def test_bad_input_is_a_422_with_the_vendor_body(uw: UWSim, path: str, params: dict[str, object]) -> None:
    response = uw.get(path, **params)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"msg", "path", "query", "url"}
    assert body["path"] == path and body["url"].endswith(path + ("?" + body["query"] if body["query"] else ""))
    assert body["msg"].startswith("Invalid")


def test_newer_than_older_than_window_is_inclusive_and_complete(uw: UWSim) -> None:
    t0 = _epoch("2024-03-04 15:00:00Z")
    t1 = _epoch("2024-03-04 15:30:00Z")
    rows = uw.data(ALERTS, limit=200, newer_than=int(t0), older_than=int(t1))
    truth = uw.truth.flow_alerts_between(uw.truth.symbols, t0, t1)
    assert [r["id"] for r in rows] == [a.id for a in truth][:200]
    ms = uw.data(ALERTS, limit=200, newer_than=int(t0 * 1000), older_than=int(t1 * 1000))
    assert ms == rows  # milliseconds are accepted too
    iso = uw.data(ALERTS, limit=200, newer_than="2024-03-04T15:00:00Z", older_than="2024-03-04T15:30:00Z")
    assert iso == rows


def test_paging_back_by_older_than_misses_and_duplicates_nothing(uw: UWSim) -> None:
    """A collector walking back with older_than = oldest created_at seen gets exactly the truth after de-duplication."""
    symbols = ["AAPL", "NVDA", "SPY"]
    t0, t1 = _epoch("2024-03-01 14:30:00Z"), _epoch("2024-03-04 21:00:00Z")
    seen: dict[str, dict[str, object]] = {}
    older = t1
    for _ in range(100):
        page = uw.data(ALERTS, limit=50, ticker_symbol=",".join(symbols), newer_than=t0, older_than=older)
        fresh = [r for r in page if r["id"] not in seen]
        seen.update({r["id"]: r for r in page})
        if len(page) < 50 or not fresh:
            break
        # Inclusive bounds: the boundary alert comes back on the next page, so de-duplicating by id is required.
        older = _epoch(page[-1]["created_at"])
    truth = uw.truth.flow_alerts_between(symbols, t0, t1)
    assert sorted(seen) == sorted(a.id for a in truth)
    assert len(truth) > 150


def test_darkpool_ticker_windows_and_order(uw: UWSim) -> None:
    rows = uw.data("/api/darkpool/AAPL", date=DAY.isoformat())
    truth = uw.truth.darkpool_prints("AAPL", DAY)
    assert len(rows) == len(truth)
    executed = [_epoch(r["executed_at"]) for r in rows]
    assert executed == sorted(executed, reverse=True)
    # Canceled prints are served as such (UW marks corrections with the flag; they are not removed).
    spy = uw.data("/api/darkpool/SPY", date="2024-02-29") + uw.data("/api/darkpool/SPY", date="2024-03-01")
    spy_truth = [
        *uw.truth.darkpool_prints("SPY", dt.date(2024, 2, 29)),
        *uw.truth.darkpool_prints("SPY", dt.date(2024, 3, 1)),
    ]
    assert sum(r["canceled"] for r in spy) == sum(p.canceled for p in spy_truth)
    mid = executed[len(executed) // 2]
    newer = uw.data("/api/darkpool/AAPL", newer_than=int(mid), older_than=int(executed[0]))
    assert newer and all(mid <= _epoch(r["executed_at"]) <= executed[0] for r in newer)
    assert len(newer) == sum(1 for t in executed if mid <= t)
    asc = uw.data("/api/darkpool/AAPL", date=DAY.isoformat(), order="asc", limit=5)
    assert [r["executed_at"] for r in asc] == [r["executed_at"] for r in rows[::-1][:5]]
    big = uw.data("/api/darkpool/AAPL", date=DAY.isoformat(), min_size=5000)
    assert all(r["size"] >= 5000 for r in big) and len(big) < len(rows)
    recent = uw.data("/api/darkpool/recent", limit=200)
    assert len(recent) == 200 and {r["ticker"] for r in recent} > {"AAPL"}
    assert max(_epoch(r["executed_at"]) for r in recent) <= UW_NOW


def test_insider_paging_covers_every_row_once(uw: UWSim) -> None:
    params = {"start_date": "2024-01-01", "end_date": "2024-03-05", "group": "false", "limit": 10}
    pages: list[list[dict[str, object]]] = []
    for page in range(100):
        rows = uw.data("/api/insider/transactions", page=page, **params)
        if not rows:
            break
        pages.append(rows)
    ids = [r["id"] for rows in pages for r in rows]
    truth = [
        r
        for r in uw.truth.insider_rows(dt.date(2024, 1, 1), dt.date(2024, 3, 5), group=False)
        if r.filed_at_s <= UW_NOW
    ]
    assert ids == [r.id for r in truth]
    assert len(set(ids)) == len(ids) and len(pages) > 2
    for rows in pages:
        for r in rows:
            assert r["transaction_date"] <= r["filing_date"]
            assert r["ids"] == [r["id"]] and r["transactions"] == 1
            assert (int(r["amount"]) < 0) == (r["transaction_code"] in ("S", "F"))  # type: ignore[call-overload]
    grouped = uw.data("/api/insider/transactions", start_date="2024-01-01", end_date="2024-03-05")
    assert len(grouped) < len(ids)
    assert sorted(i for r in grouped for i in r["ids"]) == sorted(ids)
    ticker, code = pages[-1][-1]["ticker"], pages[-1][-1]["transaction_code"]
    only = uw.data("/api/insider/transactions", ticker_symbol=ticker, **{"transaction_codes[]": code})
    assert only and all(r["ticker"] == ticker and r["transaction_code"] == code for r in only)
    assert len(only) < len(grouped)


def test_holidays_weekends_and_unknown_tickers_are_empty(uw: UWSim) -> None:
    holiday = "2024-01-15"  # Martin Luther King Jr. Day
    for path, params in [
        ("/api/darkpool/AAPL", {"date": holiday}),
        ("/api/darkpool/recent", {"date": "2024-03-02"}),
        ("/api/stock/AAPL/net-prem-ticks", {"date": holiday}),
        ("/api/market/market-tide", {"date": holiday}),
        ("/api/stock/AAPL/options-volume", {"date": holiday}),
        ("/api/stock/AAPL/ohlc/1m", {"date": holiday}),
        ("/api/darkpool/ZZZZ", {}),
        ("/api/stock/ZZZZ/net-prem-ticks", {}),
        ("/api/stock/ZZZZ/flow-recent", {}),
        ("/api/stock/ZZZZ/options-volume", {}),
        ("/api/etfs/AAPL/in-outflow", {}),
        (ALERTS, {"ticker_symbol": "ZZZZ"}),
    ]:
        response = uw.get(path, **params)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["data"] == [], path


def test_options_volume_agrees_with_flow_alerts_and_ticks_over_http(uw: UWSim) -> None:
    volume = uw.data("/api/stock/TSLA/options-volume", date=DAY.isoformat())[0]
    assert volume["date"] == DAY.isoformat()
    t0 = calendar.session_open(DAY).value / 1e9
    t1 = calendar.session_close(DAY).value / 1e9
    alerts = uw.data(ALERTS, ticker_symbol="TSLA", newer_than=t0, older_than=t1, limit=200)
    assert alerts
    for side in ("call", "put"):
        mine = [a for a in alerts if a["type"] == side]
        assert sum(int(a["total_premium"]) for a in mine) <= int(volume[f"{side}_premium"])
        assert sum(a["total_size"] for a in mine) <= volume[f"{side}_volume"]
    ticks = uw.data("/api/stock/TSLA/net-prem-ticks", date=DAY.isoformat())
    assert len(ticks) == len(calendar.session_minutes(DAY))
    assert sum(t["call_volume"] for t in ticks) == volume["call_volume"]
    assert sum(t["put_volume_bid_side"] for t in ticks) == volume["put_volume_bid_side"]
    assert sum(Decimal(t["net_call_premium"]) for t in ticks) == Decimal(volume["net_call_premium"])
    recent = uw.get("/api/stock/TSLA/flow-recent").json()
    assert recent["date"] == DAY.isoformat()  # mid-session on the 5th: the last closed day
    assert sum(int(r["call_premium"]) for r in recent["data"]) == int(volume["call_premium"])
    assert sum(r["put_trades"] for r in recent["data"]) >= 1


def test_ticks_and_tide_grow_with_the_clock(uw: UWSim) -> None:
    before = uw.data("/api/stock/AAPL/net-prem-ticks")
    tide = uw.data("/api/market/market-tide")
    minutes_done = int((UW_NOW - calendar.session_open("2024-03-05").value / 1e9) // 60)
    assert len(before) == minutes_done and len(tide) == minutes_done // 5
    assert len(uw.data("/api/market/market-tide", interval_5m="false")) == minutes_done
    uw.clock.advance(30 * 60)
    assert len(uw.data("/api/stock/AAPL/net-prem-ticks")) == minutes_done + 30
    assert len(uw.data("/api/market/market-tide")) == minutes_done // 5 + 6


def test_ohlc_candles_come_from_the_minute_bars(uw: UWSim) -> None:
    bars = uw.truth.market.minute_bars("AAPL", DAY, adjusted=False)
    one = uw.data("/api/stock/AAPL/ohlc/1m", date=DAY.isoformat())
    assert len(one) == len(bars)
    newest = one[0]
    assert Decimal(newest["close"]) == Decimal(str(bars["close"].iloc[-1]))
    assert newest["total_volume"] == int(bars["volume"].sum())
    five = uw.data("/api/stock/AAPL/ohlc/5m", date=DAY.isoformat())
    assert sum(c["volume"] for c in five) == int(bars["volume"].sum())
    assert max(Decimal(c["high"]) for c in five) == Decimal(str(bars["high"].max()))
    daily = uw.data("/api/stock/AAPL/ohlc/1d", timeframe="1M")
    assert daily[0]["date"] == DAY.isoformat() and daily[0]["start_time"] is None  # the 5th is not closed yet
    weekly = uw.data("/api/stock/AAPL/ohlc/1w", timeframe="2M")
    assert all(dt.date.fromisoformat(w["date"]).weekday() == 0 for w in weekly)
    assert len(uw.data("/api/stock/AAPL/ohlc/1m", timeframe="1M", limit=100)) == 100


def test_etf_in_outflow_defaults_to_a_year_newest_first(uw: UWSim) -> None:
    rows = uw.data("/api/etfs/SPY/in-outflow")
    assert rows[0]["date"] == DAY.isoformat()
    assert rows[-1]["date"] == "2024-01-02"  # the market starts there
    closes = uw.truth.market.daily_bars("SPY", DAY, DAY, adjusted=False)
    assert Decimal(rows[0]["close"]) == Decimal(str(closes["close"].iloc[0]))
    window = uw.data("/api/etfs/IWM/in-outflow", start_date="2024-02-01", end_date="2024-02-09")
    assert [r["date"] for r in window][-1] == "2024-02-01" and len(window) == 7


def test_timestamp_style_switch(uw: UWSim) -> None:
    live = uw.data(ALERTS, limit=1)[0]["created_at"]
    uw.server.style = "spec"
    spec = uw.data(ALERTS, limit=1)[0]["created_at"]
    assert live.endswith("Z") and "T" in live
    assert spec.endswith("+00:00") and " " in spec
    assert _epoch(live) == _epoch(spec)
    tide = uw.data("/api/market/market-tide")[0]["timestamp"]
    assert tide == "2024-03-05 09:30:00-05:00"
