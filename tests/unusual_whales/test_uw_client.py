"""Every EnhancedUnusualWhalesClient method against the Unusual Whales simulator (real loopback HTTP).

Each frame is checked against the simulator's ground truth: the same alerts, prints, filings and flows, exactly once.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion.errors import ConfigError
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.uw_truth import side_premium, side_volume
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient, UnusualWhalesClient
from ingestion.unusual_whales.timestamps import new_york_day_start

D = dt.date
MONDAY = D(2024, 3, 4)


def _ny_midnight_s(day: dt.date) -> float:
    return float(new_york_day_start(day).value / 1e9)


def test_alias_and_headers(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    assert UnusualWhalesClient is EnhancedUnusualWhalesClient
    kit.client.get_options_alerts(limit=5)
    # Authorized (Bearer accepted: 200) and the client id header present on every request.
    assert kit.sim.server.log.by_status[200] == 1
    assert sum(kit.sim.server.missing_client_id.values()) == 0


def test_token_from_environment_at_construction(make_uw_client: MakeKit, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = make_uw_client()
    monkeypatch.setenv("UW_API_TOKEN", UW_SIM_TOKEN)
    client = EnhancedUnusualWhalesClient(base_url=kit.sim.url, use_cache=False, clock=kit.sim.clock.now)
    assert len(client.get_options_alerts(limit=3)) == 3
    monkeypatch.delenv("UW_API_TOKEN")
    with pytest.raises(ConfigError, match="UW_API_TOKEN"):
        EnhancedUnusualWhalesClient(base_url=kit.sim.url)


def test_unusual_options_pages_a_window_exactly_once(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_unusual_options(D(2024, 2, 27), MONDAY)
    truth = kit.sim.truth.flow_alerts_between(
        kit.sim.truth.symbols, _ny_midnight_s(D(2024, 2, 27)), _ny_midnight_s(D(2024, 3, 5)) - 1
    )
    assert len(truth) > 400  # more than two pages: the window is read backwards
    assert kit.requests("flow-alerts") > 2
    assert sorted(frame["id"]) == sorted(a.id for a in truth)
    assert frame["created_at"].dtype == "datetime64[us, UTC]" and frame["total_premium"].dtype == "float64"
    by_id = {a.id: a for a in truth}
    assert all(p == by_id[i].total_premium for i, p in zip(frame["id"], frame["total_premium"], strict=True))
    assert not kit.rejected


def test_unusual_options_filters(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_unusual_options(
        MONDAY, MONDAY, min_volume=100, min_open_interest=50, min_premium=50_000, ticker_symbol=["aapl", "MSFT"]
    )
    truth = [
        a
        for a in kit.sim.truth.flow_alerts_between(["AAPL", "MSFT"], _ny_midnight_s(MONDAY), UW_NOW)
        if a.volume >= 100
        and a.open_interest >= 50
        and a.total_premium >= 50_000
        and a.created_at_s < _ny_midnight_s(D(2024, 3, 5))
    ]
    assert truth and sorted(frame["id"]) == sorted(a.id for a in truth)


def test_options_alerts_newest_page(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_options_alerts("NVDA", limit=10, is_call=True)
    assert len(frame) == 10 and set(frame["type"]) == {"call"} and set(frame["symbol"]) == {"NVDA"}
    assert frame["created_at"].is_monotonic_decreasing
    assert (frame["created_at"] <= pd.Timestamp(UW_NOW, unit="s", tz="UTC")).all()


def test_flow_data_volume_and_ticks(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    truth = kit.sim.truth
    recent = kit.client.get_flow_data("AAPL")
    flow = truth.day_flow("AAPL", MONDAY)
    assert flow is not None and len(recent) == len(flow.by_expiry)
    assert recent["call_premium"].sum() == sum(side_premium(r, "call") for r in flow.by_expiry.to_dict("records"))

    volume = kit.client.get_options_volume("AAPL", MONDAY, limit=3)
    assert list(volume["date"]) == [MONDAY, D(2024, 3, 1), D(2024, 2, 29)]
    for row in volume.itertuples():
        day_truth = truth.options_volume("AAPL", row.date)
        assert day_truth is not None
        assert row.call_volume == side_volume(day_truth, "call") and row.put_volume == side_volume(day_truth, "put")

    ticks = kit.client.get_net_premium_ticks("AAPL", MONDAY)
    assert len(ticks) == len(truth.net_prem_ticks("AAPL", MONDAY))
    tide = kit.client.get_market_tide(MONDAY)
    assert len(tide) == len(truth.market_tide(MONDAY, 5))
    assert not kit.rejected


def test_dark_pool(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_dark_pool_data("AAPL", MONDAY)
    prints = kit.sim.truth.darkpool_prints("AAPL", MONDAY)
    assert len(frame) == len(prints)
    assert frame["size"].sum() == sum(p.size for p in prints)
    assert int(frame["canceled"].sum()) == sum(p.canceled for p in prints)
    recent = kit.client.get_dark_pool_data()
    assert len(recent) > 0 and recent["symbol"].nunique() > 1


def test_insider_trading_pages(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_insider_trading(start_date=D(2024, 1, 2), end_date=MONDAY, page_size=10)
    truth = [r for r in kit.sim.truth.insider_rows(D(2024, 1, 2), MONDAY, group=False) if r.filed_at_s <= UW_NOW]
    assert len(truth) > 20  # several pages of 10
    assert kit.requests("insider-transactions") == len(truth) // 10 + 1
    assert sorted(frame["id"]) == sorted(r.id for r in truth)
    assert (frame["value"] == frame["amount"] * frame["price"]).all()
    one = kit.client.get_insider_trading("AAPL", D(2024, 1, 2), MONDAY)
    assert set(one["symbol"]) <= {"AAPL"}


def test_etf_flow(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    frame = kit.client.get_etf_flow("SPY", D(2024, 2, 1), MONDAY)
    truth = kit.sim.truth.etf_flows("SPY", D(2024, 2, 1), MONDAY)
    assert sorted(frame["date"]) == [f.date for f in truth]
    assert frame.set_index("date").loc[truth[0].date, "change"] == truth[0].change
    assert kit.client.get_etf_flow("AAPL", D(2024, 2, 1), MONDAY).empty


def test_all_unusual_activity_reports_a_failing_source(make_uw_client: MakeKit) -> None:
    kit = make_uw_client(max_attempts=2)
    kit.sim.faults.add(Fault.status(500, routes={"insider-transactions"}))
    report = kit.client.get_all_unusual_activity(["AAPL", "MSFT"], etfs=["SPY"])
    assert set(report.errors) == {"insider_trading"} and "server error" in report.errors["insider_trading"]
    assert set(report.frames) == {"options_alerts", "dark_pool", "flow", "etf_flow"}
    assert set(report["dark_pool"]["symbol"]) == {"AAPL", "MSFT"}
    assert not report.ok
