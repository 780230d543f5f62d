"""Contract: every Polygon REST route of the simulator against the vendor's captures and OpenAPI spec.

For each route the simulator's response is compared with a real capture (``rest-captures/``) and with the spec's
example and schema (``openapi-rest.json``), all read from ``../shared/vendor`` at test time:

* the envelope has the capture's keys (``next_url`` aside: it is there exactly when another page exists);
* every key the simulator sends is one the capture or the spec knows, every key the spec requires is sent;
* every value has the JSON type of the spec (``integer`` is an int, ``number`` any number) and of the capture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from fixtures.simulators import MakePolygonRest

from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server

AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}


@dataclass(frozen=True)
class Case:
    route: str
    spec_path: str
    capture: str
    request: str
    params: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "aggs",
        "/v2/aggs/ticker/{stocksTicker}/range/{multiplier}/{timespan}/{from}/{to}",
        "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json",
        "/v2/aggs/ticker/AAPL/range/1/day/2024-04-01/2024-04-04",
    ),
    Case(
        "aggs-paged",
        "/v2/aggs/ticker/{stocksTicker}/range/{multiplier}/{timespan}/{from}/{to}",
        "v2/aggs/ticker/AAPL/range/1/day/2005-04-02/2005-04-04.json",
        "/v2/aggs/ticker/AAPL/range/1/day/2020-01-01/2020-01-10",
        {"limit": 2},
    ),
    Case(
        "grouped",
        "/v2/aggs/grouped/locale/us/market/stocks/{date}",
        "v2/aggs/grouped/locale/us/market/stocks/2005-04-04&adjusted=true.json",
        "/v2/aggs/grouped/locale/us/market/stocks/2024-04-04",
        {"adjusted": "true"},
    ),
    Case(
        "ticker",
        "/v3/reference/tickers/{ticker}",
        "v3/reference/tickers/AAPL.json",
        "/v3/reference/tickers/AAPL",
    ),
    Case(
        "ticker-as-of",
        "/v3/reference/tickers/{ticker}",
        "v3/reference/tickers/AAPL&date=2020-10-01.json",
        "/v3/reference/tickers/AAPL",
        {"date": "2020-10-01"},
    ),
    Case(
        "news",
        "/v2/reference/news",
        "v2/reference/news&ticker=NFLX.json",
        "/v2/reference/news",
        {"ticker": "NFLX", "limit": 3},
    ),
    Case(
        "trades",
        "/v3/trades/{stockTicker}",
        "v3/trades/AAPL&limit=2.json",
        "/v3/trades/AAPL",
        {"limit": 200, "timestamp": "2024-04-04"},
    ),
    Case(
        "quotes",
        "/v3/quotes/{stockTicker}",
        "v3/quotes/AAPL.json",
        "/v3/quotes/AAPL",
        {"limit": 10, "timestamp": "2024-04-04"},
    ),
]


@cache
def load_spec(vendor: Path) -> dict[str, Any]:
    return json.loads((vendor / "polygon" / "openapi-rest.json").read_text())  # type: ignore[no-any-return]


SPEC: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def rest_spec(vendor: Path) -> dict[str, Any]:
    """The official OpenAPI spec, read from the vendor folder at test time (resolve() follows refs into it)."""
    SPEC.update(load_spec(vendor))
    return SPEC


def spec() -> dict[str, Any]:
    return SPEC


def resolve(node: Any) -> Any:
    """Follow ``$ref`` and merge ``allOf`` into one object schema."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].split("/")[1:]:
            target = target[part]
        node = target
    if isinstance(node, dict) and "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in map(resolve, node["allOf"]):
            merged["properties"].update(part.get("properties", {}))
            merged["required"].extend(part.get("required", []))
        return merged
    return node


