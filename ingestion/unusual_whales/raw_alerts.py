"""Parsed flow alerts as rows of the raw ``flow_alerts`` dataset, and reading them back.

The event time is the alert's publication, the vendor's ``created_at`` (the parser already falls back to
``executed_at`` / ``end_time`` for WebSocket payloads, which carry no ``created_at``). The trade times
``start_time`` / ``end_time`` stay as plain columns: they precede publication (by minutes for a late alert), so
stamping a row with them would let a training row see an alert before anyone could.

A *late* alert (the live collector first saw it after a poll had already covered its ``created_at``) is stamped
when it was first seen (:mod:`ingestion.stream.flow`), and ``created_at`` stays as a column. Whatever later reads
these alerts (the flow backfill over a day the collector ran) takes a stored alert's event time from the store
(:func:`known_times`), so the rows it derives never place an alert before the moment it was known.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FLOW_ALERTS
from ingestion.store.objectstore import Root
from ingestion.store.offline import read_dataset

_RAW_COLUMNS = [c for c in FLOW_ALERTS.column_names if c != CREATED_TS]


def flow_alert_rows(parsed: pd.DataFrame) -> pd.DataFrame:
    """``flow_alerts`` rows (without ``created_timestamp``, which landing stamps) from a ``parse_flow_alerts`` frame,
    one per alert id, oldest first."""
    rows = parsed.assign(**{EVENT_TS: parsed["created_at"]})
    for column in _RAW_COLUMNS:
        if column not in rows:
            rows[column] = None
    rows = rows.loc[:, _RAW_COLUMNS].drop_duplicates("id", keep="last")
    return rows.sort_values([EVENT_TS, "id"], kind="stable").reset_index(drop=True)


def stored_alerts(
    data_dir: Root,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    symbols: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Stored ``flow_alerts`` rows with ``start <= event_timestamp < end``, one per id (a re-landed id counts once)."""
    rows = read_dataset(data_dir, FLOW_ALERTS, None if symbols is None else list(symbols), start, end)
    return rows.drop_duplicates("id", keep="last").reset_index(drop=True)


LATE_SLACK = pd.Timedelta(days=1)
"""How long after its ``created_at`` a stored alert may have been first seen (late alerts are minutes late): the
span searched for an alert's stored copy."""


def _stored_copies(data_dir: Root, rows: pd.DataFrame) -> pd.DataFrame:
    """The stored ``flow_alerts`` rows that may share an id with ``rows`` (stored at their knowledge time)."""
    times = pd.to_datetime(rows[EVENT_TS], utc=True)
    return stored_alerts(data_dir, times.min(), times.max() + LATE_SLACK, rows[ENTITY_KEY].unique().tolist())


def new_alerts(data_dir: Root, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` whose id is not stored yet (a backfill over days the collector already landed)."""
    if rows.empty:
        return rows
    stored = _stored_copies(data_dir, rows)
    return rows[~rows["id"].isin(stored["id"])].reset_index(drop=True)


def known_times(data_dir: Root, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the event time of every alert already stored taken from the store: the moment it was known,
    later than ``created_at`` for an alert the live collector saw late."""
    if rows.empty:
        return rows
    stored = _stored_copies(data_dir, rows)
    if stored.empty:
        return rows
    known = pd.to_datetime(stored.set_index("id")[EVENT_TS], utc=True)
    at = pd.to_datetime(rows["id"].map(known), utc=True)
    out = rows.copy()
    out[EVENT_TS] = at.where(at.notna(), pd.to_datetime(rows[EVENT_TS], utc=True)).to_numpy()
    return out


__all__ = ["LATE_SLACK", "flow_alert_rows", "known_times", "new_alerts", "stored_alerts"]
