"""How old the online values of each feature view are, read from the bytes Feast stores in Redis.

Each entity hash holds ``_ts:<view>``, a protobuf Timestamp of the row's event time. :func:`event_times` reads it per
view and symbol (what :mod:`ingestion.ops.health` judges); the age of a view, exported as a metric, is now minus the
newest of them over the symbols asked about, and a view with no value at all has no age (None).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

EventTimes = dict[str, dict[str, float | None]]
"""Per view, per symbol: the event time (epoch seconds) of the online value, None when there is none."""


def event_times(store: Any, views: Iterable[str], symbols: Iterable[str]) -> EventTimes:
    """The event time of every symbol's online value of each view, in one Redis round trip."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from ingestion.store.online import OnlineWriter

    writer = OnlineWriter(store)
    names = list(views)
    syms = list(symbols)
    pipe = writer.client.pipeline(transaction=False)
    for layout in [writer.layout(v) for v in names]:
        for sym in syms:
            pipe.hget(writer.entity_key(layout.join_key, sym), layout.ts_field)
    raw = iter(pipe.execute())
    out: EventTimes = {}
    for view in names:
        out[view] = {}
        for sym in syms:
            value = next(raw)
            if value:
                ts = Timestamp.FromString(value)
                out[view][sym] = ts.seconds + ts.nanos / 1e9
            else:
                out[view][sym] = None
    return out


def newest(times: EventTimes) -> dict[str, float | None]:
    """Per view, the newest event time over its symbols (None when no symbol has a value)."""
    return {view: max((t for t in per.values() if t is not None), default=None) for view, per in times.items()}


def record_ages(newest_times: Mapping[str, float | None], now: float | None = None) -> dict[str, float | None]:
    """Per view, seconds since its newest online value (None when there is none), also set as a metric."""
    from ingestion.ops.metrics import pipeline_metrics

    at = time.time() if now is None else now
    ages: dict[str, float | None] = {}
    for view, latest in newest_times.items():
        ages[view] = None if latest is None else max(0.0, at - latest)
        if latest is not None:
            pipeline_metrics().feature_age.labels(view).set(ages[view] or 0.0)
    return ages


def newest_event_times(store: Any, views: Iterable[str], symbols: Iterable[str]) -> dict[str, float | None]:
    """Per view, the newest event time (epoch seconds) stored online for any of ``symbols``; None if none."""
    return newest(event_times(store, views, symbols))


def feature_ages(
    store: Any, views: Iterable[str], symbols: Iterable[str], now: float | None = None
) -> dict[str, float | None]:
    """Per view, seconds since its newest online value (None when there is none); also set as a metric."""
    return record_ages(newest_event_times(store, views, symbols), now)
