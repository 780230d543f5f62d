"""Derived daily-bar features, computed only from what was knowable at each row's event time.

Each row of ``ohlcv_daily`` is stamped at its session close. Everything here uses that session's bar and earlier
bars of the same symbol, never a later one: rolling windows end at the current row, and statistics that compare a
value with its own history (the volume z-score) use the *previous* sessions only. A test changes future rows and
checks that no past value moves.

Warm-up: the 20-session features need 20 earlier sessions. A backfill therefore reads :data:`WARMUP_SESSIONS`
sessions before the requested range, computes, and keeps only the requested rows; so a row's values never depend on
where a chunk happened to start, and re-running a chunk writes identical values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion.datasets import ENTITY_KEY

WARMUP_SESSIONS = 30
_TRADING_DAYS = 252


def add_daily_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with the derived columns of ``ohlcv_daily`` filled in.

    ``bars`` holds one row per symbol and session with ``open, high, low, close, volume, window_start``; rows of a
    symbol must be consecutive sessions (a missing session would make "5 sessions ago" wrong, so the caller's gap
    report flags it). Output rows keep the input order.
    """
    out = bars.copy()
    # Work on positions, so a caller's duplicate or unordered index cannot misalign the result.
    positional = out.reset_index(drop=True)
    ordered = positional.sort_values([ENTITY_KEY, "window_start"], kind="stable")
    grouped = ordered.groupby(ENTITY_KEY, sort=False)
    close = ordered["close"]
    prev_close = grouped["close"].shift(1)
    log_ret = np.log(close / prev_close)
    volume = ordered["volume"]
    # The z-score compares today's volume with the 20 sessions *before* today.
    prior_volume = grouped["volume"].shift(1)
    prior_stats = prior_volume.groupby(ordered[ENTITY_KEY], sort=False).rolling(20, min_periods=20)
    prior_mean = prior_stats.mean().reset_index(level=0, drop=True)
    prior_std = prior_stats.std().reset_index(level=0, drop=True)
    vol_20 = (
        log_ret.groupby(ordered[ENTITY_KEY], sort=False)
        .rolling(20, min_periods=20)
        .std()
        .reset_index(level=0, drop=True)
    )
    derived = pd.DataFrame(
        {
            "return_1d": close / prev_close - 1.0,
            "return_5d": close / grouped["close"].shift(5) - 1.0,
            "return_20d": close / grouped["close"].shift(20) - 1.0,
            "realized_vol_20d": vol_20 * np.sqrt(_TRADING_DAYS),
            "volume_zscore_20d": (volume - prior_mean) / prior_std.where(prior_std > 0),
            "gap_pct": ordered["open"] / prev_close - 1.0,
            "range_pct": (ordered["high"] - ordered["low"]) / close,
        },
        index=ordered.index,
    )
    for column in derived.columns:
        out[column] = derived[column].sort_index().to_numpy(dtype="float64")
    return out
