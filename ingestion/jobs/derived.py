"""Derived daily-bar features, computed only from what was knowable at each row's event time.

Each row of ``ohlcv_daily`` is stamped at its session close. Everything here uses that session's bar and earlier
bars of the same symbol, never a later one: rolling windows end at the current row, and statistics that compare a
value with its own history (the volume z-score) use the *previous* sessions only. A test changes future rows and
checks that no past value moves.

Warm-up: the 20-session features need 20 earlier sessions. A backfill therefore reads :data:`WARMUP_SESSIONS`
sessions before the requested range, computes, and keeps only the requested rows; so a row's values never depend on
where a chunk happened to start, and re-running a chunk writes identical values.

Corporate actions: bars are as traded, so a 10:1 split divides the raw close by ten overnight. Every feature is
computed on a split-continuous basis instead: ``split_factor`` (the product of the ratios of the splits with ex-date
on or before the bar, known at the bar; :func:`~ingestion.jobs.corporate_actions.bar_adjustments`) multiplies prices
and divides volumes. Features only ever compare a bar with earlier bars through a *ratio* of factors, which involves
only splits between the two bars, all known by the later one: so a split is not a -90% return, the values do not
depend on which older splits are known, and a split announced later changes nothing already computed.
``total_return_1d`` also adds the cash dividends going ex on the bar's session, reinvested at nothing (a holder's
one-day gain: price move plus cash).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion import calendar
from ingestion.datasets import ENTITY_KEY, EVENT_TS
from ingestion.jobs.corporate_actions import bar_adjustments

WARMUP_SESSIONS = 30
_TRADING_DAYS = 252
DERIVED_COLUMNS: tuple[str, ...] = (
    "return_1d",
    "return_5d",
    "return_20d",
    "realized_vol_20d",
    "volume_zscore_20d",
    "gap_pct",
    "range_pct",
    "total_return_1d",
    "split_factor",
)


def add_daily_features(bars: pd.DataFrame, actions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return ``bars`` with the derived columns of ``ohlcv_daily`` filled in.

    ``bars`` holds one row per symbol and session with ``open, high, low, close, volume, window_start`` (prices as
    traded; ``event_timestamp`` when known, else each session's close); rows of a symbol must be consecutive
    sessions (a missing session would make "5 sessions ago" wrong, so the caller's gap report flags it). ``actions``
    are ``corporate_actions`` rows (None: no split, no dividend). Output rows keep the input order.
    """
    out = bars.copy()
    # Work on positions, so a caller's duplicate or unordered index cannot misalign the result.
    positional = out.reset_index(drop=True)
    ordered = positional.sort_values([ENTITY_KEY, "window_start"], kind="stable")
    days = list(ordered["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date)
    if EVENT_TS in ordered:
        times = ordered[EVENT_TS].to_numpy()
    else:
        times = pd.to_datetime(calendar.session_closes(days)).tz_localize("UTC").to_numpy()
    adjust = bar_adjustments(actions, ordered[ENTITY_KEY].to_numpy(), days, times)
    factor = pd.Series(adjust.split_factor, index=ordered.index)
    symbols = ordered[ENTITY_KEY]
    # Split-continuous prices and volumes: only ratios of them between bars of one symbol are ever used.
    close = ordered["close"] * factor
    grouped = close.groupby(symbols, sort=False)
    prev_close = grouped.shift(1)
    ret_1d = close / prev_close - 1.0
    log_ret = np.log(close / prev_close)
    volume = ordered["volume"] / factor
    # The z-score compares today's volume with the 20 sessions *before* today.
    prior_volume = volume.groupby(symbols, sort=False).shift(1)
    prior_stats = prior_volume.groupby(symbols, sort=False).rolling(20, min_periods=20)
    prior_mean = prior_stats.mean().reset_index(level=0, drop=True)
    prior_std = prior_stats.std().reset_index(level=0, drop=True)
    vol_20 = log_ret.groupby(symbols, sort=False).rolling(20, min_periods=20).std().reset_index(level=0, drop=True)
    cash = pd.Series(adjust.dividend, index=ordered.index) * factor
    derived = pd.DataFrame(
        {
            "return_1d": ret_1d,
            "return_5d": close / grouped.shift(5) - 1.0,
            "return_20d": close / grouped.shift(20) - 1.0,
            "realized_vol_20d": vol_20 * np.sqrt(_TRADING_DAYS),
            "volume_zscore_20d": (volume - prior_mean) / prior_std.where(prior_std > 0),
            "gap_pct": ordered["open"] * factor / prev_close - 1.0,
            "range_pct": (ordered["high"] - ordered["low"]) / ordered["close"],
            "total_return_1d": (close + cash) / prev_close - 1.0,
            "split_factor": factor,
        },
        index=ordered.index,
    )
    for column in DERIVED_COLUMNS:
        out[column] = derived[column].sort_index().to_numpy(dtype="float64")
    return out
