"""The freshness rules on the NYSE calendar, without Redis: daily views across weekends and half days, quotes in and
out of hours, sparse and per-symbol views, explicit limits and their messages."""

from __future__ import annotations

import pandas as pd
import pytest

from ingestion import calendar
from ingestion.datasets import FEATURE_DATASETS
from ingestion.errors import ConfigError
from ingestion.ops.freshness_rules import (
    PUBLICATION_GRACE,
    default_rule,
    default_rules,
    human,
    judge_view,
    rule_with_limit,
)


def _at(text: str) -> float:
    """Epoch seconds of a New York wall-clock time."""
    return float(pd.Timestamp(text, tz=calendar.NEW_YORK).value / 1e9)


def _close(day: str) -> float:
    return float(calendar.session_close(day).value / 1e9)


def test_every_feature_view_has_a_rule() -> None:
    assert list(default_rules()) == [d.name for d in FEATURE_DATASETS]


def test_a_daily_view_is_fresh_with_the_last_closed_session_after_a_weekend_and_stale_a_session_later() -> None:
    rule = default_rule("ohlcv_daily")
    friday = {"AAPL": _close("2024-03-15")}
    monday_morning = judge_view(rule, friday, _at("2024-03-18 09:00"))
    assert monday_morning.ok and "2024-03-15 session" in monday_morning.text
    # Monday's close plus the publication grace has passed on Tuesday at 08:00: Friday's value is a session late.
    tuesday = judge_view(rule, friday, _at("2024-03-19 08:00"))
    assert not tuesday.ok and "expected the 2024-03-18 session" in tuesday.text
    assert _at("2024-03-19 08:00") - _close("2024-03-18") > PUBLICATION_GRACE


def test_a_half_day_closes_early_and_its_value_is_the_one_due() -> None:
    rule = default_rule("options_flow_daily")
    black_friday = _close("2024-11-29")  # 13:00 New York
    assert judge_view(rule, {"AAPL": black_friday}, _at("2024-11-30 12:00")).ok
    assert not judge_view(rule, {"AAPL": black_friday - 86400}, _at("2024-11-30 12:00")).ok


def test_quotes_are_judged_by_age_in_hours_and_against_the_last_close_outside() -> None:
    rule = default_rule("realtime_quotes")
    open_now = _at("2024-03-20 11:00")
    assert judge_view(rule, {"AAPL": open_now - 30}, open_now).ok
    stale = judge_view(rule, {"AAPL": open_now - 600}, open_now)
    assert not stale.ok and "10 min old (limit 2 min)" in stale.text
    evening = _at("2024-03-20 20:00")
    assert judge_view(rule, {"AAPL": _close("2024-03-20") - 30}, evening).ok
    noon_quote = judge_view(rule, {"AAPL": _at("2024-03-20 12:00")}, evening)
    assert not noon_quote.ok and "market closed" in noon_quote.text and "2024-03-20 close" in noon_quote.text


def test_views_a_symbol_may_lack_skip_it_with_a_reason_and_the_others_fail() -> None:
    now = _at("2024-03-20 11:00")
    etf = judge_view(default_rule("etf_flow_daily"), {"AAPL": None, "MSFT": None}, now)
    assert etf.ok and "skipped AAPL, MSFT" in etf.text and "ETF" in etf.text
    spy_stale = judge_view(default_rule("etf_flow_daily"), {"AAPL": None, "SPY": _close("2024-03-01")}, now)
    assert not spy_stale.ok and "SPY" in spy_stale.text
    insider = judge_view(default_rule("insider_activity"), {"AAPL": now - 40 * 86400, "SPY": None}, now)
    assert insider.ok and "960 h old" in insider.text and "skipped SPY" in insider.text
    bars = judge_view(default_rule("ohlcv_daily"), {"AAPL": None}, now)
    assert not bars.ok and "no online value for AAPL" in bars.text


def test_explicit_limits_say_their_units_and_unknown_views_are_one_line() -> None:
    assert [human(s) for s in (45, 120, 5400, 7200, 4 * 86400)] == ["45 s", "2 min", "90 min", "2 h", "96 h"]
    limit = rule_with_limit("realtime_quotes", 120.0)
    assert "limit 2 min" in judge_view(limit, {"AAPL": _at("2024-03-20 10:59")}, _at("2024-03-20 11:00")).text
    assert "limit 96 h" in judge_view(rule_with_limit("ohlcv_daily", 4 * 86400), {"A": 0.0}, 1e9).text
    with pytest.raises(ConfigError, match="'NOPE' is not a feature view: choose from ohlcv_daily"):
        rule_with_limit("NOPE", 60.0)
    with pytest.raises(ConfigError, match="positive"):
        rule_with_limit("ohlcv_daily", 0.0)
