"""One bad row never kills a job: values no parser can hold (a bar in the year 9999, ``1e309``, a negative premium or
price) are quarantined with their reason, at the parsers, and the rest of the page is kept.

The end-to-end case runs the real ``backfill ohlcv`` command against a loopback Polygon simulator whose fault plan
rewrites one bar's ``t`` to the year 9999: before the fix that bar raised ``OutOfBoundsDatetime`` and ended the
backfill in a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pandas as pd
import pytest
from fixtures.chaos import drift_where
from fixtures.simulators import MakePolygonRest

from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY
from ingestion.polygon.parse import parse_aggs, parse_grouped_daily
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store.offline import read_dataset
from ingestion.store.quarantine import Quarantine
from ingestion.unusual_whales.parse import (
    FLOW_ALERTS,
    parse_dark_pool,
    parse_flow_alerts,
    parse_ohlc,
    parse_options_volume,
)

YEAR_9999_MS = 253_402_214_400_000  # 9999-12-31T00:00Z
OUT_OF_RANGE = "t outside 1970-01-01..2099-12-31"


def _ny_midnight_ms(day: str) -> int:
    return int(pd.Timestamp(day).tz_localize("America/New_York").value // 1_000_000)


def _bar(t: int, **fields: Any) -> dict[str, Any]:
    return {"o": 10.0, "h": 11.0, "l": 9.5, "c": 10.5, "v": 1000.0, "vw": 10.2, "n": 12, "t": t, **fields}


def _page(*bars: dict[str, Any]) -> bytes:
    return orjson.dumps({"ticker": "AAPL", "status": "OK", "request_id": "r1", "results": list(bars)})


@pytest.mark.parametrize("timespan", ["day", "minute"])
def test_a_year_9999_bar_is_quarantined_and_the_page_kept(timespan: str) -> None:
    first = _ny_midnight_ms("2024-01-02") + 15 * 3_600_000
    step = 86_400_000 if timespan == "day" else 60_000
    body = _page(_bar(first), _bar(YEAR_9999_MS), _bar(first + step), _bar(-1))
    result = parse_aggs(body, symbol="AAPL", timespan=timespan, multiplier=1, adjusted=True, endpoint="/v2/aggs")
    assert len(result.frame) == 2
    assert result.frame["window_start"].min() >= pd.Timestamp("2024-01-01", tz="UTC")
    assert [(r.reason, r.payload["t"]) for r in result.rejected] == [(OUT_OF_RANGE, YEAR_9999_MS), (OUT_OF_RANGE, -1)]


def test_grouped_daily_year_9999_row_is_quarantined() -> None:
    good = {**_bar(_ny_midnight_ms("2024-01-03") - 3_600_000), "T": "AAPL"}
    bad = {**_bar(YEAR_9999_MS), "T": "MSFT"}
    body = orjson.dumps({"status": "OK", "request_id": "g", "results": [good, bad]})
    result = parse_grouped_daily(body, adjusted=True, endpoint="/v2/aggs/grouped")
    assert result.frame["symbol"].tolist() == ["AAPL"]
    assert [r.reason for r in result.rejected] == [OUT_OF_RANGE]


def test_overflowing_and_negative_bar_values_are_quarantined_not_the_page() -> None:
    t = _ny_midnight_ms("2024-01-02")
    good = orjson.dumps(_bar(t + 86_400_000)).decode()
    # 1e309 is valid JSON that no float64 holds: orjson refuses the whole page for it.
    overflow = '{"o":1e309,"h":11.0,"l":9.5,"c":10.5,"v":1000.0,"t":' + str(t) + "}"
    negative = orjson.dumps(_bar(t + 2 * 86_400_000, o=-1.0, l=-2.0, c=-1.5, h=-0.5)).decode()
    bad_vwap = orjson.dumps(_bar(t + 3 * 86_400_000, vw=-3.0)).decode()
    rows = ",".join((good, overflow, negative, bad_vwap))
    body = '{"ticker":"AAPL","status":"OK","results":[' + rows + "]}"
    result = parse_aggs(body, symbol="AAPL", timespan="day", multiplier=1, adjusted=True, endpoint="/v2/aggs")
    assert len(result.frame) == 1
    assert [r.reason for r in result.rejected] == ["non-finite value", "negative price", "negative price"]


def test_backfill_finishes_with_the_year_9999_bar_in_quarantine(
    make_polygon_rest: MakePolygonRest, make_applied_repo: Callable[[], Settings]
) -> None:
    s = make_applied_repo()
    sim = make_polygon_rest()
    target = _ny_midnight_ms("2024-01-10")
    sim.faults.add(
        Fault.drift(drift_where(lambda r: r.get("t") == target, lambda r: {**r, "t": YEAR_9999_MS}), routes="aggs")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.update(
        {
            "POLYGON_API_KEY": POLYGON_SIM_KEY,
            "POLYGON_BASE_URL": sim.url,
            "FEAST_DATA_DIR": str(s.data_dir),
            "FEAST_REPO_PATH": str(s.repo_path),
            "REDIS_URL": s.redis_url or "",
        }
    )
    args = ["backfill", "ohlcv", "--symbols", "AAPL", "--from", "2024-01-02", "--to", "2024-01-31", "--timespan", "day"]
    done = subprocess.run(
        [sys.executable, "-m", "ingestion", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert sim.faults.total("drift") >= 1
    stored = read_dataset(s.data_dir, OHLCV_DAILY, ["AAPL"])
    days = set(stored["window_start"].dt.tz_convert("America/New_York").dt.date.astype(str))
    assert "2024-01-09" in days and "2024-01-11" in days and "2024-01-10" not in days
    quarantined = Quarantine(s.data_dir).read()
    rows = quarantined[quarantined["reason"] == OUT_OF_RANGE]
    assert len(rows) == 1
    assert orjson.loads(rows["payload"].iloc[0])["t"] == YEAR_9999_MS


def _alert(**fields: Any) -> dict[str, Any]:
    row = {
        "id": "a1",
        "ticker": "MSFT",
        "option_chain": "MSFT231222C00375000",
        "type": "call",
        "created_at": "2023-12-12T16:35:52Z",
        "total_premium": "186705",
        "price": "4.05",
        "volume": 2442,
        **fields,
    }
    return {k: v for k, v in row.items() if v is not None}


def test_unusual_whales_overflow_and_negative_values_are_quarantined_with_reasons() -> None:
    rows = [
        _alert(id="good"),
        _alert(id="overflow", total_premium="1e309"),
        _alert(id="negative-premium", total_premium="-5000"),
        _alert(id="negative-price", price="-4.05"),
        _alert(id="negative-volume", volume=-1),
        _alert(id="year-9999", created_at="9999-12-31T00:00:00Z"),
    ]
    result = parse_flow_alerts({"data": rows}, endpoint=FLOW_ALERTS)
    assert result.frame["id"].tolist() == ["good"]
    reasons = {r.payload["id"]: r.reason for r in result.rejected}
    expected = {
        "overflow": "field 'total_premium': '1e309' is not a finite number",
        "negative-premium": "field 'total_premium': -5000.0 is negative",
        "negative-price": "field 'price': -4.05 is negative",
        "negative-volume": "field 'volume': -1 is negative",
        "year-9999": "field 'created_at': 9999-12-31T00:00:00+00:00 is outside 1970-01-01..2099-12-31",
    }
    # A required field whose value is refused is also named as missing; the value's own reason follows.
    assert reasons.keys() == expected.keys()
    assert all(expected[k] in reasons[k] for k in expected), reasons


def test_unusual_whales_json_number_beyond_float64_costs_only_its_row() -> None:
    # On the WebSocket (and in drifted REST) money arrives as a JSON number; 1e309 overflows float64.
    good = orjson.dumps(_alert(id="good")).decode()
    body = '{"data":[' + good + ',{"id":"big","ticker":"MSFT","option_chain":"MSFT231222C00375000","type":"call",'
    body += '"created_at":"2023-12-12T16:35:52Z","total_premium":1e309}]}'
    result = parse_flow_alerts(body.encode(), endpoint=FLOW_ALERTS)
    assert result.frame["id"].tolist() == ["good"]
    assert len(result.rejected) == 1
    assert "field 'total_premium': inf is not a finite number" in result.rejected[0].reason


def test_unusual_whales_negative_prices_and_premiums_in_other_records() -> None:
    candle = {"open": "1", "high": "2", "low": "-1", "close": "1.5", "date": "2024-01-02", "volume": 5}
    ohlc = parse_ohlc({"data": [candle]}, endpoint="/api/stock/AAPL/ohlc/1d")
    assert [r.reason for r in ohlc.rejected] == ["missing required field(s): low; field 'low': -1.0 is negative"]
    volume = {"date": "2024-01-02", "call_premium": "-10", "net_call_premium": "-10"}
    options = parse_options_volume({"data": [volume]}, endpoint="/api/stock/AAPL/options-volume")
    # A net premium may be negative; a premium may not.
    assert [r.reason for r in options.rejected] == ["field 'call_premium': -10.0 is negative"]
    dark = {"ticker": "AAPL", "executed_at": "2024-01-02T15:00:00Z", "price": "10", "size": 5, "premium": "-50"}
    prints = parse_dark_pool({"data": [dark]}, endpoint="/api/darkpool/AAPL")
    assert [r.reason for r in prints.rejected] == ["field 'premium': -50.0 is negative"]
