"""The retrieval job: a query rendered on a fresh DuckDB connection each time it runs, returned as Arrow or pandas.

``to_df()`` keeps integer features as pandas' nullable ``Int64`` (and booleans as ``boolean``): a null in an
integer column must not turn the whole column into float64, as stock Feast does (feast-notes pitfall 3).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.errors import SavedDatasetLocationAlreadyExists
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata

from ingestion.store.asof.sql import ROW_ID

if TYPE_CHECKING:
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.saved_dataset import SavedDatasetStorage, ValidationReference

Render = Callable[[duckdb.DuckDBPyConnection], str]
"""Registers what the query needs on the connection and returns the SQL."""

_NULLABLE: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def nullable_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with integers as ``Int64`` (nullable) and timestamps left timezone-aware."""
    return table.to_pandas(types_mapper=_NULLABLE.get).reset_index(drop=True)


def restore_order(table: pa.Table) -> pa.Table:
    """Rows back in entity-frame order by their ``ROW_ID`` (a permutation of 0..n-1), which is then dropped."""
    if ROW_ID not in table.column_names:
        return table
    row_ids = table.column(ROW_ID).to_numpy()
    order = np.empty(len(row_ids), dtype=np.int64)
    order[row_ids] = np.arange(len(row_ids), dtype=np.int64)
    return table.drop_columns([ROW_ID]).take(pa.array(order))


@dataclass(frozen=True)
class ConnectionOptions:
    """DuckDB settings for each query. ``memory_limit`` like ``"1GB"`` makes DuckDB spill instead of growing."""

    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        # Naive timestamps (in SQL entity frames) mean UTC, and TIMESTAMPTZ comes back to Arrow as UTC.
        con.execute("SET TimeZone = 'UTC'")
        # Row order is restored from the entity row id afterwards; DuckDB need not keep scan order, which saves memory.
        con.execute("SET preserve_insertion_order = false")
        # A training job's log is no place for a progress bar drawn on stderr.
        # Inside Jupyter DuckDB refuses to touch this setting unless ipywidgets is installed; its bar is off there.
        with contextlib.suppress(duckdb.InvalidInputException):
            con.execute("SET enable_progress_bar = false")
        if self.threads:
            con.execute(f"SET threads = {int(self.threads)}")
        if self.memory_limit:
            con.execute("SET memory_limit = ?", [self.memory_limit])
        if self.temp_directory:
            con.execute("SET temp_directory = ?", [self.temp_directory])
        return con


class AsofRetrievalJob(RetrievalJob):
    """A lazily run DuckDB query; each ``to_arrow()`` / ``to_df()`` runs it again on a fresh connection."""

    def __init__(
        self,
        render: Render,
        options: ConnectionOptions,
        full_feature_names: bool = False,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
    ) -> None:
        super().__init__()
        self._render = render
        self._options = options
        self._full_feature_names = full_feature_names
        self._odfvs = on_demand_feature_views or []
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def to_sql(self) -> str:
        """The DuckDB SQL this job runs. A point-in-time query ends with the entity row id column, not ``ORDER BY``:
        the job drops it after putting the rows back in entity-frame order."""
        con = self._options.connect()
        try:
            return self._render(con)
        finally:
            con.close()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        con = self._options.connect()
        try:
            table: pa.Table = con.sql(self._render(con)).to_arrow_table()
            return restore_order(table)
        finally:
            con.close()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return nullable_pandas(self._to_arrow_internal(timeout))

    def to_df(
        self, validation_reference: ValidationReference | None = None, timeout: int | None = None
    ) -> pd.DataFrame:
        """The result as pandas, integers as nullable ``Int64`` (the base class would make them float64)."""
        return nullable_pandas(self.to_arrow(validation_reference=validation_reference, timeout=timeout))

    def persist(self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        """Write the result as one Parquet file at the storage's path (a saved dataset)."""
        source = storage.to_data_source()
        path = str(getattr(source, "path", ""))
        if not path:
            raise ValueError(f"cannot persist to {type(storage).__name__}: only file storage is supported")
        if os.path.exists(path) and not allow_overwrite:
            raise SavedDatasetLocationAlreadyExists(location=path)
        pq.write_table(self._to_arrow_internal(timeout), path)


__all__ = ["AsofRetrievalJob", "ConnectionOptions", "Render", "nullable_pandas", "restore_order"]
