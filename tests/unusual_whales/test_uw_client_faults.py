"""The UW client under faults, against the simulator: 429s waited out, the daily quota held until 20:00 New York,
5xx retried then the breaker opened, malformed rows quarantined with their reasons. Time is the simulator's frozen
clock, moved only by the client's own (injected) sleeps."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import MakeUW

from ingestion.errors import CircuitOpen, QuotaExhausted, SchemaError, ServerError
from ingestion.http import CircuitBreaker
from ingestion.ops import alerts
from ingestion.simulators.faults import Fault, drop_field
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.unusual_whales import UWPlan
from ingestion.store.quarantine import Quarantine
from ingestion.unusual_whales.quota import next_reset, read_quota_headers

MONDAY = dt.date(2024, 3, 4)
# UW_NOW is Tuesday 2024-03-05 13:00 New York (EST): the quota day resets at 20:00 New York = 01:00 UTC.
RESET = dt.datetime(2024, 3, 6, 1, 0, tzinfo=dt.UTC)


def test_429_with_retry_after_is_waited_out(make_uw_client: MakeKit) -> None:
    kit = make_uw_client()
    kit.sim.faults.add(Fault.status(429, retry_after=2, routes={"flow-alerts"}, times=2))
    frame = kit.client.get_options_alerts(limit=5)
    assert len(frame) == 5
    assert kit.sleeper.sleeps == [2.0, 2.0]
    assert kit.requests("flow-alerts") == 3


def test_per_minute_429_waits_for_the_vendor_reset(make_uw: MakeUW, make_uw_client: MakeKit) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_minute=3)})
    kit = make_uw_client(sim)
    for _ in range(4):
        kit.client.get_options_alerts(limit=1)
    # The 4th request met the rolling-minute limit; its wait came from x-uw-req-per-minute-reset, not a guess.
    assert sim.server.log.by_status[429] == 1
    assert len(kit.sleeper.sleeps) == 1 and 0 < kit.sleeper.sleeps[0] <= 60


def test_limiter_follows_the_vendor_counters(make_uw: MakeUW, make_uw_client: MakeKit) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_minute=5)})
    kit = make_uw_client(sim, per_minute=100)  # the client thinks it may send 100 a minute; the vendor says 5
    for _ in range(12):
        kit.client.get_options_alerts(limit=1)
    assert sim.server.log.by_status[429] == 0
    assert sim.server.log.max_in_window(UW_SIM_TOKEN, 60.0) <= 5
    assert kit.client.http.limiter is not None and kit.client.http.limiter.stats.waits >= 2


def test_daily_budget_is_kept_and_held_until_reset(make_uw: MakeUW, make_uw_client: MakeKit) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_day=3)})
    kit = make_uw_client(sim)
    for _ in range(3):
        kit.client.get_options_alerts(limit=1)
    # The third answer said 3 of 3: the client holds rather than send a request that can only be refused.
    with pytest.raises(QuotaExhausted) as info:
        kit.client.get_dark_pool_data("AAPL", MONDAY)
    assert info.value.resets_at == RESET
    assert kit.requests() == 3 and sim.server.log.by_status[429] == 0
    sim.clock.advance((RESET.timestamp() - sim.clock.now()) + 1)
    assert len(kit.client.get_options_alerts(limit=2)) == 2


def test_daily_429_becomes_quota_exhausted_without_retry(make_uw: MakeUW, make_uw_client: MakeKit) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_day=4)})
    mine, other = make_uw_client(sim), make_uw_client(sim)
    mine.client.get_options_alerts(limit=1)
    for _ in range(3):
        other.client.get_options_alerts(limit=1)  # another process spends the rest of the day
    with pytest.raises(QuotaExhausted) as info:
        mine.client.get_options_alerts(limit=1)
    assert info.value.resets_at == RESET and info.value.status == 429
    assert mine.sleeper.sleeps == [] and sim.server.log.by_status[429] == 1
    # Held: further calls fail at once, without a request.
    with pytest.raises(QuotaExhausted):
        mine.client.get_etf_flow("SPY")
    with pytest.raises(QuotaExhausted):
        mine.client.get_options_alerts(limit=1)
    assert sim.server.log.by_status[429] == 1 and sum(sim.server.log.by_route.values()) == 5


def test_quota_low_alert_once_per_day(make_uw: MakeUW, make_uw_client: MakeKit) -> None:
    sim = make_uw(tokens={UW_SIM_TOKEN: UWPlan(per_day=20)})
    kit = make_uw_client(sim, quota_warn_fraction=0.1)
    seen: list[alerts.Alert] = []
    alerts.add_hook(seen.append)
    try:
        for _ in range(19):
            kit.client.get_options_alerts(limit=1)
    finally:
        alerts.remove_hook(seen.append)
    low = [a for a in seen if a.kind == alerts.QUOTA_LOW]
    assert len(low) == 1
    assert low[0].fields["remaining"] == 2 and low[0].fields["limit"] == 20
    assert UW_SIM_TOKEN not in low[0].message


def test_5xx_is_retried_then_the_breaker_opens(make_uw_client: MakeKit) -> None:
    kit = make_uw_client(max_attempts=3)
    kit.sim.faults.add(Fault.status(503, routes={"etf-in-outflow"}, times=2))
    assert len(kit.client.get_etf_flow("SPY", MONDAY, MONDAY)) == 1
    assert kit.requests("etf-in-outflow") == 3 and len(kit.sleeper.sleeps) == 2

    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=600, name="uw-test-breaker")
    broken = make_uw_client(kit.sim, breaker=breaker, max_attempts=2)
    kit.sim.faults.add(Fault.status(500, routes={"darkpool-ticker"}))
    with pytest.raises(ServerError):
        broken.client.get_dark_pool_data("AAPL", MONDAY)
    with pytest.raises((ServerError, CircuitOpen)):
        broken.client.get_dark_pool_data("AAPL", MONDAY)
    sent = broken.requests("darkpool-ticker")
    assert sent == 3
    with pytest.raises(CircuitOpen):
        broken.client.get_dark_pool_data("AAPL", MONDAY)
    assert broken.requests("darkpool-ticker") == sent


def _every_other(field: str, value: Any) -> Any:
    counter = itertools.count()

    def transform(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, field: value} if next(counter) % 2 == 0 else record

    return transform


def test_malformed_rows_are_quarantined_with_reasons(make_uw_client: MakeKit, tmp_path: Path) -> None:
    kit = make_uw_client()
    kit.sim.faults.add(Fault.drift(_every_other("total_premium", "n/a"), routes={"flow-alerts"}, times=1))
    kit.sim.faults.add(Fault.drift(drop_field("executed_at"), routes={"darkpool-ticker"}, times=1))
    alerts_frame = kit.client.get_options_alerts(limit=20)
    prints = kit.client.get_dark_pool_data("AAPL", MONDAY)
    assert len(alerts_frame) == 10 and prints.empty
    n_prints = len(kit.sim.truth.darkpool_prints("AAPL", MONDAY))
    assert len(kit.rejected) == 10 + n_prints
    reasons = {r.reason for r in kit.rejected}
    assert any("total_premium" in r and "'n/a'" in r for r in reasons)
    assert any("missing required field(s): executed_at" in r for r in reasons)

    quarantine = Quarantine(tmp_path)
    quarantine.write(kit.rejected)
    counts = quarantine.counts_by_dataset()
    assert counts == {"uw_flow_alerts": 10, "uw_dark_pool": n_prints}

    kit.sim.faults.add(Fault.malformed(routes={"market-tide"}, times=1))
    with pytest.raises(SchemaError):
        kit.client.get_market_tide()


def test_quota_headers_and_reset_instant() -> None:
    snap = read_quota_headers(
        {
            "x-uw-daily-req-count": "10",
            "x-uw-token-req-limit": "15000",
            "x-uw-req-per-minute-remaining": "110",
            "x-uw-req-per-minute-reset": "59500",
        }
    )
    assert snap is not None and snap.daily_remaining == 14990 and snap.minute_reset_s == 59.5
    assert read_quota_headers({"content-type": "application/json"}) is None
    # Across the spring DST change the reset stays at 20:00 New York (EDT: 00:00 UTC).
    assert next_reset(dt.datetime(2024, 3, 10, 23, 0, tzinfo=dt.UTC).timestamp()) == dt.datetime(
        2024, 3, 11, 0, 0, tzinfo=dt.UTC
    )
    assert next_reset(RESET.timestamp()) == dt.datetime(2024, 3, 7, 1, 0, tzinfo=dt.UTC)
