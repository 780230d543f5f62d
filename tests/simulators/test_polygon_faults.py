"""FaultPlan on the Polygon REST simulator: statuses, latency, resets, damaged bodies, drift, selection, counters."""

from __future__ import annotations

import http.client
import json
from typing import Any

import orjson
import pytest
import requests
from fixtures.simulators import MakePolygonRest, PolygonSim

from ingestion.simulators.faults import Fault, add_field, drop_field, transform_records, wrong_type
from ingestion.simulators.keys import POLYGON_SIM_KEY

AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}
DAILY = "/v2/aggs/ticker/AAPL/range/1/day/2024-03-01/2024-03-08"
TICKER = "/v3/reference/tickers/AAPL"


def get(sim: PolygonSim, path: str = DAILY) -> requests.Response:
    return requests.get(sim.url + path, headers=AUTH, timeout=30)


def raw_get(sim: PolygonSim, path: str = DAILY) -> tuple[int, dict[str, str], bytes]:
    """One request over a bare connection, so a truncated body is seen as it is sent."""
    host, port = sim.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=AUTH)
        response = conn.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as exc:
            body = exc.partial
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


def test_429_with_retry_after_for_the_next_n_requests_of_one_route(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest()
    sim.faults.add(Fault.status(429, retry_after=2, routes={"aggs"}, times=2))
    first, second, third = get(sim), get(sim), get(sim)
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "2"
    assert first.json()["status"] == "ERROR"  # Polygon's wording, from the plan's error responder
    assert get(sim, TICKER).status_code == 200  # another route is untouched
    assert sim.faults.injected["status:429"] == 2
    assert sim.faults.injected_by_route[("aggs", "status")] == 2
    assert sim.server.log.by_status[429] == 2


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_every_nth_request(make_polygon_rest: MakePolygonRest, code: int) -> None:
    sim = make_polygon_rest()
    sim.faults.add(Fault.status(code, every=3))
    statuses = [get(sim, TICKER).status_code for _ in range(9)]
    assert statuses == [200, 200, code] * 3
    assert sim.faults.total("status") == 3


def test_probability_faults_repeat_with_the_same_seed(make_polygon_rest: MakePolygonRest) -> None:
    runs = []
    for _ in range(2):
        sim = make_polygon_rest(seed=42)
        sim.faults.add(Fault.status(503, probability=0.3))
        runs.append([get(sim, TICKER).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert 0 < runs[0].count(503) < 20


def test_a_rule_can_be_switched_off_and_cleared(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest()
    rule = sim.faults.add(Fault.status(500))
    assert get(sim, TICKER).status_code == 500
    rule.enabled = False
    assert get(sim, TICKER).status_code == 200
    rule.enabled = True
    assert get(sim, TICKER).status_code == 500
    sim.faults.clear()
    assert get(sim, TICKER).status_code == 200
    assert rule.fired == 2 and sim.faults.total() == 2


def test_latency_goes_through_the_injected_sleeper(make_polygon_rest: MakePolygonRest) -> None:
    slept: list[float] = []
    sim = make_polygon_rest(sleep=slept.append)
    sim.faults.add(Fault.latency(1.5, routes="ticker", times=2))
    assert [get(sim, TICKER).status_code for _ in range(3)] == [200, 200, 200]
    assert slept == [1.5, 1.5]
    assert sim.faults.injected["latency"] == 2


def test_connection_reset_gives_no_response(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest()
    sim.faults.add(Fault.reset(times=1))
    with pytest.raises(requests.ConnectionError):
        get(sim)
    assert get(sim).status_code == 200
    assert sim.faults.injected["reset"] == 1


def test_truncated_body_is_shorter_than_its_content_length(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest()
    sim.faults.add(Fault.truncate(0.5, times=1))
    status, headers, body = raw_get(sim)
    assert status == 200
    assert len(body) < int(headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert json.loads(raw_get(sim)[2])["status"] == "OK"


def test_malformed_json_keeps_the_status(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest()
    sim.faults.add(Fault.malformed(times=1))
    response = get(sim)
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.drift(drop_field("vw")), lambda r: "vw" not in r),
        (Fault.drift(add_field("otc", True)), lambda r: r["otc"] is True),
        (Fault.drift(wrong_type("t")), lambda r: isinstance(r["t"], str)),
        (Fault.drift(wrong_type("o")), lambda r: isinstance(r["o"], str)),
    ],
)
def test_schema_drift_transforms_every_record(make_polygon_rest: MakePolygonRest, fault: Fault, check: Any) -> None:
    sim = make_polygon_rest()
    sim.faults.add(fault)
    body = get(sim).json()
    assert body["status"] == "OK" and len(body["results"]) == 6
    assert all(check(record) for record in body["results"])
    # A single-object body (ticker details) drifts too.
    sim.faults.clear()
    sim.faults.add(Fault.drift(drop_field("name")))
    assert "name" not in get(sim, TICKER).json()["results"]


def test_transform_records_handles_bare_lists_and_uw_envelopes() -> None:
    drop = drop_field("x")
    assert transform_records([{"x": 1, "y": 2}], drop) == [{"y": 2}]
    assert transform_records({"data": [{"x": 1}], "date": "d"}, drop) == {"data": [{}], "date": "d"}
    assert transform_records({"x": 1, "z": 0}, drop) == {"z": 0}
    assert wrong_type("s")({"s": "4.05"}) == {"s": 12345}


def test_unknown_fault_options_are_rejected() -> None:
    with pytest.raises(TypeError):
        Fault.status(500, often=True)
