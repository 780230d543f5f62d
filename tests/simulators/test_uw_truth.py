"""Unusual Whales ground truth: deterministic by seed and consistent with the market and across datasets."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ingestion import calendar
from ingestion.simulators.market import ETFS, Market
from ingestion.simulators.uw_truth import SIDE_FIELDS, UWTruth, side_premium, side_volume

DAY = dt.date(2024, 3, 4)


@pytest.fixture(scope="module")
def truth(uw_market: Market) -> UWTruth:
    return UWTruth(uw_market)


def test_same_seed_same_truth_whatever_is_asked_first(uw_market: Market) -> None:
    a = UWTruth(uw_market)
    b = UWTruth(Market(seed=uw_market.seed, start=uw_market.start, end=uw_market.end))
    b.darkpool_prints("MSFT", DAY)
    b.flow_alerts("NVDA", dt.date(2024, 2, 1))
    assert a.flow_alerts("MSFT", DAY) == b.flow_alerts("MSFT", DAY)
    assert a.darkpool_prints("MSFT", DAY) == b.darkpool_prints("MSFT", DAY)
    assert a.insider_transactions(dt.date(2024, 1, 1), DAY) == b.insider_transactions(dt.date(2024, 1, 1), DAY)
    other = UWTruth(Market(seed=uw_market.seed + 1, start=uw_market.start, end=uw_market.end))
    assert [x.id for x in other.flow_alerts("MSFT", DAY)] != [x.id for x in a.flow_alerts("MSFT", DAY)]


def test_alerts_inside_their_session_with_unique_ids(truth: UWTruth) -> None:
    ids: set[str] = set()
    for day in truth.market.sessions("2024-02-26", "2024-03-05"):
        open_us = calendar.session_open(day).value // 1000
        close_us = calendar.session_close(day).value // 1000
        for symbol in truth.symbols:
            alerts = truth.flow_alerts(symbol, day)
            assert alerts, (symbol, day)
            for a in alerts:
                assert open_us <= a.created_at_us < close_us
                assert a.start_time_ms <= a.end_time_ms <= a.created_at_us // 1000
                assert a.expiry >= day
                assert a.ask_size + a.bid_size <= a.total_size <= a.volume
                assert a.bid_cents <= a.price_cents <= a.ask_cents
                assert a.id not in ids
                ids.add(a.id)
    assert truth.flow_alerts("AAPL", dt.date(2024, 3, 9)) == ()  # a Saturday
    assert truth.flow_alerts("ZZZZ", DAY) == ()


def test_alert_premium_is_consistent_with_the_underlying(truth: UWTruth) -> None:
    bars = truth.market.minute_bars("AAPL", DAY, adjusted=False)
    closes = set(bars["close"]) | {float(bars["open"].iloc[0])}
    for a in truth.flow_alerts("AAPL", DAY):
        assert a.underlying_price in closes  # a price the stock really printed before the alert
        assert a.total_premium == a.total_size * a.price_cents  # price x 100 shares x contracts
        intrinsic = max(0.0, (a.underlying_price - a.strike) if a.is_call else (a.strike - a.underlying_price))
        assert a.price_cents / 100 >= intrinsic - 0.01
        assert a.option_chain.startswith(f"AAPL{a.expiry:%y%m%d}{'C' if a.is_call else 'P'}")


def test_flow_alerts_fit_inside_the_options_volume(truth: UWTruth) -> None:
    """The documented relation: per side, alerts' premium, ask-side premium and size <= the day's totals."""
    for symbol in ("AAPL", "SPY", "JPM"):
        volume = truth.options_volume(symbol, DAY)
        assert volume is not None
        alerts = truth.flow_alerts(symbol, DAY)
        for side, is_call in (("call", True), ("put", False)):
            mine = [a for a in alerts if a.is_call == is_call]
            assert sum(a.total_premium for a in mine) <= side_premium(volume, side)
            assert sum(a.total_ask_side_prem for a in mine) <= volume[f"{side}_prem_ask"]
            assert sum(a.total_bid_side_prem for a in mine) <= volume[f"{side}_prem_bid"]
            assert sum(a.total_size for a in mine) <= side_volume(volume, side)


def test_ticks_and_expiry_rows_sum_to_the_day(truth: UWTruth) -> None:
    flow = truth.day_flow("NVDA", DAY)
    assert flow is not None
    volume = truth.options_volume("NVDA", DAY)
    assert volume is not None
    assert len(flow.ticks) == len(calendar.session_minutes(DAY))
    for side in ("call", "put"):
        for f in SIDE_FIELDS:
            col = f"{side}_{f}"
            assert int(flow.ticks[col].sum()) == volume[col]
            assert int(flow.by_expiry[col].sum()) == volume[col]
        vol = sum(flow.by_expiry[f"{side}_vol_{p}"] for p in ("ask", "bid", "mid"))
        assert (flow.by_expiry[f"{side}_otm_vol"] <= vol).all()
        for expiry, group in pd.Series(list(flow.alerts)).groupby([a.expiry for a in flow.alerts]):
            row = flow.by_expiry[flow.by_expiry["expiry"] == expiry].iloc[0]
            mine = [a for a in group if a.is_call == (side == "call")]
            assert sum(a.total_premium for a in mine) <= side_premium(row, side)


def test_market_tide_is_the_cumulative_universe_net_flow(truth: UWTruth) -> None:
    tide = truth.market_tide(DAY, 5)
    one = truth.market_tide(DAY, 1)
    assert len(one) == len(calendar.session_minutes(DAY)) and len(tide) == len(one) // 5
    net_call = sum(
        int((truth.net_prem_ticks(s, DAY)["call_prem_ask"] - truth.net_prem_ticks(s, DAY)["call_prem_bid"]).sum())
        for s in truth.symbols
    )
    assert tide[-1].net_call_premium == one[-1].net_call_premium == net_call
    first_five = sum(
        int((t["put_prem_ask"] - t["put_prem_bid"]).iloc[:5].sum())
        for t in (truth.net_prem_ticks(s, DAY) for s in truth.symbols)
    )
    assert tide[0].net_put_premium == first_five
    assert tide[0].end_ms - tide[0].start_ms == 300_000
    assert truth.market_tide(dt.date(2024, 1, 15)) == []  # Martin Luther King Jr. Day


def test_darkpool_prints_sit_in_the_days_range(truth: UWTruth) -> None:
    bars = truth.market.minute_bars("MSFT", DAY, adjusted=False)
    daily = truth.market.daily_bars("MSFT", DAY, DAY, adjusted=False).iloc[0]
    prints = truth.darkpool_prints("MSFT", DAY)
    assert prints and any(p.ext_hour_sold_codes for p in prints)
    assert len({p.key for p in prints}) == len(prints)
    starts = bars["window_start_ms"].tolist()
    for p in prints:
        assert daily["low"] * 0.997 <= p.price <= daily["high"] * 1.003
        assert p.nbbo_bid <= p.price <= p.nbbo_ask
        if p.ext_hour_sold_codes is None:
            bar = bars.iloc[max(i for i, s in enumerate(starts) if s <= p.executed_at_s * 1000)]
            assert bar["low"] <= p.price <= bar["high"]
            assert p.volume <= daily["volume"]
    assert [p.executed_at_s for p in prints] == sorted(p.executed_at_s for p in prints)


def test_canceled_prints_exist_across_days(truth: UWTruth) -> None:
    prints = [p for d in truth.market.sessions("2024-02-01", "2024-03-05") for p in truth.darkpool_prints("SPY", d)]
    assert 0 < sum(p.canceled for p in prints) < len(prints) * 0.1


def test_insider_filings_follow_their_transactions(truth: UWTruth) -> None:
    raw = truth.insider_transactions(dt.date(2024, 1, 1), dt.date(2024, 3, 28))
    assert raw and not any(t.ticker in ETFS for t in raw)
    for t in raw:
        assert t.transaction_date <= t.filing_date
        filed = pd.Timestamp(t.filed_at_s, unit="s", tz="UTC")
        assert calendar.new_york_date(filed) == t.filing_date
        assert (t.amount < 0) == (t.transaction_code in ("S", "F"))
        assert t.shares_owned_after == t.shares_owned_before + t.amount
    grouped = truth.insider_rows(dt.date(2024, 1, 1), dt.date(2024, 3, 28), group=True)
    assert sum(len(r.members) for r in grouped) == len(raw)
    assert any(len(r.members) > 1 for r in grouped)
    assert all(r.amount == sum(m.amount for m in r.members) for r in grouped)
    assert [r.filed_at_s for r in grouped] == sorted((r.filed_at_s for r in grouped), reverse=True)


def test_etf_flows_carry_the_daily_bar(truth: UWTruth) -> None:
    flows = truth.etf_flows("QQQ", dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    daily = truth.market.daily_bars("QQQ", "2024-02-01", "2024-02-29", adjusted=False)
    assert [f.date for f in flows] == list(daily["day"])
    assert [f.close for f in flows] == list(daily["close"])
    assert [f.volume for f in flows] == [int(v) for v in daily["volume"]]
    assert truth.etf_flows("AAPL", dt.date(2024, 2, 1), dt.date(2024, 2, 29)) == []


def test_flow_alerts_between_is_inclusive_and_newest_first(truth: UWTruth) -> None:
    day_alerts = sorted((a for s in ("AAPL", "TSLA") for a in truth.flow_alerts(s, DAY)), key=lambda a: a.created_at_us)
    lo, hi = day_alerts[3], day_alerts[-4]
    got = truth.flow_alerts_between(["AAPL", "TSLA"], lo.created_at_s, hi.created_at_s)
    assert got[0] == hi and got[-1] == lo
    assert len(got) == len(day_alerts) - 6
