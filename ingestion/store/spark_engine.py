"""Feast's ``spark.engine`` with its own ``spark_conf`` applied: materialization for ``feature_store.spark.yaml``.

Feast 0.67's ``SparkComputeEngine`` starts its session from the raw ``batch_engine`` mapping (``type``,
``spark_conf``, ...) instead of the ``spark_conf`` inside it: Spark prints "Ignoring non-Spark config property:
spark_conf" and runs on defaults (its web UI on port 4040 of every interface, the driver on the host's public
address, the JVM's time zone). This subclass changes only that: the session is started from ``spark_conf`` (with a
view's ``batch_engine`` overrides on top, as Feast intends) and runs in UTC, the zone Feast's Spark SQL assumes
(:mod:`ingestion.store.spark_store`). Reading, the newest row per entity, and the online write through our
store class are Feast's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from feast.batch_feature_view import BatchFeatureView
from feast.infra.compute_engines.spark.compute import SparkComputeEngine, SparkComputeEngineConfig
from feast.infra.compute_engines.spark.utils import get_or_create_new_spark_session

if TYPE_CHECKING:
    from feast.feature_view import FeatureView
    from feast.stream_feature_view import StreamFeatureView
    from pyspark.sql import SparkSession

TYPE_PATH: Literal["ingestion.store.spark_engine.DatasetSparkComputeEngine"] = (
    "ingestion.store.spark_engine.DatasetSparkComputeEngine"
)


class DatasetSparkComputeEngineConfig(SparkComputeEngineConfig):
    """``batch_engine:`` block of ``feature_store.spark.yaml``: Feast's ``spark.engine`` options under this type."""

    type: Literal["ingestion.store.spark_engine.DatasetSparkComputeEngine"] = TYPE_PATH  # type: ignore[assignment]


def _overrides(feature_view: BatchFeatureView | StreamFeatureView | FeatureView) -> dict[str, str]:
    """A ``BatchFeatureView``'s own ``batch_engine`` settings (its ``spark_conf``), which take precedence."""
    runtime: Any = feature_view.batch_engine if isinstance(feature_view, BatchFeatureView) else None
    conf = runtime.get("spark_conf") if isinstance(runtime, dict) else None
    return dict(conf or {})


class DatasetSparkComputeEngine(SparkComputeEngine):
    """Feast's Spark compute engine, started from its ``spark_conf``; see the module docstring."""

    def _get_feature_view_spark_session(
        self, feature_view: BatchFeatureView | StreamFeatureView | FeatureView
    ) -> SparkSession:
        engine = self.repo_config.batch_engine
        conf = dict(getattr(engine, "spark_conf", None) or {})
        conf.update(_overrides(feature_view))
        session = get_or_create_new_spark_session(conf)
        session.conf.set("spark.sql.session.timeZone", "UTC")
        return session


__all__ = ["TYPE_PATH", "DatasetSparkComputeEngine", "DatasetSparkComputeEngineConfig"]
