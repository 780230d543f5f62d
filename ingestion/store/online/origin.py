"""Origin precedence online: of two values of a view at one event time, the higher origin stays stored.

A minute of ``ohlcv_minute`` can be stored by several paths, all at one event time (:mod:`ingestion.store.
precedence`). The compare-and-set keeps a stored value unless the new event time is strictly newer (Feast's rule),
so a streamed bar materialized first stayed online after the REST bar of the same minute was landed and
materialized: until the symbol's next minute, overnight for a session's last minute, while training already saw the
REST bar (train/serve skew that ``skew`` reports).

The rank rides in the stored event time: the view's ``_ts:<view>`` Timestamp carries the rank of the row's origin
in its sub-microsecond nanoseconds. Why there and not in a field of its own:

* The compare-and-set orders (seconds, nanos) already: a higher origin at the same instant is newer, the same or a
  lower origin is not (a rerun writes nothing), and a later instant wins whatever its origin. No script change,
  and no second field to keep in step with the first under concurrent writers.
* No reader sees it: Feast's online read converts the Timestamp through a float and rounds to the microsecond, the
  vector TTL checks (Feast's and ours) compare microseconds or float seconds, freshness reports seconds, and the
  fast service read, which hands stored times to Feast's response, truncates them (:func:`unranked`). The event
  time a user reads is the one offline, to the microsecond.
* The rank is computed from the value being written (the view's ``source`` feature), where every write builds its
  script arguments (``_cas_arguments`` in :mod:`ingestion.store.feast_online`): our writer and ``materialize``,
  Feast's ``online_write_batch`` and its async twin (``feast materialize``, ``spark.engine``, ``push``) store the
  same bytes.

Only event times on a whole microsecond are ranked, as every write path produces them (Feast's ``FromDatetime``,
our microsecond encoder); a time with nanoseconds of its own is stored as given.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np

from ingestion.store.online.encoding import timestamp_bytes
from ingestion.store.online.layout import Prepared
from ingestion.store.precedence import precedence_of


@cache
def _rank_of_value(view: str) -> tuple[str, dict[bytes, int]] | None:
    """The origin column of ``view`` and the rank of each serialized ``Value`` of it; None without an order."""
    from feast.protos.feast.types.Value_pb2 import Value

    order = precedence_of(view)
    if order is None:
        return None
    table = {Value(string_val=o).SerializeToString(): order.rank(o) for o in order.lowest_first}
    table[Value().SerializeToString()] = order.rank(order.missing_as)  # a null origin: a row older than the column
    return order.column, table


def ranked(prepared: Prepared) -> Prepared:
    """``prepared`` with each entity's origin rank added to its event time's nanoseconds (see the module doc);
    the same object when its view has no order of origins or does not serve the origin column."""
    found = _rank_of_value(prepared.layout.name)
    if found is None or found[0] not in prepared.layout.features or not len(prepared):
        return prepared
    column, table = found
    origins = prepared.values[prepared.layout.features.index(column)]
    ranks = np.fromiter((table.get(v, 0) for v in origins), dtype=np.int64, count=len(origins))
    nanos = np.asarray(prepared.nanos, dtype=np.int64)
    ranks[nanos % 1000 != 0] = 0
    if not ranks.any():
        return prepared
    secs = np.asarray(prepared.secs, dtype=np.int64)
    nanos += ranks
    return replace(prepared, nanos=nanos.tolist(), ts_bytes=timestamp_bytes(secs, nanos))


def unranked(stamp: bytes, cache: dict[bytes, bytes]) -> bytes:
    """A stored event Timestamp without its rank: truncated to the microsecond, as Feast's own read returns it.
    For a reader that hands the stored bytes on (the fast service read's response); ``cache`` is the caller's,
    since many entities share an event time."""
    out = cache.get(stamp)
    if out is None:
        from google.protobuf.timestamp_pb2 import Timestamp

        ts = Timestamp.FromString(stamp)
        out = stamp
        if ts.nanos % 1000:
            ts.nanos -= ts.nanos % 1000
            out = ts.SerializeToString()
        cache[stamp] = out
    return out


__all__ = ["ranked", "unranked"]
