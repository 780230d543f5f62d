"""A Feast offline store that answers point-in-time queries with DuckDB ``ASOF LEFT JOIN`` over Parquet part files.

Named in ``feature_store.yaml`` by import path::

    offline_store:
      type: ingestion.store.asof.store.AsofDuckDBOfflineStore

Why not the stock stores (feast-notes): the file store merges every entity row with every feature row of its key
(OOM, silently drops rows); the duckdb store is a range join plus a window (about 8x a raw ASOF join) and turns
Int64 features into float64. An ASOF join finds, per entity row, the single newest feature row at or before it, so
memory is O(entity rows + feature rows) and no entity row can be dropped or multiplied.
"""

from ingestion.store.asof.store import AsofDuckDBOfflineStore, AsofDuckDBOfflineStoreConfig

__all__ = ["AsofDuckDBOfflineStore", "AsofDuckDBOfflineStoreConfig"]
