"""Feature views, built from the dataset definitions in ``ingestion.datasets``.

Each view's schema, TTL and event-time rule come from its dataset; this file only wires them to Feast. The rule is
repeated beside each view because it is the first thing to check when a training set looks too good.
"""

from __future__ import annotations

from feast import FeatureView, PushSource
from feast.data_format import ParquetFormat

from entities import ticker
from ingestion import config, datasets
from ingestion.datasets import CREATED_TS, EVENT_TS, Dataset
from ingestion.store.feast_repo import feature_fields, offline_glob
from ingestion.store.feast_sources import DatasetPushSource, DatasetSource

# FEAST_DATA_DIR (else the project's data/ folder), read when `feast apply` parses the repo: the registry then
# records absolute paths under this data dir, the same one the yaml's registry and our writers use (or s3:// URLs
# when FEAST_DATA_DIR names object storage).
_DATA_DIR = config.settings().offline_root


def _file_source(dataset: Dataset) -> DatasetSource:
    return DatasetSource(
        name=f"{dataset.name}_source",
        path=offline_glob(_DATA_DIR, dataset),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TS,
        created_timestamp_column=CREATED_TS,
        description=f"Append-only Parquet part files of {dataset.name}.",
    )


def _view(dataset: Dataset, source: DatasetSource | PushSource | None = None) -> FeatureView:
    if dataset.ttl is None:
        raise ValueError(f"{dataset.name} is not a feature dataset (it has no ttl)")
    return FeatureView(
        name=dataset.name,
        entities=[ticker],
        ttl=dataset.ttl,
        schema=feature_fields(dataset),
        source=source or _file_source(dataset),
        online=dataset.online,
        description=f"{dataset.description} Event time: {dataset.event_time_rule}",
        tags={"event_time_rule": dataset.event_time_rule, **dataset.tags},
    )


# Event time: session close of the bar's day (16:00 New York, or the early close on a half day).
ohlcv_daily = _view(datasets.OHLCV_DAILY)

# Event time: end of the bar's minute (window start + 60 s).
ohlcv_minute = _view(datasets.OHLCV_MINUTE)

# Event time: session close of the trading day the alerts and volume belong to.
options_flow_daily = _view(datasets.OPTIONS_FLOW_DAILY)

# Event time: session close of the trading day of the prints.
dark_pool_daily = _view(datasets.DARK_POOL_DAILY)

# Event time: filing time of the insider transaction, not its trade date.
insider_activity = _view(datasets.INSIDER_ACTIVITY)

# Event time: session close of the flow's date.
etf_flow_daily = _view(datasets.ETF_FLOW_DAILY)

# Event time: SIP time of the latest tick in the aggregate. Fed by the stream bridge through this push source;
# its batch source is where the bridge lands the same rows offline.
realtime_quotes_push = DatasetPushSource(
    name="realtime_quotes_push",
    batch_source=_file_source(datasets.REALTIME_QUOTES),
    description="Micro-batches of per-symbol tick aggregates from the stream bridge.",
)
realtime_quotes = _view(datasets.REALTIME_QUOTES, realtime_quotes_push)

# Event time: an instant the rolling windows change (an alert's publication, `created_at`, or an alert leaving a
# 5/15/60-minute window). Fed by the flow collector through this push source (online and offline); the flow backfill
# writes the same rows to its batch source from the raw `flow_alerts` dataset, with the same code.
options_flow_intraday_push = DatasetPushSource(
    name="options_flow_intraday_push",
    batch_source=_file_source(datasets.OPTIONS_FLOW_INTRADAY),
    description="Rolling options-flow windows per symbol, pushed by the flow collector on each poll.",
)
options_flow_intraday = _view(datasets.OPTIONS_FLOW_INTRADAY, options_flow_intraday_push)
