"""Daily feature rows from parsed Unusual Whales frames: ``options_flow_daily``, ``dark_pool_daily``,
``insider_activity`` and ``etf_flow_daily`` (columns, order and dtypes from :mod:`ingestion.datasets`).

Event time is when a value was published, never earlier, by each dataset's rule (:mod:`ingestion.publication`):

* Daily aggregates are stamped with the **publication time** of their trading day: options flow after the options
  session (close + 15 min) plus a delay, dark-pool prints at 20:00 New York (late reports) plus a delay, ETF flows at
  the next session's open.
* An intraday record (flow alert by ``created_at``, dark-pool print by ``executed_at``) belongs to the trading day
  whose vendor day holds it: the **first day end at or after** its instant (options flow: close + 15 min; dark
  pool: 20:00 New York). One from after the day's end, a weekend or a holiday rolls **forward** to the next session,
  never backwards: counting it in the day's row would put it in a value published before it existed.
* A dated record (options volume, ETF flow) belongs to its own date, which must be a session: a daily row dated on a
  weekend or holiday has no session to be stamped with, so ``ValueError`` names it rather than inventing one
  (rolling it forward would silently merge it into the next day's genuine row).
* **Quiet days are zeros**: given the sessions the vendor was asked about, a session with no alert or no print gets
  a row whose counts and sums are 0 (means, maxima and ratios of nothing are null), so a training row never reads
  the previous day's counts as today's.
* Insider rows are stamped with the **filing** instant (``filed_at`` from the parser) plus the delay, one row per
  symbol and publication instant, and one more wherever a filing leaves a trailing window (publication + 30 days,
  + 90 days). Windows cover filings published in ``(T - N days, T]``, so the value read at any instant equals the
  window recomputed from the filings public by then; a window rolls off to 0 instead of freezing.

``created_timestamp`` is the ``now`` the caller passes (the write time), so a test or a replay is reproducible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion import publication
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
from ingestion.unusual_whales.timestamps import UTC_DTYPE

KEY: Final = [ENTITY_KEY, "date"]
_WINDOWS_DAYS: Final = (30, 90)


# ------------------------------------------------------------------------------------------------------ sessions


def trading_day_of(instants: pd.Series, dataset: Dataset) -> pd.Series:
    """For each UTC instant, the trading day (``date32``) of ``dataset`` whose vendor day holds it (the first day end
    at or after it, :func:`ingestion.publication.day_of`).

    Raises ``ValueError`` on a missing instant: a record with no time has no day, and guessing one would be inventing.
    """
    values = pd.Series(instants, dtype=UTC_DTYPE)
    days = publication.day_of(dataset, values)
    return pd.Series(days, dtype=pd.ArrowDtype(pa.date32()), index=values.index)


def _dates(dates: pd.Series) -> pd.Series:
    return pd.Series(list(dates), dtype=pd.ArrowDtype(pa.date32()), index=dates.index)


def _keyed() -> pd.DataFrame:
    """An empty frame with the key columns."""
    return pd.DataFrame({ENTITY_KEY: pd.Series([], dtype="string"), "date": _dates(pd.Series([], dtype=object))})


def _quiet_days(days: pd.DataFrame, symbols: pd.Series, sessions: Sequence[dt.date] | None) -> pd.DataFrame:
    """``days`` (rows keyed by symbol and date) plus a row for every (symbol, session) it lacks, other columns NA.

    ``sessions`` are the days the vendor was asked about; the symbols are those of ``symbols`` (the caller's input,
    so a symbol quiet on every session still gets its rows).
    """
    if not sessions:
        return days
    names = pd.Series(symbols, dtype="string").dropna().unique()
    grid = pd.MultiIndex.from_product([names, list(sessions)], names=KEY).to_frame(index=False)
    grid[ENTITY_KEY] = grid[ENTITY_KEY].astype("string")
    grid["date"] = _dates(grid["date"])
    merged = grid.merge(days, how="outer", on=KEY)
    return merged


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
        frame[EVENT_TS] = publication.published_days(dataset, frame["date"]).astype(UTC_DTYPE)
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
    sessions: Sequence[dt.date] | None = None,
    symbols: Sequence[str] = (),
) -> pd.DataFrame:
    """``options_flow_daily`` rows from parsed flow alerts and options-volume rows, one per symbol and trading day.

    ``alerts``: a :func:`~ingestion.unusual_whales.parse.parse_flow_alerts` frame (``id``, ``symbol``, ``type``,
    ``created_at``, ``total_premium``, ``has_sweep``); duplicates by ``id`` count once, so overlapping polls are safe.
    ``volume``: a :func:`~ingestion.unusual_whales.parse.parse_options_volume` frame (``symbol``, ``date``, premiums,
    volumes). A day present in only one input has the other's columns null: the inputs cannot tell "none" from "not
    fetched". ``put_call_premium_ratio`` is null when call premium is zero.

    ``sessions``: the days whose alerts were fetched (for the symbols of the inputs and ``symbols``). Each of them
    without an alert is a quiet day: alert counts and premiums 0, ``avg_alert_premium`` null.
    """
    parts: list[pd.DataFrame] = []
    known = pd.Series(list(symbols), dtype="string")
    for frame, days_of in ((alerts, _alert_days), (volume, _volume_days)):
        if frame is not None and not frame.empty:
            parts.append(days_of(frame))
            known = pd.concat([known, frame["symbol"].astype("string")])
    merged = _keyed() if not parts else parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, how="outer", on=KEY)
    merged = _quiet_days(merged, known, sessions)
    if merged.empty:
        return _empty(OPTIONS_FLOW_DAILY)
    fetched = merged["date"].isin(list(sessions or ())).to_numpy()
    for column in _ALERT_COUNTS:
        values = merged[column].astype("float64") if column in merged else pd.Series(np.nan, index=merged.index)
        merged[column] = values.where(~(fetched & values.isna().to_numpy()), 0.0)
    for column in OPTIONS_FLOW_DAILY.column_names:
        if column not in merged and column not in (EVENT_TS, CREATED_TS):
            merged[column] = None
    call = merged["call_premium"].astype("float64")
    merged["put_call_premium_ratio"] = (merged["put_premium"].astype("float64") / call).where(call > 0)
    return _conform(merged, OPTIONS_FLOW_DAILY, now)


_ALERT_COUNTS: Final = ("call_premium", "put_premium", "sweep_count", "alert_count")
"""The alert columns that are counts or sums: 0 on a quiet day."""


def _alert_days(alerts: pd.DataFrame) -> pd.DataFrame:
    alerts = alerts.drop_duplicates("id", keep="last") if "id" in alerts else alerts
    premium = alerts["total_premium"].astype("float64")
    kind = alerts["type"].astype("string")
    frame = pd.DataFrame(
        {
            ENTITY_KEY: alerts["symbol"].astype("string"),
            "date": trading_day_of(alerts["created_at"], OPTIONS_FLOW_DAILY),
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
    sessions: Sequence[dt.date] | None = None,
    symbols: Sequence[str] = (),
) -> pd.DataFrame:
    """``dark_pool_daily`` rows from parsed dark-pool prints (:func:`~ingestion.unusual_whales.parse.parse_dark_pool`).

    Prints flagged ``canceled`` are excluded (an unknown flag counts as not canceled). Rows identical in every column
    are one print fetched twice (``/darkpool/recent`` and ``/darkpool/{ticker}`` overlap); distinct prints differ at
    least in the stock's running day ``volume``. ``consolidated_volume`` has ``symbol``, ``date`` and ``volume`` (the
    session's consolidated shares, e.g. Polygon's daily bar); ``dp_share_of_volume`` is null where it is missing or 0.
    A print after 20:00 New York rolls to the next session (module doc), so its share is taken of that session's
    volume. ``sessions``: the days whose prints were fetched (for the symbols of ``prints`` and ``symbols``); each
    of them without a live print is a quiet day: volume, notional and count 0, vwap and largest print null.
    """
    prints = prints.drop_duplicates()
    canceled = prints["canceled"].astype("boolean").fillna(False).astype(bool)
    live = prints[~canceled.to_numpy()]
    known = pd.Series([*symbols, *prints["symbol"]], dtype="string")
    if live.empty and not (sessions and len(known)):
        return _empty(DARK_POOL_DAILY)
    size = live["size"].astype("float64")
    price = live["price"].astype("float64")
    notional = live["premium"].astype("float64").fillna(price * size)
    frame = pd.DataFrame(
        {
            ENTITY_KEY: live["symbol"].astype("string"),
            "date": trading_day_of(live["executed_at"], DARK_POOL_DAILY),
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
    days = _quiet_days(days, known, sessions)
    for column in ("dp_volume", "dp_notional", "dp_trade_count", "price_size"):
        days[column] = days[column].fillna(0)
    days = days[days["date"].notna()].reset_index(drop=True)
    volume = days["dp_volume"].astype("float64")
    days["dp_vwap"] = (days["price_size"].astype("float64") / volume).where(volume > 0)
    days["dp_share_of_volume"] = _share(days, consolidated_volume)
    return _conform(days, DARK_POOL_DAILY, now)


def _share(days: pd.DataFrame, consolidated: pd.DataFrame | None) -> pd.Series:
    """``dp_volume`` over the session's consolidated volume, like by like: both in shares as traded (the caller's
    ``consolidated`` must be raw volume, e.g. :func:`ingestion.jobs.flow.consolidated_volume`)."""
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
    """``insider_activity`` rows from parsed insider transactions: per symbol, one row at each publication instant
    (``filed_at`` plus the dataset's delay) and one wherever a filing leaves a window (publication + 30 and + 90 days).

    At a row's instant ``T``: ``net_value_Nd`` sums the signed ``value`` (USD, ``amount * price``) of transactions
    published in ``(T - N days, T]`` (a transaction without a price adds nothing); ``buy_count_90d``/``sell_count_90d``
    count rows with positive/negative ``amount`` in the 90-day window; ``last_transaction_value`` sums the values of
    the latest filing instant at or before ``T`` (null when none has a price). Duplicate vendor ``id`` values count
    once. Between two rows nothing changes, so an as-of read at any instant equals the brute-force windows.
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
    filed = pd.Series(rows["filed_at"], dtype=UTC_DTYPE)
    if filed.isna().any():
        raise ValueError(f"insider transactions of {symbol} without filed_at")
    filed_us = filed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
    times = publication.published_at(INSIDER_ACTIVITY, filed_us)
    amount = rows["amount"].astype("float64").to_numpy()
    value = rows["value"].astype("float64").to_numpy()
    priced = ~np.isnan(value)
    # Prefix sums make every window a difference of two cumulative values: O(n log n) for all rows.
    cum_value = np.concatenate([[0.0], np.cumsum(np.where(priced, value, 0.0))])
    cum_priced = np.concatenate([[0], np.cumsum(priced)])
    cum_buy = np.concatenate([[0], np.cumsum(amount > 0)])
    cum_sell = np.concatenate([[0], np.cumsum(amount < 0)])
    spans = {n: n * 86_400_000_000 for n in _WINDOWS_DAYS}
    # Every instant at which a value changes: a publication, or a filing leaving a window.
    instants = np.unique(np.concatenate([times, *(times + span for span in spans.values())]))
    upto = np.searchsorted(times, instants, side="right")
    start = np.searchsorted(times, times[upto - 1], side="left")  # rows of the latest filing instant
    after = {n: np.searchsorted(times, instants - span, side="right") for n, span in spans.items()}
    last = cum_value[upto] - cum_value[start]
    return pd.DataFrame(
        {
            ENTITY_KEY: symbol,
            EVENT_TS: pd.Series(instants.astype("datetime64[us]")).dt.tz_localize("UTC"),
            "net_value_30d": cum_value[upto] - cum_value[after[30]],
            "net_value_90d": cum_value[upto] - cum_value[after[90]],
            "buy_count_90d": cum_buy[upto] - cum_buy[after[90]],
            "sell_count_90d": cum_sell[upto] - cum_sell[after[90]],
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
