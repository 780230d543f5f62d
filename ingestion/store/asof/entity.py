"""The entity frame, made ready for the join: an Arrow table with a row id and a UTC microsecond event time.

A DataFrame is converted as is; a SQL string is run on DuckDB first (so it may read Parquet, e.g.
``SELECT symbol, event_timestamp FROM read_parquet('labels/*.parquet')``) and its rows are numbered in the order the
query returns them: give the query an ``ORDER BY`` when the order matters. Naive timestamps are taken as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.store.asof.sql import ENTITY_TS, ROW_ID

DEFAULT_EVENT_TS = "event_timestamp"
_UTC_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class EntityFrame:
    """The prepared entity rows. ``columns`` are the caller's columns, returned as given, in order."""

    table: pa.Table
    columns: list[str]
    event_timestamp_column: str
    min_ts: datetime | None
    max_ts: datetime | None


def _event_timestamp_column(schema: pa.Schema) -> str:
    """Feast's rule: ``event_timestamp`` if present, else the only timestamp column."""
    if DEFAULT_EVENT_TS in schema.names:
        return DEFAULT_EVENT_TS
    candidates: list[str] = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if len(candidates) != 1:
        raise ValueError(
            f"entity frame needs a column named {DEFAULT_EVENT_TS!r} or exactly one timestamp column; "
            f"found {candidates or 'none'}"
        )
    return candidates[0]


def _as_arrow(entity_df: pd.DataFrame | str) -> pa.Table:
    if isinstance(entity_df, str):
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            return con.sql(entity_df).to_arrow_table()
        finally:
            con.close()
    frame = entity_df
    if DEFAULT_EVENT_TS in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[DEFAULT_EVENT_TS]):
        # Strings or datetime objects, as Feast accepts them: parse as UTC.
        frame = frame.assign(**{DEFAULT_EVENT_TS: pd.to_datetime(frame[DEFAULT_EVENT_TS], utc=True)})
    return pa.Table.from_pandas(frame, preserve_index=False)


def prepare(entity_df: pd.DataFrame | str) -> EntityFrame:
    """Number the rows and add the event time as ``timestamp[us, UTC]``.

    Nanoseconds are truncated: stored feature times are microseconds, so ``feature_ts <= entity_ts`` gives the same
    answer on the truncated value (never a later feature row).
    """
    table = _as_arrow(entity_df)
    clash = [c for c in table.column_names if c.startswith("__asof")]
    if clash:
        raise ValueError(f"entity frame columns {clash} use the reserved prefix '__asof'")
    ts_name = _event_timestamp_column(table.schema)
    ts = table.column(ts_name)
    if pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):
        ts = pa.chunked_array([pa.array(pd.to_datetime(ts.to_pandas(), utc=True))])
    if not pa.types.is_timestamp(ts.type):
        raise ValueError(f"entity frame column {ts_name!r} is {ts.type}, not a timestamp")
    # A naive timestamp's values are UTC wall time; casting to a UTC-zoned type keeps them as they are.
    ts_utc = pc.cast(ts, _UTC_US, safe=False)
    columns = list(table.column_names)
    table = table.append_column(ENTITY_TS, ts_utc).append_column(
        ROW_ID, pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    lo, hi = pc.min(ts_utc).as_py(), pc.max(ts_utc).as_py()
    return EntityFrame(table=table, columns=columns, event_timestamp_column=ts_name, min_ts=lo, max_ts=hi)


__all__ = ["DEFAULT_EVENT_TS", "EntityFrame", "prepare"]
