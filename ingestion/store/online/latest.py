"""The latest row per entity, by Feast's rule: newest ``event_timestamp``, then newest ``created_timestamp`` (for
minute bars the origin precedence comes between the two, as in the point-in-time join).

Two places need it: a frame about to be written (:func:`latest_per_entity`) and the offline store about to be
materialized (:func:`latest_rows`, one DuckDB query over the Parquet part files).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, Dataset, get
from ingestion.store.online.encoding import epoch_us

if TYPE_CHECKING:
    from ingestion.store.objectstore import Root


def latest_per_entity(frame: pd.DataFrame, join_key: str, dataset: str | None = None) -> pd.DataFrame:
    """One row per entity: the newest ``event_timestamp``, then the origin precedence of ``dataset`` (if it has
    one), then ``created_timestamp``, then the last given.

    NumPy lexsort on integer times: pandas' sort of tz-aware columns iterates Python objects and costs more than
    the whole Redis write.
    """
    from ingestion.store.precedence import ranks

    if len(frame) == 0:
        return frame
    created = epoch_us(frame[CREATED_TS]) if CREATED_TS in frame.columns else np.zeros(len(frame), np.int64)
    rank = ranks(dataset, frame) if dataset is not None else None
    codes = pd.factorize(frame[join_key])[0]
    order = np.lexsort((np.arange(len(frame)), created, *(() if rank is None else (rank,)), epoch_us(frame[EVENT_TS])))
    # Walk the sorted order backwards: the first time an entity shows up there is its latest row.
    backwards = order[::-1]
    _, first = np.unique(codes[backwards], return_index=True)
    return frame.iloc[np.sort(backwards[first])]


def latest_rows(
    root: Root, dataset: Dataset | str, *, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The latest stored row per entity read with DuckDB over the visible part files (a local data dir or an
    object-store root): newest event time, then the dataset's origin precedence (minute bars: REST over refill over
    streamed, :mod:`ingestion.store.precedence`, as the point-in-time join ranks them), then newest created time.

    ``start``/``end`` bound ``event_timestamp`` (UTC, naive values taken as UTC; both inclusive, as
    ``feast materialize``).
    """
    import duckdb

    from ingestion.store.asof.sql import ident, literal
    from ingestion.store.offline import as_utc, empty_frame, scan_dataset
    from ingestion.store.precedence import precedence_of

    ds = get(dataset) if isinstance(dataset, str) else dataset
    source = scan_dataset(root, ds)
    if source is None:
        return empty_frame(ds)
    where: list[str] = []
    params: list[object] = []
    if start is not None:
        where.append(f"{EVENT_TS} >= ?")
        params.append(as_utc(start))
    if end is not None:
        where.append(f"{EVENT_TS} <= ?")
        params.append(as_utc(end))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    order = precedence_of(ds)
    ranked = f"{order.sql(ident, literal)} DESC, " if order is not None else ""
    query = (
        f"SELECT * FROM parts {clause} "  # noqa: S608 (names are ours)
        f"QUALIFY row_number() OVER (PARTITION BY {ENTITY_KEY} ORDER BY {EVENT_TS} DESC, {ranked}{CREATED_TS} DESC) = 1"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("parts", source)
        table: pa.Table = con.sql(query, params=params).to_arrow_table()
    frame: pd.DataFrame = table.to_pandas()
    return frame
