"""Daily feature rows from parsed Unusual Whales frames: ``options_flow_daily``, ``dark_pool_daily``,
``insider_activity`` and ``etf_flow_daily`` (columns, order and dtypes from :mod:`ingestion.datasets`).

Event time is when a value became knowable, never earlier:

* Daily aggregates are stamped with the **session close** of their trading day (UTC; 16:00 New York, or the early
  close on a half day).
* An intraday record (flow alert by ``created_at``, dark-pool print by ``executed_at``) belongs to the trading day of
  the **first session close at or after** its instant. A record from before the open or during the session belongs to
  that day. One from after the close (a 17:00 New York alert, an 18:30 extended-hours print), a weekend or a holiday
  rolls **forward** to the next session. Counting the 17:00 alert in the same day's row would put it in a value
  stamped 16:00, an hour before it existed: a training row at 16:30 would see the future. Rolling forward makes it
  visible at the next close, when it is known. It is never rolled backwards.
* A dated record (options volume, ETF flow) belongs to its own date, which must be a session: a daily row dated on a
  weekend or holiday has no close to be stamped with, so ``ValueError`` names it rather than inventing one (rolling
  it forward would silently merge it into the next day's genuine row).
* Insider rows are stamped with the **filing** instant (``filed_at`` from the parser), one row per symbol and filing
  instant. Trailing windows cover filings made after ``T - N days`` and at or before ``T``, so a row never counts a
  filing published after it.

``created_timestamp`` is the ``now`` the caller passes (the write time), so a test or a replay is reproducible.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion import calendar
from ingestion.datasets import (
    CREATED_TS,
    DARK_POOL_DAILY,
    ENTITY_KEY,
    ETF_FLOW_DAILY,
    EVENT_TS,
    INSIDER_ACTIVITY,
    OPTIONS_FLOW_DAILY,
    Dataset,
)
from ingestion.unusual_whales.timestamps import UTC_DTYPE, new_york_date

KEY: Final = [ENTITY_KEY, "date"]
# The longest NYSE closure since 1900 that a backfill could meet lasted four sessions (September 2001); ten calendar
# days of sessions always hold the next close.
_LOOKAHEAD_DAYS: Final = 10


# ------------------------------------------------------------------------------------------------------ sessions


def trading_day_of(instants: pd.Series) -> pd.Series:
    """For each UTC instant, the trading day (``date32``) whose close is the first at or after it.

    Raises ``ValueError`` on a missing instant: a record with no time has no day, and guessing one would be inventing.
    """
    values = pd.Series(instants, dtype=UTC_DTYPE)
    if values.isna().any():
        raise ValueError("cannot assign a trading day to a missing timestamp")
    if values.empty:
        return pd.Series([], dtype=pd.ArrowDtype(pa.date32()), index=values.index)
    first = new_york_date(values.min())
    last = new_york_date(values.max()) + dt.timedelta(days=_LOOKAHEAD_DAYS)
    days = calendar.sessions(first, last)
    closes = calendar.session_closes(days)
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    idx = np.searchsorted(closes, naive, side="left")
    if (idx >= len(days)).any():
        raise ValueError(f"no NYSE session close known after {values.max()}")
    return pd.Series([d.date() for d in days[idx]], dtype=pd.ArrowDtype(pa.date32()), index=values.index)


def _dates(dates: pd.Series) -> pd.Series:
    return pd.Series(list(dates), dtype=pd.ArrowDtype(pa.date32()), index=dates.index)


def _closes(days: pd.Series) -> pd.Series:
    closes = calendar.session_closes(list(days)) if len(days) else np.array([], dtype="datetime64[us]")
    return pd.Series(closes, index=days.index).dt.tz_localize("UTC").astype(UTC_DTYPE)


# ----------------------------------------------------------------------------------------------------- conformance


def _pandas_dtype(arrow: pa.DataType) -> object:
    if pa.types.is_string(arrow):
        return "string"
    if pa.types.is_timestamp(arrow):
        return UTC_DTYPE
    if pa.types.is_date32(arrow):
        return pd.ArrowDtype(pa.date32())
    if pa.types.is_int64(arrow):
        return "Int64"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_float64(arrow):
        return "float64"
    raise TypeError(f"no pandas dtype for {arrow}")  # pragma: no cover - datasets use only the types above


def _utc_now(now: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(now)
    if ts.tzinfo is None:
        raise ValueError("now must be time-zone aware (UTC)")
    return ts.tz_convert("UTC").as_unit("us")


def _conform(frame: pd.DataFrame, dataset: Dataset, now: dt.datetime | pd.Timestamp) -> pd.DataFrame:
    """The dataset's columns in order and dtype (``pa.Table.from_pandas`` yields ``dataset.arrow_schema()``)."""
    frame = frame.assign(**{CREATED_TS: _utc_now(now)})
    if EVENT_TS not in frame:
        frame[EVENT_TS] = _closes(frame["date"])
    out = pd.DataFrame(
        {c.name: frame[c.name].astype(_pandas_dtype(c.dtype)) for c in dataset.columns},
        index=frame.index,
    )
    return out.sort_values([ENTITY_KEY, EVENT_TS], kind="stable").reset_index(drop=True)