def response_schema(path: str) -> dict[str, Any]:
    op = spec()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return {"schema": resolve(op["schema"]), "example": op.get("example")}


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def check_schema(value: Any, schema: Any, where: str) -> None:
    """The value fits the spec: required keys present, no key outside the schema, JSON types as declared."""
    schema = resolve(schema)
    kind = schema.get("type")
    if kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer"
    elif kind == "number":
        assert json_kind(value) == "number", f"{where}: {value!r} is not a number"
    elif kind in ("string", "boolean", "array", "object"):
        assert json_kind(value) == kind, f"{where}: {value!r} is not {kind}"
    if isinstance(value, dict) and "properties" in schema:
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: required keys missing: {sorted(missing)}"
        for key, item in value.items():
            if key in schema["properties"]:
                check_schema(item, schema["properties"][key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_schema(item, schema["items"], f"{where}[{i}]")


def check_like(ours: Any, theirs: Any, where: str) -> None:
    """Where both sides have a key, the JSON types agree (recursively, records against the capture's first)."""
    assert json_kind(ours) == json_kind(theirs), f"{where}: {json_kind(ours)} here, {json_kind(theirs)} in the capture"
    if isinstance(ours, dict):
        for key in set(ours) & set(theirs):
            check_like(ours[key], theirs[key], f"{where}.{key}")
    if isinstance(ours, list) and ours and theirs:
        for i, item in enumerate(ours):
            check_like(item, theirs[0], f"{where}[{i}]")


def known_keys(records: list[dict[str, Any]], schema: dict[str, Any]) -> set[str]:
    keys = set(resolve(schema).get("properties", {}))
    for record in records:
        keys |= set(record)
    return keys


@pytest.fixture(scope="module")
def small_market_server() -> Iterator[PolygonRestServer]:
    """Grouped daily builds every symbol's year of bars: a small universe keeps the contract test fast."""
    with polygon_rest_server(Market(symbols=("AAPL", "MSFT", "NFLX", "SPY"))) as server:
        yield server


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.route)
def test_route_matches_capture_and_spec(case: Case, small_market_server: PolygonRestServer, vendor: Path) -> None:
    response = requests.get(small_market_server.url + case.request, params=case.params, headers=AUTH, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    ours = response.json()
    capture = json.loads((vendor / "polygon" / "rest-captures" / case.capture).read_text())
    spec_part = response_schema(case.spec_path)
    schema, example = spec_part["schema"], spec_part["example"]

    # Envelope: the capture's keys exactly, next_url aside.
    assert set(ours) - {"next_url"} == set(capture) - {"next_url"}
    assert set(example or {}) - {"next_url"} <= set(ours)
    # Every key is known, every required key is there, every type is the spec's and the capture's.
    check_schema(ours, schema, case.route)
    results_schema = resolve(schema)["properties"]["results"]
    if isinstance(ours["results"], list):
        item_schema = resolve(results_schema)["items"]
        allowed = known_keys(capture["results"] + (example or {}).get("results", []), item_schema)
        for record in ours["results"]:
            assert set(record) <= allowed, f"{case.route}: unknown keys {set(record) - allowed}"
    else:
        allowed = known_keys([capture["results"], (example or {}).get("results", {})], results_schema)
        assert set(ours["results"]) <= allowed
        assert set(capture["results"]) - {"delisted_utc", "ticker_suffix"} <= set(ours["results"])
    check_like({k: v for k, v in ours.items() if k in capture}, capture, case.route)


def test_paged_routes_send_next_url_like_the_spec_example(small_market_server: PolygonRestServer) -> None:
    for case in CASES:
        example = response_schema(case.spec_path)["example"] or {}
        if "next_url" not in example:
            continue
        params = {**case.params, "limit": 1}
        body = requests.get(small_market_server.url + case.request, params=params, headers=AUTH, timeout=60).json()
        assert "next_url" in body, case.route
        assert "cursor=" in body["next_url"] and POLYGON_SIM_KEY not in body["next_url"]


def test_error_bodies_match_the_documented_shapes(make_polygon_rest: MakePolygonRest) -> None:
    sim = make_polygon_rest(keys={POLYGON_SIM_KEY: "unlimited", "free-key": "free"})
    missing = requests.get(sim.url + "/v3/reference/tickers/AAPL", timeout=30).json()
    assert set(missing) == {"status", "request_id", "error"} and missing["error"] == "API Key was not provided"
    old = requests.get(
        sim.url + "/v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-03",
        headers={"Authorization": "Bearer free-key"},
        timeout=30,
    ).json()
    assert set(old) == {"status", "request_id", "message"} and old["status"] == "NOT_AUTHORIZED"
