"""Corporate-action pages parse to ``corporate_actions`` rows; impossible records are refused with their reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pandas as pd

from ingestion.datasets import CORPORATE_ACTIONS, CREATED_TS
from ingestion.polygon.actions import known_at, parse_dividends, parse_splits

CAPTURES = Path("/work/shared/vendor/polygon/rest-captures/v3/reference")
NY = "America/New_York"


def _page(*rows: object) -> bytes:
    return orjson.dumps({"status": "OK", "request_id": "r", "results": list(rows)})


def test_captures_parse_whole() -> None:
    splits = parse_splits((CAPTURES / "splits.json").read_bytes(), endpoint="splits")
    dividends = parse_dividends((CAPTURES / "dividends.json").read_bytes(), endpoint="dividends")
    for result in (splits, dividends):
        assert result.ok and not result.drift and len(result.frame) > 0
        assert list(result.frame.columns) == [c for c in CORPORATE_ACTIONS.column_names if c != CREATED_TS]
    amzn = splits.frame[splits.frame["symbol"] == "AMZN"].iloc[0]
    assert amzn["ratio"] == 20.0 and amzn["ex_date"] == dt.date(2022, 6, 6)
    # No id in the capture: one is made of the record, the same on every fetch.
    assert amzn["action_id"] == "split:AMZN:2022-06-06:1:20"
    assert (dividends.frame["kind"] == "dividend").all() and dividends.frame["cash_amount"].gt(0).all()


def test_knowledge_time_rule() -> None:
    # No declaration date: the ex-date's pre-market.
    assert known_at(dt.date(2024, 6, 10), None) == pd.Timestamp("2024-06-10 04:00", tz=NY)
    # Declared: the end of the declaration day.
    assert known_at(dt.date(2024, 2, 9), dt.date(2024, 1, 31)) == pd.Timestamp("2024-02-01 00:00", tz=NY)
    # Never after the ex-date's pre-market, whatever the vendor says about the declaration.
    assert known_at(dt.date(2024, 2, 9), dt.date(2024, 2, 12)) == pd.Timestamp("2024-02-09 04:00", tz=NY)


def test_impossible_records_are_refused_with_a_reason() -> None:
    good = {"id": "a", "ticker": "NVDA", "execution_date": "2024-06-10", "split_from": 1, "split_to": 10}
    page = _page(
        good,
        {**good, "id": "b", "split_from": 0},
        {**good, "id": "c", "split_to": -2},
        {**good, "id": "d", "execution_date": "2024-06-08"},
        {**good, "id": "e", "execution_date": "2024-07-04"},
        {**good, "id": "f", "execution_date": "June 10"},
        {"id": "g", "ticker": "NVDA", "split_from": 1, "split_to": 10},
        {**good, "id": "h", "split_to": 987654321},
    ).replace(b"987654321", b"1e400")  # beyond float64: decoded as inf
    result = parse_splits(page, endpoint="splits")
    assert list(result.frame["action_id"]) == ["a"]
    reasons = {r.payload["id"]: r.reason for r in result.rejected}
    assert "must be finite and above zero" in reasons["b"] and "must be finite and above zero" in reasons["c"]
    assert reasons["d"] == "execution_date 2024-06-08 is a Saturday, not an NYSE session"
    assert reasons["e"] == "execution_date 2024-07-04 is an NYSE holiday, not a session"
    assert "not a YYYY-MM-DD date" in reasons["f"]
    assert reasons["g"] == "missing required field 'execution_date'"
    assert "must be finite and above zero" in reasons["h"]
    assert all(r.dataset == "corporate_actions" and r.source == "polygon splits" for r in result.rejected)


def test_dividend_values_are_checked() -> None:
    good = {"id": "x", "ticker": "AAPL", "ex_dividend_date": "2024-02-09", "cash_amount": 0.24,
            "declaration_date": "2024-02-01", "currency": "USD", "dividend_type": "CD", "frequency": 4}  # fmt: skip
    result = parse_dividends(_page(good, {**good, "id": "y", "cash_amount": 0}, {**good, "id": "z",
                                      "ex_dividend_date": "2024-02-10"}), endpoint="dividends")  # fmt: skip
    assert list(result.frame["action_id"]) == ["x"]
    assert result.frame["event_timestamp"].iloc[0] == pd.Timestamp("2024-02-02 00:00", tz=NY)
    assert {r.payload["id"] for r in result.rejected} == {"y", "z"}
