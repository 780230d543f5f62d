"""Materialization: the latest offline row per entity of a dataset into the online store (``feast materialize``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.datasets import Dataset, get
from ingestion.store.online.latest import latest_rows
from ingestion.store.online.writer import OnlineWriter

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.config import Settings


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
    data_dir: Path | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    writer: OnlineWriter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> MaterializeResult:
    """Load the latest offline row per entity of ``dataset`` into the online store (what ``feast materialize`` does).

    ``store_or_settings`` is an applied ``FeatureStore`` or ``Settings`` (then the store is opened on its Redis and
    ``data_dir`` defaults to its data dir). ``start``/``end`` bound the event time as in
    :func:`~ingestion.store.online.latest.latest_rows`.
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
        data_dir = data_dir or store_or_settings.data_dir
    ds = get(dataset) if isinstance(dataset, str) else dataset
    began = clock()
    rows = latest_rows(data_dir, ds, start=start, end=end)
    online = writer or OnlineWriter(store)
    result = online.write(ds.name, rows)
    return MaterializeResult(ds.name, result.entities, result.written, clock() - began)
