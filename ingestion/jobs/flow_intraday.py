"""The flow backfill's intraday part: a unit's raw ``flow_alerts`` and its ``options_flow_intraday`` rows.

The unit's alerts are those the daily part fetched (its flow days, each ending 15 min after its session's close, see
:mod:`ingestion.publication`); they land in ``flow_alerts`` unless an earlier run or the live collector stored them
already (keyed by the vendor's id, so the raw dataset holds every alert once). The rolling rows are
:func:`ingestion.unusual_whales.rolling.rolling_rows` over the same alerts, for the change points from the end of the
day before the unit to an hour after the end of its last day (clipped to ``now``): the windows need the hour of
alerts before the unit (one extra request) and the hour after it (another), so that the rows rolling off after the
unit are whole. Rows the collector already stored are not written again.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ingestion import calendar, publication
from ingestion.datasets import ENTITY_KEY, EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_DAILY, OPTIONS_FLOW_INTRADAY
from ingestion.rejects import ParseResult
from ingestion.store.objectstore import Root
from ingestion.store.offline import read_dataset
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.unusual_whales.raw_alerts import flow_alert_rows, known_times, new_alerts
from ingestion.unusual_whales.rolling import LONGEST_US, rolling_rows

_HOUR_S = LONGEST_US // 1_000_000


def _seconds(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000_000)


def intraday_frames(
    client: EnhancedUnusualWhalesClient,
    symbol: str,
    unit: tuple[dt.date, dt.date],
    alerts: ParseResult,
    now: pd.Timestamp,
    data_dir: Root,
) -> tuple[dict[str, pd.DataFrame], list[ParseResult]]:
    """``flow_alerts`` and ``options_flow_intraday`` frames of one unit, and the extra pages fetched (for their
    rejected rows). ``alerts`` are the unit's session windows as fetched by the daily part."""
    lo, hi = unit
    sessions = calendar.sessions(lo, hi)
    if len(sessions) == 0:  # a unit of holidays and weekends: the daily part fetched no alerts either
        return {}, []
    # The span the daily part fetched: from the end of the flow day before the unit to the end of its last session
    # (a unit ends on a calendar date, which may be a weekend).
    ends = publication.day_ends(OPTIONS_FLOW_DAILY, [calendar.previous_session(lo).date(), sessions[-1].date()])
    start, end = (pd.Timestamp(int(e), unit="us", tz="UTC") for e in ends)
    now_s = _seconds(now)
    extra = [
        client.fetch_flow_alerts(_seconds(start) - _HOUR_S, _seconds(start) - 1, ticker_symbol=symbol),
        client.fetch_flow_alerts(_seconds(end) + 1, min(_seconds(end) + _HOUR_S, now_s), ticker_symbol=symbol)
        if _seconds(end) < now_s
        else None,
    ]
    fetched = [r for r in extra if r is not None]
    unit_rows = flow_alert_rows(alerts.frame)
    unit_rows = unit_rows[(pd.to_datetime(unit_rows[EVENT_TS], utc=True) <= now).to_numpy()]
    context = flow_alert_rows(pd.concat([unit_rows, *(flow_alert_rows(r.frame) for r in fetched)], ignore_index=True))
    # Alerts the live collector stored keep the time it first saw them: a late one never enters a window earlier.
    context = known_times(data_dir, context)
    hi_at = min(end + pd.Timedelta(microseconds=LONGEST_US), now)
    rows = rolling_rows(context, start, hi_at)
    return {FLOW_ALERTS.name: new_alerts(data_dir, unit_rows), OPTIONS_FLOW_INTRADAY.name: _unstored(data_dir, rows)}, (
        fetched
    )


def _unstored(data_dir: Root, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` without those whose (symbol, event time) is stored already."""
    if rows.empty:
        return rows
    times = pd.to_datetime(rows[EVENT_TS], utc=True)
    stored = read_dataset(
        data_dir,
        OPTIONS_FLOW_INTRADAY,
        rows[ENTITY_KEY].unique().tolist(),
        times.min(),
        times.max() + pd.Timedelta(microseconds=1),
    )
    if stored.empty:
        return rows
    have = pd.MultiIndex.from_frame(stored[[ENTITY_KEY, EVENT_TS]])
    keys = pd.MultiIndex.from_frame(rows[[ENTITY_KEY, EVENT_TS]])
    return rows[~keys.isin(have)].reset_index(drop=True)


__all__ = ["intraday_frames"]
