"""UW auth and quotas: 401, the x-uw-* headers on every response, 429 per minute and per day on the simulated clock."""

from __future__ import annotations

import pandas as pd
from fixtures.uw_simulator import MakeUW, UWSim

from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.unusual_whales import UWPlan, quota_day

HEADERS = (
    "x-uw-daily-req-count",
    "x-uw-token-req-limit",
    "x-uw-minute-req-counter",
    "x-uw-req-per-minute-remaining",
    "x-uw-req-per-minute-reset",
)
TIDE = "/api/market/market-tide"


def _epoch(text: str) -> float:
    return float(pd.Timestamp(text).value / 1e9)


def test_bad_or_missing_token_is_401_and_not_counted(uw: UWSim) -> None:
    assert uw.get(TIDE, token="wrong").status_code == 401
    assert uw.get(TIDE, token=None).status_code == 401
    ok = uw.get(TIDE)
    assert ok.status_code == 200
    assert ok.headers["x-uw-daily-req-count"] == "1"


def test_quota_headers_on_every_response(uw: UWSim) -> None:
    for path, params, status in [
        (TIDE, {}, 200),
        ("/api/option-trades/flow-alerts", {"limit": 999}, 422),
        ("/api/stock/AAPL/ohlc/5m", {"limit": 3}, 200),
        ("/api/darkpool/ZZZZ", {}, 200),
        ("/api/no/such/route", {}, 404),
    ]:
        response = uw.get(path, **params)
        assert response.status_code == status
        assert all(h in response.headers for h in HEADERS), path
    last = uw.get(TIDE).headers
    assert last["x-uw-daily-req-count"] == "6"
    assert last["x-uw-token-req-limit"] == "15000"
    assert last["x-uw-minute-req-counter"] == "6"
    assert last["x-uw-req-per-minute-remaining"] == "114"
    assert last["x-uw-req-per-minute-reset"] == "60000"  # frozen clock: the oldest request frees its slot in 60 s


def test_per_minute_budget_429_then_recovers_on_the_clock(make_uw: MakeUW) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_minute=5, per_day=1000)})
    for i in range(5):
        sim.clock.advance(1.0)
        assert sim.get(TIDE).status_code == 200, i
    refused = sim.get(TIDE)
    assert refused.status_code == 429
    assert refused.json()["msg"].startswith("Too many requests: the per-minute")
    assert refused.headers["x-uw-req-per-minute-remaining"] == "0"
    assert refused.headers["x-uw-req-per-minute-reset"] == "56000"  # the first request leaves the window in 56 s
    sim.clock.advance(56.0)
    assert sim.get(TIDE).status_code == 200  # one slot freed, no more
    assert sim.get(TIDE).status_code == 429
    assert sim.server.log.by_status[429] == 2
    # Served requests never exceed the plan in any rolling minute (refusals are logged without a key).
    assert sim.server.log.max_in_window(UW_SIM_TOKEN, 60.0) == 5
    assert sim.get(TIDE).headers["x-uw-daily-req-count"] == "6"  # refusals are not counted


def test_daily_budget_resets_at_20_new_york(make_uw: MakeUW) -> None:
    start = _epoch("2024-03-05 19:30:00-05:00")  # 19:30 New York
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_minute=100, per_day=3)}, now=start)
    for _ in range(3):
        assert sim.get(TIDE).status_code == 200
    refused = sim.get(TIDE)
    assert refused.status_code == 429 and "daily" in refused.json()["msg"]
    assert refused.headers["x-uw-daily-req-count"] == "3"
    sim.clock.advance(29 * 60)  # 19:59: same quota day
    assert sim.get(TIDE).status_code == 429
    sim.clock.advance(60)  # 20:00 New York: a new quota day
    fresh = sim.get(TIDE)
    assert fresh.status_code == 200 and fresh.headers["x-uw-daily-req-count"] == "1"


def test_quota_day_rolls_at_20_new_york_in_both_seasons() -> None:
    assert quota_day(_epoch("2024-03-05 19:59:59-05:00")).isoformat() == "2024-03-05"
    assert quota_day(_epoch("2024-03-05 20:00:00-05:00")).isoformat() == "2024-03-06"
    assert quota_day(_epoch("2024-07-05 19:59:59-04:00")).isoformat() == "2024-07-05"
    assert quota_day(_epoch("2024-07-05 20:00:00-04:00")).isoformat() == "2024-07-06"


def test_tokens_have_their_own_plans_and_counters(make_uw: MakeUW) -> None:
    sim = make_uw(tokens={"a": UWPlan(per_minute=1, per_day=10), "b": UWPlan("startup", 500, 80_000)})
    assert sim.get(TIDE, token="a").status_code == 200
    assert sim.get(TIDE, token="a").status_code == 429
    b = sim.get(TIDE, token="b")
    assert b.status_code == 200 and b.headers["x-uw-token-req-limit"] == "80000"
    assert sim.get(TIDE, token=UW_SIM_TOKEN).status_code == 401  # only the configured tokens are accepted


def test_missing_client_api_id_is_served_and_counted(uw: UWSim) -> None:
    assert uw.get(TIDE, client_id=False).status_code == 200
    assert uw.get(TIDE, client_id=False).status_code == 200
    assert uw.get(TIDE).status_code == 200
    assert uw.server.missing_client_id[UW_SIM_TOKEN] == 2


def test_history_window_is_403(make_uw: MakeUW) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan("startup", 500, 80_000, history_days=30)})
    assert sim.get("/api/darkpool/AAPL", date="2024-03-01").status_code == 200
    old = sim.get("/api/darkpool/AAPL", date="2024-01-03")
    assert old.status_code == 403 and "30 days" in old.json()["msg"]