def _empty(dataset: Dataset) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series([], dtype=_pandas_dtype(c.dtype)) for c in dataset.columns})


# ---------------------------------------------------------------------------------------------------- options flow


def options_flow_daily(
    alerts: pd.DataFrame | None,
    volume: pd.DataFrame | None = None,
    *,
    now: dt.datetime | pd.Timestamp,
) -> pd.DataFrame:
    """``options_flow_daily`` rows from parsed flow alerts and options-volume rows, one per symbol and trading day.

    ``alerts``: a :func:`~ingestion.unusual_whales.parse.parse_flow_alerts` frame (``id``, ``symbol``, ``type``,
    ``created_at``, ``total_premium``, ``has_sweep``); duplicates by ``id`` count once, so overlapping polls are safe.
    ``volume``: a :func:`~ingestion.unusual_whales.parse.parse_options_volume` frame (``symbol``, ``date``, premiums,
    volumes). A day present in only one input has the other's columns null: the inputs cannot tell "none" from "not
    fetched". ``put_call_premium_ratio`` is null when call premium is zero.
    """
    parts: list[pd.DataFrame] = []
    if alerts is not None and not alerts.empty:
        parts.append(_alert_days(alerts))
    if volume is not None and not volume.empty:
        parts.append(_volume_days(volume))
    if not parts:
        return _empty(OPTIONS_FLOW_DAILY)
    merged = parts[0] if len(parts) == 1 else parts[0].merge(parts[1], how="outer", on=KEY)
    for column in OPTIONS_FLOW_DAILY.column_names:
        if column not in merged and column not in (EVENT_TS, CREATED_TS):
            merged[column] = None
    call = merged["call_premium"].astype("float64")
    merged["put_call_premium_ratio"] = (merged["put_premium"].astype("float64") / call).where(call > 0)
    return _conform(merged, OPTIONS_FLOW_DAILY, now)


def _alert_days(alerts: pd.DataFrame) -> pd.DataFrame:
    alerts = alerts.drop_duplicates("id", keep="last") if "id" in alerts else alerts
    premium = alerts["total_premium"].astype("float64")
    kind = alerts["type"].astype("string")
    frame = pd.DataFrame(
        {
            ENTITY_KEY: alerts["symbol"].astype("string"),
            "date": trading_day_of(alerts["created_at"]),
            "call_premium": premium.where(kind == "call", 0.0),
            "put_premium": premium.where(kind == "put", 0.0),
            "sweep": alerts["has_sweep"].astype("boolean").fillna(False).astype("int64"),
            "premium": premium,
        }
    )
    days = frame.groupby(KEY, as_index=False, observed=True).agg(
        call_premium=("call_premium", "sum"),
        put_premium=("put_premium", "sum"),
        sweep_count=("sweep", "sum"),
        alert_count=("premium", "size"),
        total_premium=("premium", "sum"),
    )
    days["avg_alert_premium"] = days["total_premium"] / days["alert_count"]
    return days.drop(columns="total_premium")


