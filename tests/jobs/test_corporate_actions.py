"""Corporate actions across records (duplicates, corrections) and split-aware derived features, as pure functions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ingestion.jobs.corporate_actions import reconcile
from ingestion.jobs.derived import DERIVED_COLUMNS, add_daily_features
from ingestion.polygon.actions import ACTION_COLUMNS, known_at

D = dt.date


def _split(action_id: str, ex: dt.date, ratio: float, symbol: str = "XYZ") -> dict[str, object]:
    return {"symbol": symbol, "event_timestamp": known_at(ex, None), "action_id": action_id, "kind": "split",
            "ex_date": ex, "split_from": 1.0, "split_to": ratio, "ratio": ratio}  # fmt: skip


def _dividend(action_id: str, ex: dt.date, cash: float, symbol: str = "XYZ") -> dict[str, object]:
    known = known_at(ex, ex - dt.timedelta(days=10))
    return {"symbol": symbol, "event_timestamp": known, "action_id": action_id, "kind": "dividend",
            "ex_date": ex, "cash_amount": cash, "currency": "USD", "dividend_type": "CD"}  # fmt: skip


def _actions(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in ACTION_COLUMNS} for r in rows], columns=list(ACTION_COLUMNS))


def test_duplicates_and_corrections_are_refused_stored_rows_win() -> None:
    stored = _actions(_split("s1", D(2024, 6, 10), 10))
    fetched = _actions(
        _split("s1", D(2024, 6, 10), 10),  # the stored record again: nothing to land
        _split("s2", D(2024, 6, 10), 10),  # same day, other id
        _split("s3", D(2024, 6, 17), 10),  # same ratio a week later: the vendor's duplicate
        _split("s4", D(2025, 1, 6), 2),  # a real later split
        _split("s4", D(2025, 1, 6), 2),  # the same id twice in one refresh
        _dividend("d1", D(2024, 8, 1), 0.5),
        _dividend("d2", D(2024, 8, 1), 0.5),  # same dividend under another id
    )
    result = reconcile(fetched, stored)
    assert sorted(result.new["action_id"]) == ["d1", "s4"]
    assert sorted(result.actions["action_id"]) == ["d1", "s1", "s4"]
    reasons = sorted(r.reason.split(":")[0] for r in result.rejected)
    assert reasons == [
        "duplicate dividend",
        "duplicate split",
        "duplicate split",
        "duplicate split id 's4' in one refresh",
    ]
    corrected = reconcile(_actions(_split("s1", D(2024, 6, 10), 4)), stored)
    assert corrected.new.empty and "vendor correction" in corrected.rejected[0].reason
    again = reconcile(_actions(_split("s1", D(2024, 6, 10), 10)), stored)
    assert again.new.empty and not again.rejected


def _bars(days: int = 60, split_at: int = 40, ratio: float = 10.0) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    sessions = pd.bdate_range("2024-03-01", periods=days + 5)
    sessions = [d for d in sessions if d.date() not in (D(2024, 3, 29), D(2024, 5, 27))][:days]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    raw = close.copy()
    raw[split_at:] /= ratio
    volume = rng.uniform(1e6, 2e6, days)
    volume[split_at:] *= ratio
    starts = pd.DatetimeIndex(sessions).tz_localize("America/New_York").tz_convert("UTC")
    return pd.DataFrame({"symbol": "XYZ", "window_start": starts, "open": raw * 0.999, "high": raw * 1.01,
                         "low": raw * 0.99, "close": raw, "volume": volume})  # fmt: skip


def test_split_aware_features_are_continuous_and_do_not_move_when_a_split_arrives() -> None:
    bars = _bars()
    ex = bars["window_start"].dt.tz_convert("America/New_York").dt.date.iloc[40]
    split = _actions(_split("s", ex, 10))
    before = add_daily_features(bars.iloc[:40], split)  # the split is known, its ex-date not reached yet
    after = add_daily_features(bars, split)
    pd.testing.assert_frame_equal(before[list(DERIVED_COLUMNS)], after.iloc[:40][list(DERIVED_COLUMNS)])
    unaware = add_daily_features(bars.iloc[:40])
    pd.testing.assert_frame_equal(unaware[list(DERIVED_COLUMNS)], before[list(DERIVED_COLUMNS)])
    c = bars["close"].to_numpy()
    assert after["return_1d"].iloc[40] == pytest.approx(c[40] * 10 / c[39] - 1)
    assert after["return_5d"].iloc[42] == pytest.approx(c[42] * 10 / c[37] - 1)
    assert abs(after["volume_zscore_20d"].iloc[40]) < 4 and after["realized_vol_20d"].max() < 0.5
    assert list(after["split_factor"].iloc[38:42]) == [1.0, 1.0, 10.0, 10.0]


def test_a_dividend_changes_total_return_and_nothing_else() -> None:
    bars = _bars(split_at=60)
    ex = bars["window_start"].dt.tz_convert("America/New_York").dt.date.iloc[30]
    plain = add_daily_features(bars)
    paid = add_daily_features(bars, _actions(_dividend("d", ex, 1.5)))
    others = [c for c in DERIVED_COLUMNS if c != "total_return_1d"]
    pd.testing.assert_frame_equal(plain[others], paid[others])
    diff = np.flatnonzero(~np.isclose(plain["total_return_1d"], paid["total_return_1d"], equal_nan=True))
    assert list(diff) == [30]
    c = bars["close"].to_numpy()
    assert paid["total_return_1d"].iloc[30] == pytest.approx((c[30] + 1.5) / c[29] - 1)
