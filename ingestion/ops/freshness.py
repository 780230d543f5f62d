"""How old the newest online value of each feature view is, read from the bytes Feast stores in Redis.

Each entity hash holds ``_ts:<view>``, a protobuf Timestamp of the row's event time. The age of a view is now minus
the newest of those timestamps over the symbols asked about; a view with no value at all has no age (None).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def newest_event_times(store: Any, views: Iterable[str], symbols: Iterable[str]) -> dict[str, float | None]:
    """Per view, the newest event time (epoch seconds) stored online for any of ``symbols``; None if none."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from ingestion.store.online import OnlineWriter

    writer = OnlineWriter(store)
    names = list(views)
    syms = list(symbols)
    pipe = writer.client.pipeline(transaction=False)
    layouts = [writer.layout(v) for v in names]
    for layout in layouts:
        for sym in syms:
            pipe.hget(writer.entity_key(layout.join_key, sym), layout.ts_field)
    raw = pipe.execute()
    out: dict[str, float | None] = {}
    for i, view in enumerate(names):
        newest: float | None = None
        for value in raw[i * len(syms) : (i + 1) * len(syms)]:
            if value:
                ts = Timestamp.FromString(value)
                seconds = ts.seconds + ts.nanos / 1e9
                newest = seconds if newest is None else max(newest, seconds)
        out[view] = newest
    return out


def feature_ages(
    store: Any, views: Iterable[str], symbols: Iterable[str], now: float | None = None
) -> dict[str, float | None]:
    """Per view, seconds since its newest online value (None when there is none); also set as a metric."""
    from ingestion.ops.metrics import pipeline_metrics

    now = time.time() if now is None else now
    ages: dict[str, float | None] = {}
    for view, newest in newest_event_times(store, views, symbols).items():
        ages[view] = None if newest is None else max(0.0, now - newest)
        if newest is not None:
            pipeline_metrics().feature_age.labels(view).set(ages[view] or 0.0)
    return ages
