"""The fast online writer: frames of a feature view into our online store, one round trip per frame.

The layout and the compare-and-set belong to the store class (:class:`~ingestion.store.feast_online.
EnvRedisOnlineStore`, :mod:`~ingestion.store.online.layout`, :mod:`~ingestion.store.online.cas`); this module turns
a frame into encoded rows. Feast's own write path rebuilds every feature view from the registry and type-checks on
each ``push``, and sends one ``Value`` message at a time. Here a view's layout is resolved once, the values of a
column are encoded at once (:mod:`~ingestion.store.online.encoding`), and a frame goes out in one pipeline.

**Dedup, like Feast, without its two round trips.** Only the latest row per entity in the frame is kept
(:func:`~ingestion.store.online.latest.latest_per_entity`: for minute bars the highest origin of the newest
minute); the store's script then writes an entity only when its event time is strictly newer than the stored one
(a minute bar's carries its origin's rank, :mod:`~ingestion.store.online.origin`), and writes the view's slices of
pre-computed vectors in the same atomic step.

**Materialization intervals.** Feast's ``feast_feature_freshness_seconds`` and ``materialize-incremental`` read the
intervals recorded in the registry. A write records ``[oldest, newest]`` event time written for its view, at most
once per ``record_every_s`` per view (a registry write costs tens of milliseconds; a stream writes every second),
and :meth:`OnlineWriter.close` records what is still pending.

**No TTL on keys.** Feast's ``key_ttl_seconds`` would expire the whole hash, shared by every view of the symbol
(daily bars included), so nothing sets one; values older than a view's ttl are nulled by the store at read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ingestion.datasets import DATASETS, EVENT_TS
from ingestion.store.online.encoding import encode_values, epoch_us, timestamp_fields
from ingestion.store.online.latest import latest_per_entity
from ingestion.store.online.layout import Prepared, ViewLayout

if TYPE_CHECKING:
    from feast import FeatureStore

ENCODE_CHUNK = 16_384
"""Entities encoded at a time by :meth:`OnlineWriter.write`: Redis starts on the first chunk while later ones are
encoded, and a chunk is large enough that the encoders stay vectorised."""


@dataclass
class WriteResult:
    """Counts of one :meth:`OnlineWriter.write`: rows given, entities after in-frame dedup, hashes written."""

    view: str
    rows_in: int
    entities: int
    written: int

    @property
    def skipped_not_newer(self) -> int:
        """Entities whose stored event time was already as new or newer (Feast skips those too)."""
        return self.entities - self.written


class OnlineWriter:
    """Writes frames of a feature view through our online store class, in Feast's bytes.

    ``store`` is an applied ``FeatureStore`` (e.g. from ``feast_repo.open_store``) on a Redis online store.
    ``client`` replaces the store's Redis client (a test's). ``record_every_s`` (None: never) throttles the
    materialization intervals each write records.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        client: Any = None,
        keys_per_call: int = 256,
        record_every_s: float | None = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        from ingestion.store.feast_online import EnvRedisOnlineStore

        if not isinstance(store.config.online_store, RedisOnlineStoreConfig):
            raise ValueError(
                f"the fast online writer needs a Redis online store, not {store.config.online_store.type!r}"
            )
        self.store = store
        self.config = store.config
        self.project: str = store.config.project
        self.online = EnvRedisOnlineStore()
        if client is not None:
            self.online.attach(client)
        self.client: Any = self.online.redis(self.config)
        self.keys_per_call = max(1, keys_per_call)
        self.record_every_s = record_every_s
        self._clock = clock
        # Per view: (oldest, newest) event time written since the last record, and when that record was made.
        self._pending: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
        self._recorded_at: dict[str, float] = {}
        self._record_lock = threading.Lock()

    def layout(self, view: str) -> ViewLayout:
        """The Redis layout of a view (resolved from the registry once, by the store class)."""
        return self.online.layout(self.config, self.store.registry, view)

    def entity_key(self, join_key: str, value: str) -> bytes:
        """The store's Redis key of one entity (serialized entity key + project)."""
        return self.online.entity_keys(self.config, join_key, [value])[0]

    def prepare(self, view: str, frame: pd.DataFrame) -> Prepared:
        """Encode a frame: the latest row per entity (event time, then created time), every field in Feast bytes."""
        layout, latest = self._latest(view, frame)
        return self._encode(layout, latest)

    def _latest(self, view: str, frame: pd.DataFrame) -> tuple[ViewLayout, pd.DataFrame]:
        layout = self.layout(view)
        if view in DATASETS:  # a column with a default (a minute bar's `source`) is filled in as offline
            defaults = {c: v for c, v in DATASETS[view].defaults_for(frame.columns).items() if c in layout.features}
            if defaults:
                frame = frame.assign(**defaults)
        missing = [c for c in (layout.join_key, EVENT_TS, *layout.features) if c not in frame.columns]
        if missing:
            raise ValueError(f"frame for view {view} lacks columns {missing}")
        return layout, latest_per_entity(frame, layout.join_key, view)

    def _encode(self, layout: ViewLayout, latest: pd.DataFrame) -> Prepared:
        secs, nanos, ts_bytes = timestamp_fields(epoch_us(latest[EVENT_TS]))
        keys = self.online.entity_keys(self.config, layout.join_key, [str(v) for v in latest[layout.join_key].tolist()])
        values = [encode_values(t, latest[f]) for f, t in zip(layout.features, layout.value_types, strict=True)]
        return Prepared(layout, keys, secs, nanos, ts_bytes, values)

    def send(self, prepared: Prepared) -> int:
        """Compare-and-set every entity of ``prepared`` through the store; returns how many hashes were written."""
        return self.online.write_prepared(self.config, prepared, keys_per_call=self.keys_per_call)

    def write(self, view: str, frame: pd.DataFrame, *, record: bool = True) -> WriteResult:
        """Write a frame of one view: latest row per entity, never over a newer stored row.

        ``record`` False leaves the materialization interval to the caller (:func:`materialize_latest` records
        its own, exact one).
        """
        if frame.empty:
            return WriteResult(view, 0, 0, 0)
        layout, latest = self._latest(view, frame)
        # Encoded a chunk at a time, each while Redis runs the one before (see EnvRedisOnlineStore.write_chunks).
        chunks = (self._encode(layout, latest.iloc[i : i + ENCODE_CHUNK]) for i in range(0, len(latest), ENCODE_CHUNK))
        written = self.online.write_chunks(self.config, chunks, keys_per_call=self.keys_per_call)
        result = WriteResult(view, len(frame), len(latest), written)
        if record and self.record_every_s is not None and result.written:
            times = pd.to_datetime(frame[EVENT_TS], utc=True)
            self._note(view, times.min(), times.max())
        return result

    def _note(self, view: str, oldest: pd.Timestamp, newest: pd.Timestamp) -> None:
        with self._record_lock:
            pending = self._pending.get(view)
            if pending is not None:
                oldest, newest = min(oldest, pending[0]), max(newest, pending[1])
            self._pending[view] = (oldest, newest)
            last = self._recorded_at.get(view)
            due = last is None or self._clock() - last >= (self.record_every_s or 0.0)
        if due:
            self.flush_intervals(view)

    def flush_intervals(self, view: str | None = None) -> None:
        """Record the pending materialization interval of ``view`` (default: every view) in the registry."""
        from ingestion.store.online.materialize import record_interval

        with self._record_lock:
            names = [view] if view is not None else list(self._pending)
            todo = [(v, self._pending.pop(v)) for v in names if v in self._pending]
            for v, _ in todo:
                self._recorded_at[v] = self._clock()
        for v, (oldest, newest) in todo:
            record_interval(self.store, v, _py(oldest), _py(newest))

    def close(self) -> None:
        """Record pending intervals, then close the Redis client."""
        try:
            self.flush_intervals()
        finally:
            self.client.close()


def _py(stamp: pd.Timestamp) -> datetime:
    out: datetime = stamp.to_pydatetime()
    return out
