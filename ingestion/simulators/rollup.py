"""The simulators' one OHLC roll-up: bars (or trades) into coarser bars, the same arithmetic for every vendor.

Daily bars from minutes (the ground truth), Polygon's second bars from trades and its custom-timespan aggregates,
its WebSocket ``A``/``AM`` events, and Unusual Whales' candles all roll up the same way, so they agree with each
other by construction: first open, max high, min low, last close, summed volume and trade count, and a vwap
weighted by volume and rounded to 4 decimals as Polygon sends it.

Lives with the simulators, not the clients: the simulators share only datasets and the calendar with the code they
test, so a roll-up bug cannot hide by being the same on both sides.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

VWAP_DECIMALS = 4


def trades_as_bars(price: npt.ArrayLike, size: npt.ArrayLike) -> pd.DataFrame:
    """Trades as one-trade bars (open = high = low = close = vwap = price, volume = size), ready for :func:`roll_up`."""
    p = np.asarray(price, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    return pd.DataFrame(
        {
            "open": p, "high": p, "low": p, "close": p, "volume": s, "vwap": p,
            "transactions": np.ones(len(p), dtype=np.int64),
        }
    )  # fmt: skip


def roll_up(bars: pd.DataFrame, key: pd.Series | npt.ArrayLike, *, notional: bool = False) -> pd.DataFrame:
    """One bar per distinct ``key`` (ascending; the result's index is the key) from ``bars`` in time order.

    ``bars`` has ``open``, ``high``, ``low``, ``close`` and ``volume``; with ``vwap`` the result has the
    volume-weighted ``vwap`` (4 decimals), with ``transactions`` their sum. ``notional=True`` adds the unrounded
    ``notional`` (sum of vwap x volume), for running day totals. Dtypes of volume and count are kept.
    """
    has_vwap = "vwap" in bars.columns
    frame = bars.assign(_notional=bars["vwap"] * bars["volume"]) if has_vwap else bars
    g = frame.groupby(key.to_numpy() if isinstance(key, pd.Series) else np.asarray(key), sort=True)
    out = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
        }
    )
    if has_vwap:
        total = g["_notional"].sum()
        out["vwap"] = np.round(total / out["volume"], VWAP_DECIMALS)
        if notional:
            out["notional"] = total
    if "transactions" in bars.columns:
        out["transactions"] = g["transactions"].sum().astype(np.int64)
    if isinstance(key, pd.Series):
        out.index.name = key.name
    return out
