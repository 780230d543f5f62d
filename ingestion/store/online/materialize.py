"""Materialization: the latest offline row per entity of a dataset into the online store (``feast materialize``),
recorded in the registry as Feast records its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ingestion.datasets import EVENT_TS, Dataset, get
from ingestion.store.offline import as_utc
from ingestion.store.online.latest import latest_rows
from ingestion.store.online.writer import OnlineWriter

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.config import Settings
    from ingestion.store.objectstore import Root


@dataclass
class MaterializeResult:
    """What :func:`materialize_latest` did, with its wall time in seconds."""

    dataset: str
    keys: int
    written: int
    seconds: float

    @property
    def keys_per_second(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else float("inf")


def materialize_latest(
    store_or_settings: FeatureStore | Settings,
    dataset: Dataset | str,
    data_dir: Root | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    writer: OnlineWriter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> MaterializeResult:
    """Load the latest offline row per entity of ``dataset`` into the online store (what ``feast materialize`` does).

    ``store_or_settings`` is an applied ``FeatureStore`` or ``Settings`` (then the store is opened on its Redis and
    ``data_dir`` defaults to its offline root: the data dir, or the object-store URL of ``FEAST_DATA_DIR``).
    ``start``/``end`` bound the event time as in :func:`~ingestion.store.online.latest.latest_rows`. When rows were
    written, the interval from ``start`` (or the oldest event time written) to the newest event time written is
    recorded in the registry (:func:`record_interval`).
    """
    from feast import FeatureStore

    from ingestion.store.feast_repo import open_store

    if isinstance(store_or_settings, FeatureStore):
        store = store_or_settings
        if data_dir is None:
            raise ValueError("materialize_latest needs data_dir when given a FeatureStore")
    else:
        if not store_or_settings.redis_url:
            raise ValueError("materialize_latest needs REDIS_URL in the settings")
        store = open_store(store_or_settings, store_or_settings.redis_url)
        data_dir = data_dir or store_or_settings.offline_root
    ds = get(dataset) if isinstance(dataset, str) else dataset
    began = clock()
    rows = latest_rows(data_dir, ds, start=start, end=end)
    online = writer or OnlineWriter(store)
    result = online.write(ds.name, rows, record=False)
    if len(rows):
        times = rows[EVENT_TS]
        record_interval(store, ds.name, as_utc(start or times.min()).to_pydatetime(), times.max().to_pydatetime())
    return MaterializeResult(ds.name, result.entities, result.written, clock() - began)


def record_interval(store: FeatureStore, view: str, start: datetime, end: datetime) -> None:
    """Record ``[start, end]`` (event time, UTC) as materialized for ``view``, as ``feast materialize`` does.

    Feast reads these intervals: ``feast_feature_freshness_seconds`` is now minus the newest interval end, and
    ``materialize-incremental`` starts where it ended. Without them a view we wrote looks never materialized.
    """
    # apply_materialization writes the whole registry back from the store's cached copy: refresh it first, so a
    # `feast apply` made since the store was opened is not undone.
    store.registry.refresh(store.project)
    store.registry.apply_materialization(store.get_feature_view(view), store.project, start, end)