def _volume_days(volume: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            ENTITY_KEY: volume["symbol"].astype("string"),
            "date": _dates(volume["date"]),
            **{c: volume[c] for c in ("bullish_premium", "bearish_premium", "call_volume", "put_volume")},
        }
    )
    # A re-fetched day replaces the earlier fetch: the later row holds the more complete count.
    return frame.drop_duplicates(KEY, keep="last")


# ------------------------------------------------------------------------------------------------------- dark pool


def dark_pool_daily(
    prints: pd.DataFrame,
    *,
    consolidated_volume: pd.DataFrame | None = None,
    now: dt.datetime | pd.Timestamp,
) -> pd.DataFrame:
    """``dark_pool_daily`` rows from parsed dark-pool prints (:func:`~ingestion.unusual_whales.parse.parse_dark_pool`).

    Prints flagged ``canceled`` are excluded (an unknown flag counts as not canceled). Rows identical in every column
    are one print fetched twice (``/darkpool/recent`` and ``/darkpool/{ticker}`` overlap); distinct prints differ at
    least in the stock's running day ``volume``. ``consolidated_volume`` has ``symbol``, ``date`` and ``volume`` (the
    session's consolidated shares, e.g. Polygon's daily bar); ``dp_share_of_volume`` is null where it is missing or 0.
    An after-hours print rolls to the next session (module doc), so its share is taken of that session's volume.
    """
    prints = prints.drop_duplicates()
    canceled = prints["canceled"].astype("boolean").fillna(False).astype(bool)
    live = prints[~canceled.to_numpy()]
    if live.empty:
        return _empty(DARK_POOL_DAILY)
    size = live["size"].astype("float64")
    price = live["price"].astype("float64")
    notional = live["premium"].astype("float64").fillna(price * size)
    frame = pd.DataFrame(
        {
            ENTITY_KEY: live["symbol"].astype("string"),
            "date": trading_day_of(live["executed_at"]),
            "size": size,
            "notional": notional,
            "price_size": price * size,
        }
    )
    days = frame.groupby(KEY, as_index=False, observed=True).agg(
        dp_volume=("size", "sum"),
        dp_notional=("notional", "sum"),
        dp_trade_count=("size", "size"),
        price_size=("price_size", "sum"),
        dp_largest_notional=("notional", "max"),
    )
    days["dp_vwap"] = days["price_size"] / days["dp_volume"]
    days["dp_share_of_volume"] = _share(days, consolidated_volume)
    return _conform(days, DARK_POOL_DAILY, now)


def _share(days: pd.DataFrame, consolidated: pd.DataFrame | None) -> pd.Series:
    if consolidated is None or consolidated.empty:
        return pd.Series(np.nan, index=days.index, dtype="float64")
    known = pd.DataFrame(
        {
            ENTITY_KEY: consolidated["symbol"].astype("string"),
            "date": _dates(consolidated["date"]),
            "consolidated": consolidated["volume"].astype("float64"),
        }
    ).drop_duplicates(KEY, keep="last")
    joined = days[KEY].merge(known, how="left", on=KEY)
    total = joined["consolidated"].to_numpy(dtype="float64", na_value=np.nan)
    share = days["dp_volume"].to_numpy(dtype="float64") / np.where(total > 0, total, np.nan)
    return pd.Series(share, index=days.index, dtype="float64")


# -------------------------------------------------------------------------------------------------------- insiders


