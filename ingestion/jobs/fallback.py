"""Bars from Unusual Whales when Polygon is unavailable (breaker open, not entitled, failing after retries).

``/api/stock/{ticker}/ohlc/{candle_size}`` is a different product, and the differences are handled here rather than
hidden:

* **Prices are as traded** (not split-adjusted), the same basis as the Polygon bars the job stores
  (``adjusted=false``): rows carry ``adjusted=False`` and the derived features treat them alike, split-aware from
  the ``corporate_actions`` known at each bar, so a unit from the fallback beside one from Polygon is continuous.
* **Candle times**: minute candles carry ``start_time``/``end_time``; daily candles carry only a ``date``, stamped
  here like Polygon's (window start at New York midnight, event time from ``ohlcv_daily``'s publication rule).
* **Volume** is the candle's own ``volume`` (``total_volume`` is the day's running total and is not used). There
  is no vwap and no trade count: they are null, never invented.
* Every row records ``source="unusual_whales"`` (:data:`SOURCE`); with ``adjusted=False`` that names the basis
  too: candles as traded, never adjusted.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import ENTITY_KEY, EVENT_TS, OHLCV_DAILY, OHLCV_MINUTE
from ingestion.polygon.parse import BAR_COLUMNS
from ingestion.rejects import ParseResult, Rejected

if TYPE_CHECKING:
    from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

SOURCE = "unusual_whales"


def _standard(frame: pd.DataFrame, symbol: str, start: pd.Series, end: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            ENTITY_KEY: symbol,
            "window_start": pd.to_datetime(start, utc=True).dt.as_unit("us"),
            EVENT_TS: pd.to_datetime(end, utc=True).dt.as_unit("us"),
            **{c: frame[c].astype("float64").to_numpy() for c in ("open", "high", "low", "close")},
            "volume": frame["volume"].astype("float64").to_numpy(),
            "vwap": np.nan,
            "transactions": pd.array([pd.NA] * len(frame), dtype="Int64"),
            "otc": False,
            "adjusted": False,
            "source": SOURCE,
        }
    )
    return out.loc[:, list(BAR_COLUMNS)].sort_values("window_start").reset_index(drop=True)


def uw_bars(
    client: EnhancedUnusualWhalesClient, symbol: str, timespan: str, start: dt.date, end: dt.date
) -> ParseResult:
    """Bars of ``symbol`` for New York dates ``[start, end]`` in the standard frame, from Unusual Whales candles."""
    rejected: list[Rejected] = []
    if timespan == "day":
        years = end.year - start.year + 1
        parsed = client.fetch_ohlc(symbol, "1d", end_date=end, timeframe=f"{years}Y")
        rejected.extend(parsed.rejected)
        frame = parsed.frame
        days = pd.to_datetime(frame["date"].astype("string"))
        keep = ((days.dt.date >= start) & (days.dt.date <= end)).to_numpy()
        frame, days = frame[keep], days[keep]
        sessions = pd.DatetimeIndex(days)
        opens = sessions.tz_localize(calendar.NEW_YORK).tz_convert("UTC")
        # Published when Polygon's would be (the dataset's rule), so a fallback unit has the same knowledge time.
        published = publication.published_days(OHLCV_DAILY, pd.Series(sessions.date))
        return ParseResult(_standard(frame, symbol, pd.Series(opens), published), rejected)
    frames = []
    for day in calendar.sessions(start, end):
        parsed = client.fetch_ohlc(symbol, "1m", date=day.date())
        rejected.extend(parsed.rejected)
        frames.append(parsed.frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["start_time", "open"])
    if frame.empty:
        empty = pd.DataFrame({c: [] for c in ("open", "high", "low", "close", "volume")})
        return ParseResult(_standard(empty, symbol, pd.Series([], dtype=object), pd.Series([], dtype=object)), rejected)
    starts = pd.to_datetime(frame["start_time"], utc=True)
    ends_us = (starts + pd.Timedelta(minutes=1)).dt.as_unit("us").astype("int64").to_numpy()
    published = pd.Series(pd.to_datetime(publication.published_at(OHLCV_MINUTE, ends_us), unit="us", utc=True))
    return ParseResult(_standard(frame, symbol, starts, published), rejected)
