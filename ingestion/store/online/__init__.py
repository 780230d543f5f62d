"""The online store's parts: Feast's Redis hash layout, written fast, with TTL at read and pre-computed vectors.

The store class is :class:`ingestion.store.feast_online.EnvRedisOnlineStore`. One concern a module:

* :mod:`~ingestion.store.online.layout`: the key layout (hash fields, vector slices) and protobuf fragments;
* :mod:`~ingestion.store.online.cas`: the Lua compare-and-set every write goes through;
* :mod:`~ingestion.store.online.catalog`: layouts, TTLs and vector plans from the registry, cached;
* :mod:`~ingestion.store.online.encoding`: Feast's protobuf bytes (values, timestamps, entity keys);
* :mod:`~ingestion.store.online.latest`: the latest row per entity, of a frame or of the offline store (DuckDB);
* :mod:`~ingestion.store.online.writer`: :class:`OnlineWriter`, a frame per round trip through the store class;
* :mod:`~ingestion.store.online.materialize`: :func:`materialize_latest`, offline latest rows into Redis (and the
  interval into the registry).

Stock ``get_online_features`` reads what :class:`OnlineWriter` writes. The names below are the ones the rest of the
project imports from here.
"""

from ingestion.store.online.encoding import encode_values, timestamp_fields, varint, varints
from ingestion.store.online.materialize import materialize_latest
from ingestion.store.online.writer import OnlineWriter

__all__ = ["OnlineWriter", "encode_values", "materialize_latest", "timestamp_fields", "varint", "varints"]