def insider_activity(transactions: pd.DataFrame, *, now: dt.datetime | pd.Timestamp) -> pd.DataFrame:
    """``insider_activity`` rows from parsed insider transactions, one per symbol and filing instant (``filed_at``).

    ``last_transaction_value`` sums the signed ``value`` (USD, ``amount * price``) of the transactions filed at that
    instant (they became public together); null when none has a price. ``net_value_Nd`` sums signed values filed in
    ``(T - N days, T]`` (a transaction without a price adds nothing); ``buy_count_90d``/``sell_count_90d`` count rows
    with positive/negative ``amount`` in the 90-day window. Duplicate vendor ``id`` values count once.
    """
    if transactions.empty:
        return _empty(INSIDER_ACTIVITY)
    rows = transactions
    if "id" in rows:
        has_id = rows["id"].notna()
        rows = pd.concat([rows[has_id].drop_duplicates("id", keep="last"), rows[~has_id]])
    frames = [_insider_symbol(symbol, group) for symbol, group in rows.groupby("symbol", observed=True, sort=True)]
    return _conform(pd.concat(frames, ignore_index=True), INSIDER_ACTIVITY, now)


def _insider_symbol(symbol: object, rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("filed_at", kind="stable")
    times = pd.Series(rows["filed_at"], dtype=UTC_DTYPE).to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT"))
    if np.isnat(times).any():
        raise ValueError(f"insider transactions of {symbol} without filed_at")
    amount = rows["amount"].astype("float64").to_numpy()
    value = rows["value"].astype("float64").to_numpy()
    priced = ~np.isnan(value)
    # Prefix sums make every window a difference of two cumulative values: O(n log n) for all rows.
    cum_value = np.concatenate([[0.0], np.cumsum(np.where(priced, value, 0.0))])
    cum_priced = np.concatenate([[0], np.cumsum(priced)])
    cum_buy = np.concatenate([[0], np.cumsum(amount > 0)])
    cum_sell = np.concatenate([[0], np.cumsum(amount < 0)])
    instants = np.unique(times)
    upto = np.searchsorted(times, instants, side="right")
    start = np.searchsorted(times, instants, side="left")
    after_30 = np.searchsorted(times, instants - np.timedelta64(30, "D"), side="right")
    after_90 = np.searchsorted(times, instants - np.timedelta64(90, "D"), side="right")
    last = cum_value[upto] - cum_value[start]
    return pd.DataFrame(
        {
            ENTITY_KEY: symbol,
            EVENT_TS: pd.Series(instants).dt.tz_localize("UTC"),
            "net_value_30d": cum_value[upto] - cum_value[after_30],
            "net_value_90d": cum_value[upto] - cum_value[after_90],
            "buy_count_90d": cum_buy[upto] - cum_buy[after_90],
            "sell_count_90d": cum_sell[upto] - cum_sell[after_90],
            "last_transaction_value": np.where(cum_priced[upto] - cum_priced[start] > 0, last, np.nan),
        }
    )


# ------------------------------------------------------------------------------------------------------ ETF flows


def etf_flow_daily(flows: pd.DataFrame, *, now: dt.datetime | pd.Timestamp) -> pd.DataFrame:
    """``etf_flow_daily`` rows from in-outflow rows (:func:`~ingestion.unusual_whales.parse.parse_etf_in_outflow`).

    ``etf_flow_shares`` is the change in shares outstanding, ``etf_flow_premium`` its dollar value (USD). A date
    fetched twice keeps the later row.
    """
    if flows.empty:
        return _empty(ETF_FLOW_DAILY)
    frame = pd.DataFrame(
        {
            ENTITY_KEY: flows["symbol"].astype("string"),
            "date": _dates(flows["date"]),
            "etf_flow_shares": flows["change"].astype("float64"),
            "etf_flow_premium": flows["change_prem"].astype("float64"),
            "etf_close": flows["close"].astype("float64"),
            "etf_volume": flows["volume"],
            "is_fomc": flows["is_fomc"],
        }
    ).drop_duplicates(KEY, keep="last")
    return _conform(frame, ETF_FLOW_DAILY, now)
