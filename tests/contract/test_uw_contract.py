"""Contract: every UW simulator route against the vendor's spec example and, where one exists, the live capture.

Same envelope, the union of the keys the spec example and the capture show, the same JSON type per key (strings stay
strings, counts stay ints) and the same *shape* of every string: a number stays a decimal string, a timestamp keeps
its format (separator, fraction, zone). In the default ``live`` style the formats follow the capture where one
exists; in ``spec`` style they follow the spec example. The capture marked SUSPECT_fabricated is a negative example.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.uw_simulator import UWSim

# route -> (spec example, live capture or None, request path, params, OpenAPI path)
ROUTES: dict[str, tuple[str, str | None, str, dict[str, Any], str]] = {
    "flow-alerts": ("option-trades__flow-alerts", "option-trades__flow-alerts", "/api/option-trades/flow-alerts",
                    {"limit": 50}, "/api/option-trades/flow-alerts"),
    "flow-recent": ("stock__ticker__flow-recent", None, "/api/stock/AAPL/flow-recent", {},
                    "/api/stock/{ticker}/flow-recent"),
    "options-volume": ("stock__ticker__options-volume", None, "/api/stock/AAPL/options-volume", {"limit": 3},
                       "/api/stock/{ticker}/options-volume"),
    "net-prem-ticks": ("stock__ticker__net-prem-ticks", None, "/api/stock/AAPL/net-prem-ticks", {},
                       "/api/stock/{ticker}/net-prem-ticks"),
    "ohlc": ("stock__ticker__ohlc__candle_size", None, "/api/stock/AAPL/ohlc/1m", {"date": "2024-03-04"},
             "/api/stock/{ticker}/ohlc/{candle_size}"),
    "darkpool-recent": ("darkpool__recent", "darkpool__darkpool-recent", "/api/darkpool/recent", {"limit": 200},
                        "/api/darkpool/recent"),
    "darkpool-ticker": ("darkpool__ticker", "darkpool__darkpool-ticker", "/api/darkpool/SPY",
                        {"date": "2024-03-04"}, "/api/darkpool/{ticker}"),
    "insider-transactions": ("insider__transactions", "insider__transactions", "/api/insider/transactions",
                             {"limit": 100}, "/api/insider/transactions"),
    "etf-in-outflow": ("etfs__ticker__in-outflow", None, "/api/etfs/SPY/in-outflow", {},
                       "/api/etfs/{ticker}/in-outflow"),
    "market-tide": ("market__market-tide", "market__market-tide", "/api/market/market-tide", {},
                    "/api/market/market-tide"),
}  # fmt: skip


def _load(vendor: Path, folder: str, name: str) -> Any:
    return json.loads((vendor / "unusual_whales" / folder / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def nullable(vendor: Path) -> dict[str, set[str]]:
    """Per OpenAPI path, the fields the spec documents as possibly null ("Null if none applies")."""
    spec = yaml.load((vendor / "unusual_whales" / "openapi.yaml").read_text(), Loader=yaml.CSafeLoader)

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    out: dict[str, set[str]] = {}
    for route in ROUTES.values():
        schema = resolve(spec["paths"][route[4]]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
        while "properties" not in schema:
            schema = resolve(schema.get("items") or schema["properties"]["data"])
        out[route[4]] = {
            k for k, v in schema["properties"].items() if "null" in str(resolve(v).get("description", "")).lower()
        }
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return type(value).__name__


_SHAPES = [
    ("decimal", re.compile(r"-?\d+(\.\d+)?")),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("uuid", re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")),
    ("option-symbol", re.compile(r"[A-Z]+\d{6}[CP]\d{8}")),
]
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?P<sep>[ T])\d{2}:\d{2}:\d{2}(?P<frac>\.\d{6})?(?P<zone>Z|[+-]\d{2}:\d{2})")


def shape(value: str) -> str:
    """The format class of a string: a decimal, a date, a timestamp by separator/fraction/zone, a UUID, or text."""
    for name, pattern in _SHAPES:
        if pattern.fullmatch(value):
            return name
    m = _TIMESTAMP.fullmatch(value)
    if m:
        zone = "Z" if m["zone"] == "Z" else "+00:00" if m["zone"] == "+00:00" else "offset"
        return f"timestamp[{m['sep']!r},{'micro' if m['frac'] else 'seconds'},{zone}]"
    return "text"


def _rows(payload: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = payload["data"]
    return rows


def _check(ours: Any, spec: Any, capture: Any | None, nullable: set[str], style: str, route: str) -> None:
    assert isinstance(ours, dict) and set(ours) == set(spec), f"{route}: envelope {set(ours)} != {set(spec)}"
    rows = _rows(ours)
    assert rows, f"{route}: the simulator returned no rows to compare"
    examples = _rows(spec) + (_rows(capture) if capture else [])
    expected_keys = set().union(*(r.keys() for r in examples))
    allowed: dict[str, set[str]] = {k: {json_type(r[k]) for r in examples if k in r} for k in expected_keys}
    reference: dict[str, str] = {}
    # The shape a string must have: the capture's in live style (newer and real), else the spec example's.
    sources = (_rows(capture) if capture and style == "live" else []) + _rows(spec)
    for r in reversed(sources):
        for k, v in r.items():
            if isinstance(v, str):
                reference[k] = shape(v)
    for row in rows:
        assert set(row) == expected_keys, f"{route}: keys differ: {set(row) ^ expected_keys}"
        for key, value in row.items():
            kinds = allowed[key]
            got = json_type(value)
            if kinds == {"null"} or (got == "null" and key in nullable):
                continue
            assert got in kinds - {"null"} or got in kinds, f"{route}.{key}: {got} not in {kinds}"
            if isinstance(value, str) and key in reference and reference[key] != "text":
                assert shape(value) == reference[key], f"{route}.{key}: {value!r} is not {reference[key]}"


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("style", ["live", "spec"])
def test_route_matches_the_vendor(
    uw: UWSim, vendor: Path, nullable: dict[str, set[str]], route: str, style: str
) -> None:
    spec_name, capture_name, path, params, api_path = ROUTES[route]
    uw.server.style = style  # type: ignore[assignment]
    response = uw.get(path, **params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    spec = _load(vendor, "spec-examples/rest", spec_name)
    capture = _load(vendor, "rest-captures-unverified", capture_name) if capture_name else None
    _check(response.json(), spec, capture, nullable[api_path], style, route)


def test_live_timestamps_follow_the_captures(uw: UWSim) -> None:
    alert = uw.data("/api/option-trades/flow-alerts", limit=1)[0]
    assert shape(alert["created_at"]) == shape("2025-10-22T20:27:01.354429Z")
    assert isinstance(alert["start_time"], int) and alert["start_time"] > 10**12  # epoch ms
    tide = uw.data("/api/market/market-tide")[0]["timestamp"]
    assert tide.endswith("-05:00")  # New York wall time (EST on 2024-03-05)
    uw.server.style = "spec"
    assert shape(uw.data("/api/option-trades/flow-alerts", limit=1)[0]["created_at"]) == shape(
        "2023-12-12 16:35:52.168490+00:00"
    )


def test_the_fabricated_in_outflow_capture_is_not_what_we_serve(uw: UWSim, vendor: Path) -> None:
    suspect = _load(vendor, "rest-captures-unverified", "SUSPECT_fabricated__etfs__in-outflow")
    spec = _load(vendor, "spec-examples/rest", "etfs__ticker__in-outflow")
    ours = uw.data("/api/etfs/SPY/in-outflow")
    assert not set(_rows(suspect)[0]) & set(ours[0]) - {"date"}
    with pytest.raises(AssertionError):
        _check({"data": ours}, suspect, None, set(), "live", "etf-in-outflow")
    _check({"data": ours}, spec, None, set(), "live", "etf-in-outflow")


def test_error_body_matches_the_spec_example(uw: UWSim, vendor: Path) -> None:
    spec = yaml.load((vendor / "unusual_whales" / "openapi.yaml").read_text(), Loader=yaml.CSafeLoader)
    example = spec["components"]["schemas"]["Error Message"]["example"]
    response = uw.get("/api/darkpool/MSFT12", date="2023-02-140")
    assert response.status_code == 422
    body = response.json()
    assert set(body) == set(example)
    assert {k: json_type(v) for k, v in body.items()} == {k: json_type(v) for k, v in example.items()}
    assert body["path"] == example["path"] and body["query"] == example["query"]
    assert body["msg"].startswith("Invalid path input: MSFT12 (valid example: AAPL)")
