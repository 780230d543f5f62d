"""Parsed flow alerts as rows of the raw ``flow_alerts`` dataset, and reading them back.

The event time is the alert's publication, the vendor's ``created_at`` (the parser already falls back to
``executed_at`` / ``end_time`` for WebSocket payloads, which carry no ``created_at``). The trade times
``start_time`` / ``end_time`` stay as plain columns: they precede publication (by minutes for a late alert), so
stamping a row with them would let a training row see an alert before anyone could.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FLOW_ALERTS
from ingestion.store.offline import read_dataset

_RAW_COLUMNS = [c for c in FLOW_ALERTS.column_names if c != CREATED_TS]


def flow_alert_rows(parsed: pd.DataFrame) -> pd.DataFrame:
    """``flow_alerts`` rows (without ``created_timestamp``, which landing stamps) from a ``parse_flow_alerts`` frame,
    one per alert id, oldest first."""
    rows = parsed.rename(columns={"created_at": EVENT_TS})
    for column in _RAW_COLUMNS:
        if column not in rows:
            rows[column] = None
    rows = rows.loc[:, _RAW_COLUMNS].drop_duplicates("id", keep="last")
    return rows.sort_values([EVENT_TS, "id"], kind="stable").reset_index(drop=True)


def stored_alerts(
    data_dir: Path,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    symbols: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Stored ``flow_alerts`` rows with ``start <= event_timestamp < end``, one per id (a re-landed id counts once)."""
    rows = read_dataset(data_dir, FLOW_ALERTS, None if symbols is None else list(symbols), start, end)
    return rows.drop_duplicates("id", keep="last").reset_index(drop=True)


def new_alerts(data_dir: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` whose id is not stored yet (a backfill over days the collector already landed)."""
    if rows.empty:
        return rows
    times = pd.to_datetime(rows[EVENT_TS], utc=True)
    stored = stored_alerts(
        data_dir, times.min(), times.max() + pd.Timedelta(microseconds=1), rows[ENTITY_KEY].unique().tolist()
    )
    return rows[~rows["id"].isin(stored["id"])].reset_index(drop=True)


__all__ = ["flow_alert_rows", "new_alerts", "stored_alerts"]
