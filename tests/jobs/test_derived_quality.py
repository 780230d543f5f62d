"""Derived daily features use no future row; quality checks reject, de-duplicate and report gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.jobs.derived import add_daily_features
from ingestion.jobs.quality import check_bars, minute_gaps
from ingestion.simulators.market import Market


def _daily(symbol: str = "MSFT", start: str = "2023-01-01", end: str = "2023-06-30") -> pd.DataFrame:
    raw = Market().daily_bars(symbol, start, end)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "window_start": pd.to_datetime(raw["window_start_ms"], unit="ms", utc=True),
            **{k: raw[k] for k in ("open", "high", "low", "close", "volume", "vwap")},
        }
    )


def test_returns_and_gap_by_hand() -> None:
    bars = _daily().head(30)
    out = add_daily_features(bars)
    c, o = bars["close"].to_numpy(), bars["open"].to_numpy()
    assert np.isnan(out["return_1d"].iloc[0])
    assert out["return_1d"].iloc[1] == pytest.approx(c[1] / c[0] - 1)
    assert out["return_5d"].iloc[7] == pytest.approx(c[7] / c[2] - 1)
    assert out["return_20d"].iloc[25] == pytest.approx(c[25] / c[5] - 1)
    assert out["gap_pct"].iloc[3] == pytest.approx(o[3] / c[2] - 1)
    logs = np.log(c[1:21] / c[0:20])
    assert out["realized_vol_20d"].iloc[20] == pytest.approx(np.std(logs, ddof=1) * np.sqrt(252))
    assert np.isnan(out["realized_vol_20d"].iloc[19])
    v = bars["volume"].to_numpy()
    prior = v[0:20]
    assert out["volume_zscore_20d"].iloc[20] == pytest.approx((v[20] - prior.mean()) / prior.std(ddof=1))


def test_no_lookahead_future_rows_do_not_move_past_values() -> None:
    bars = _daily()
    base = add_daily_features(bars)
    cut = 60
    shocked = bars.copy()
    shocked.loc[cut:, ["open", "high", "low", "close"]] *= 3.0
    shocked.loc[cut:, "volume"] *= 10.0
    after = add_daily_features(shocked)
    cols = ["return_1d", "return_5d", "return_20d", "realized_vol_20d", "volume_zscore_20d", "gap_pct", "range_pct"]
    pd.testing.assert_frame_equal(base.loc[: cut - 1, cols], after.loc[: cut - 1, cols])
    assert not np.isclose(base.loc[cut, "return_1d"], after.loc[cut, "return_1d"])
    # Truncating history after the cut gives the same past values too.
    truncated = add_daily_features(bars.loc[: cut - 1])
    pd.testing.assert_frame_equal(base.loc[: cut - 1, cols], truncated[cols])


def test_symbols_do_not_mix_and_order_is_kept() -> None:
    both = pd.concat([_daily("AAPL").head(10), _daily("MSFT").head(10)]).sample(frac=1.0, random_state=1)
    out = add_daily_features(both)
    assert list(out.index) == list(both.index)
    first_rows = out.sort_values("window_start").groupby("symbol").head(1)
    assert first_rows["return_1d"].isna().all()


def test_check_bars_rejects_with_reasons_and_dedupes() -> None:
    bars = _daily().head(6).reset_index(drop=True)
    bars.loc[1, "high"] = bars.loc[1, "low"] - 1  # high below open/close
    bars.loc[2, "volume"] = -5
    bars.loc[3, "close"] = 0
    dup = bars.iloc[[4]]
    good, rejected, report = check_bars(pd.concat([bars, dup]), dataset="ohlcv_daily", source="polygon aggs")
    assert len(good) == 3 and len(rejected) == 3
    assert len(good) + len(rejected) + report.duplicates == 7
    assert {r.reason.split(":")[0] for r in rejected} == {
        "high_below_open_or_close",
        "negative_volume",
        "price_not_positive",
    }
    assert report.duplicates == 1
    assert good["window_start"].is_monotonic_increasing


def test_minute_gaps_reported_not_filled() -> None:
    m = Market()
    raw = m.minute_bars("AAPL", "2024-11-29")
    bars = pd.DataFrame(
        {"symbol": "AAPL", "window_start": pd.to_datetime(raw["window_start_ms"], unit="ms", utc=True)}
    ).drop(index=[5, 6, 7])
    gaps = minute_gaps(bars, "2024-11-29", "2024-11-29")
    # Half day: 210 regular minutes; the market's own no-trade minutes plus the three dropped ones are missing.
    assert gaps[("AAPL", "2024-11-29")] == 210 - len(raw) + 3
    both_days = minute_gaps(bars, "2024-11-27", "2024-11-29")
    assert both_days[("AAPL", "2024-11-27")] == 390
