"""The generic FaultPlan works on the UW simulator, with UW-worded error bodies."""

from __future__ import annotations

import pytest
import requests
from fixtures.uw_simulator import UWSim

from ingestion.simulators.faults import Fault, add_field, drop_field, wrong_type

ALERTS = "/api/option-trades/flow-alerts"


def test_injected_429_and_5xx(uw: UWSim) -> None:
    uw.faults.add(Fault.status(429, retry_after=2, routes={"flow-alerts"}, times=1))
    uw.faults.add(Fault.status(500, routes={"market-tide"}, times=1))
    limited = uw.get(ALERTS, limit=1)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert uw.get(ALERTS, limit=1).status_code == 200
    broken = uw.get("/api/market/market-tide")
    assert broken.status_code == 500 and broken.text == "Something went wrong"
    assert uw.get("/api/market/market-tide").status_code == 200
    assert uw.faults.injected["status:429"] == 1 and uw.faults.injected["status:500"] == 1


def test_schema_drift_reaches_every_record(uw: UWSim) -> None:
    uw.faults.add(Fault.drift(drop_field("id"), routes={"flow-alerts"}, times=1))
    uw.faults.add(Fault.drift(wrong_type("total_premium"), routes={"flow-alerts"}, times=1))
    uw.faults.add(Fault.drift(add_field("whale_mood", "happy"), routes={"darkpool-ticker"}, times=1))
    rows = uw.data(ALERTS, limit=5)
    assert all("id" not in r and isinstance(r["total_premium"], int) for r in rows)
    assert all(r["whale_mood"] == "happy" for r in uw.data("/api/darkpool/AAPL", limit=5))
    assert all("id" in r for r in uw.data(ALERTS, limit=5))


def test_malformed_truncated_and_reset(uw: UWSim) -> None:
    uw.faults.add(Fault.malformed(routes={"market-tide"}, times=1))
    with pytest.raises(requests.JSONDecodeError):
        uw.get("/api/market/market-tide").json()
    uw.faults.add(Fault.truncate(0.5, routes={"darkpool-recent"}, times=1))
    with pytest.raises(requests.exceptions.RequestException):
        uw.get("/api/darkpool/recent")
    uw.faults.add(Fault.reset(routes={"darkpool-recent"}, times=1))
    with pytest.raises(requests.exceptions.ConnectionError):
        uw.get("/api/darkpool/recent")
    assert uw.get("/api/darkpool/recent").status_code == 200
    assert uw.faults.total() == 3
