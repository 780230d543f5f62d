"""Feast's Spark offline store over the repo's own views: the scale-out path for training retrieval.

``feature_repo/feature_store.spark.yaml`` names :class:`DatasetSparkOfflineStore` (and, for materialization, Feast's
``spark.engine`` through :mod:`ingestion.store.spark_engine`, which reads through this store). It is Feast's
``SparkOfflineStore`` (contrib) unchanged, point-in-time SQL and all; the one thing added is a translation of the
repo's sources, done per call and never registered:

* The views keep their ``DatasetSource`` (a ``FileSource`` over ``<data_dir>/offline/<dataset>/**/*.parquet``), so
  both yamls share one repo, one registry and one set of part files: nothing is defined twice and switching the
  offline engine needs no re-apply. Feast's Spark store accepts only ``SparkSource``; each call here hands it copies
  of the views whose batch source is a :class:`DatasetSparkSource` over the same files.
* Spark reads the dataset's folder (the glob's root) with ``recursiveFileLookup`` and a ``*.parquet`` filter: the
  files DuckDB's ``**/*.parquet`` matches, with no partition inference from folder names and, like every reader of
  the layout, no hidden temp file (Spark skips names starting with ``.``). Hadoop's glob has no recursive ``**``,
  and a glob path makes Spark log a stack trace per read. ``s3://`` becomes ``s3a://``, Hadoop's S3 connector.
* The files are read with the dataset's own schema (:mod:`ingestion.datasets`), not one inferred from a footer:
  a column added later reads as null in older files (as ``union_by_name`` does in our ASOF store), and a view with
  no file yet is empty instead of an error.
* Of rows with equal event times, a dataset with an order of origins (:mod:`ingestion.store.precedence`,
  ``ohlcv_minute``) serves the highest origin before the newest write, as our store does. Feast's Spark SQL breaks
  ties by the created timestamp alone, so the Spark source reads ``created_timestamp`` shifted by the origin's
  rank times :data:`RANK_SHIFT` (about 317 years): ordering and ``MAX`` on the shifted column are ordering on
  (rank, created time), and nothing else in retrieval or materialization reads it (the online store keeps no
  created time; Feast's optional ``filter_by_created_timestamp`` would, so it is refused for such a view).
* The session time zone is forced to UTC. Feast's Spark SQL compares event times with naive ISO strings in UTC and
  builds its row ids from ``CAST(timestamp AS STRING)``: in any other zone it shifts every cut-off by the offset.

Pushed rows (``PushMode.OFFLINE``) go through the project's writer, as with the ASOF store, never through Spark's
``append`` (which would add Spark-named files with another layout into the dataset folder).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    SparkOfflineStore,
    SparkOfflineStoreConfig,
    get_spark_session_or_start_new_with_repoconfig,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig

from ingestion.datasets import Dataset
from ingestion.store.asof.store import AsofDuckDBOfflineStore
from ingestion.store.offline import locate
from ingestion.store.precedence import precedence_of

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

TYPE_PATH: Literal["ingestion.store.spark_store.DatasetSparkOfflineStore"] = (
    "ingestion.store.spark_store.DatasetSparkOfflineStore"
)
SPARK_YAML = "feature_store.spark.yaml"
_WILDCARDS = "*?["
RANK_SHIFT = 10**16
"""Microseconds added to ``created_timestamp`` per origin rank: more than any write time since 1970 (up to 2128)."""
_NULL_CREATED = -(RANK_SHIFT // 2)
"""A missing created time within its rank: below every real one (our store reads it as -infinity)."""


class DatasetSparkOfflineStoreConfig(SparkOfflineStoreConfig):
    """``offline_store:`` block of ``feature_store.spark.yaml``: Feast's Spark options (``spark_conf``,
    ``staging_location``, ``region``) under this store's type name."""

    type: Literal["ingestion.store.spark_store.DatasetSparkOfflineStore"] = TYPE_PATH


def spark_path(path: str) -> str:
    """The folder Spark reads for a ``DatasetSource`` glob: its part before the first wildcard (see the module
    docstring), with ``s3://`` as ``s3a://``."""
    scheme, sep, rest = path.rpartition("://")
    parts = rest.split("/")
    cut = next((i for i, part in enumerate(parts) if any(ch in part for ch in _WILDCARDS)), len(parts))
    scheme = "s3a" if scheme == "s3" else scheme
    return f"{scheme}{sep}{'/'.join(parts[:cut])}"


def _dataset_of(folder: str) -> Dataset | None:
    """The dataset of a dataset folder (``<data_dir>/offline/<dataset>``, local or on object storage), else None."""
    try:
        return locate(Path(folder.rpartition("://")[2]))[1]
    except ValueError:
        return None


def _spark_type(dtype: pa.DataType) -> DataType:
    from pyspark.sql import types as t

    if pa.types.is_timestamp(dtype):
        return t.TimestampType()
    mapping: dict[pa.DataType, DataType] = {
        pa.string(): t.StringType(),
        pa.float64(): t.DoubleType(),
        pa.int64(): t.LongType(),
        pa.bool_(): t.BooleanType(),
        pa.date32(): t.DateType(),
    }
    if dtype not in mapping:
        raise TypeError(f"no Spark type for Arrow {dtype}")  # a dataset definition outside the mapped types
    return mapping[dtype]


def _spark_literal(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"origin {text!r} cannot be a Spark literal")  # origins are plain words (precedence.py)
    return f"'{text}'"


def ranked_created(dataset: Dataset, created: str) -> str | None:
    """Spark SQL for ``created`` shifted by the row's origin rank (see the module docstring); None when the dataset
    has no order of origins."""
    order = precedence_of(dataset)
    if order is None:
        return None
    rank = order.sql(lambda name: f"`{name}`", _spark_literal)
    micros = f"coalesce(unix_micros(`{created}`), {_NULL_CREATED})"
    return f"timestamp_micros(CAST({rank} AS BIGINT) * {RANK_SHIFT} + {micros})"


def spark_schema(dataset: Dataset) -> StructType:
    """The dataset's Arrow schema as a Spark schema (``timestamp[us, UTC]`` is Spark's ``TimestampType``)."""
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(c.name, _spark_type(c.dtype), nullable=True) for c in dataset.columns])


class DatasetSparkSource(SparkSource):
    """A ``SparkSource`` over a dataset's part files, read with the dataset's schema. Built per call by
    :func:`spark_source`; never registered (the registry keeps the ``DatasetSource``)."""

    def __init__(self, source: FileSource) -> None:
        super().__init__(
            name=source.name,
            path=spark_path(source.path),
            file_format="parquet",
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
            field_mapping=source.field_mapping,
            description=source.description,
            tags=source.tags,
            owner=source.owner,
        )
        self.dataset = _dataset_of(self.path)

    def _load_dataframe_from_path(self, spark_session: SparkSession) -> DataFrame:
        from pyspark.errors import AnalysisException

        if self.dataset is None:  # a file or folder outside the layout (a saved dataset, say): Feast's own read
            frame: DataFrame = super()._load_dataframe_from_path(spark_session)  # type: ignore[no-untyped-call]
            return frame
        schema = spark_schema(self.dataset)
        try:
            reader = spark_session.read.schema(schema).option("recursiveFileLookup", "true")
            frame = reader.option("pathGlobFilter", "*.parquet").parquet(self.path)
        except AnalysisException as exc:
            if exc.getCondition() != "PATH_NOT_FOUND":
                raise
            # No part file yet: an empty view answers nulls, as the ASOF store does.
            return spark_session.createDataFrame([], schema)
        created = self.created_timestamp_column
        ranked = ranked_created(self.dataset, created) if created else None
        if ranked is None:
            return frame
        from pyspark.sql import functions as F

        return frame.withColumn(created, F.expr(ranked))


def _ranks(source: DatasetSparkSource) -> bool:
    """Whether the source's created column is read shifted by origin rank."""
    return source.dataset is not None and precedence_of(source.dataset) is not None


def spark_source(source: DataSource) -> SparkSource:
    """The Spark source for a view's batch source (a ``SparkSource`` is kept as it is)."""
    if isinstance(source, SparkSource):
        return source
    if not isinstance(source, FileSource):
        raise TypeError(f"{type(source).__name__} {source.name!r}: the Spark store reads file sources only")
    return DatasetSparkSource(source)


def spark_view(view: FeatureView) -> FeatureView:
    """A copy of ``view`` (projection included) whose batch source is its :func:`spark_source`."""
    if view.batch_source is None:
        raise ValueError(f"feature view {view.name!r} has no batch source")
    out = copy.copy(view)
    out.batch_source = spark_source(view.batch_source)
    return out


def spark_session(config: RepoConfig) -> SparkSession:
    """Feast's session for this config (started on first use), in UTC whatever ``spark_conf`` says."""
    session = get_spark_session_or_start_new_with_repoconfig(config.offline_store)
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def _on_spark_source(pull: Callable[..., RetrievalJob]) -> Callable[..., RetrievalJob]:
    """``pull`` (a Feast ``pull_*`` method) on the :func:`spark_source` of its source, in a UTC session."""

    def call(config: RepoConfig, data_source: DataSource, *args: Any, **kwargs: Any) -> RetrievalJob:
        spark_session(config)
        return pull(config, spark_source(data_source), *args, **kwargs)

    return call


class DatasetSparkOfflineStore(SparkOfflineStore):
    """Feast's ``SparkOfflineStore`` reading the repo's ``DatasetSource`` views; see the module docstring."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | DataFrame | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        views = [spark_view(fv) for fv in feature_views]
        ranked = [v.name for v in views if isinstance(v.batch_source, DatasetSparkSource) and _ranks(v.batch_source)]
        if filter_by_created_timestamp and ranked:
            # The created column of these views carries the origin rank (module docstring): no instant to compare.
            raise ValueError(f"filter_by_created_timestamp is not supported for {', '.join(ranked)} on Spark")
        spark_session(config)
        job: RetrievalJob = SparkOfflineStore.get_historical_features(
            config,
            views,
            feature_refs,
            entity_df,
            registry,
            project,
            full_feature_names,
            filter_by_created_timestamp,
            **kwargs,
        )
        return job

    # Feast's own pulls with the source translated (``spark.engine`` reads through these), and pushes through
    # the project's writer: the same part files the Spark reads see, never a Spark-named file in a dataset folder.
    pull_latest_from_table_or_query = staticmethod(_on_spark_source(SparkOfflineStore.pull_latest_from_table_or_query))
    pull_all_from_table_or_query = staticmethod(_on_spark_source(SparkOfflineStore.pull_all_from_table_or_query))
    offline_write_batch = staticmethod(AsofDuckDBOfflineStore.offline_write_batch)


__all__ = [
    "RANK_SHIFT",
    "SPARK_YAML",
    "TYPE_PATH",
    "DatasetSparkOfflineStore",
    "DatasetSparkOfflineStoreConfig",
    "DatasetSparkSource",
    "ranked_created",
    "spark_path",
    "spark_schema",
    "spark_session",
    "spark_source",
    "spark_view",
]
