"""Fixtures of the Spark tests: one applied repo and two FeatureStores on it, ours and Spark's.

Both stores load yamls of the same repo copy (``feature_store.yaml`` and ``feature_store.spark.yaml``): one
registry, one Redis, one data dir. The Spark session (a JVM in local mode) is started by the first Spark call and
lives for the test session; stopping it at the end ends the JVM.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from feast import FeatureStore

from ingestion.config import Settings
from ingestion.store.feast_config import repo_config
from ingestion.store.feast_repo import feast_cli
from ingestion.store.spark_store import SPARK_YAML


@pytest.fixture(scope="session")
def spark_repo(feast_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The repo applied (with the default yaml: the registry is the same for both) into a data dir of its own."""
    settings = replace(feast_settings, data_dir=tmp_path_factory.mktemp("spark-data"))
    assert settings.redis_url
    result = feast_cli(settings, settings.redis_url, "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    yield settings
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture
def open_stores(spark_repo: Settings) -> Callable[[], tuple[FeatureStore, FeatureStore]]:
    """A factory of (ours, Spark's) on the same registry, Redis and part files, configured from the environment of
    the moment: the online store takes ``FEAST_ONLINE_READ_AT`` when its config is first built, so a test that sets
    it opens its stores afterwards."""
    url = spark_repo.redis_url
    assert url

    def open_both() -> tuple[FeatureStore, FeatureStore]:
        ours = FeatureStore(repo_path=str(spark_repo.repo_path), config=repo_config(spark_repo, url))
        config = repo_config(spark_repo, url, yaml_name=SPARK_YAML)
        spark = FeatureStore(repo_path=str(spark_repo.repo_path), config=config)
        assert type(spark._get_provider().offline_store).__name__ == "DatasetSparkOfflineStore"
        return ours, spark

    return open_both


@pytest.fixture
def stores(
    spark_repo: Settings, open_stores: Callable[[], tuple[FeatureStore, FeatureStore]]
) -> tuple[FeatureStore, FeatureStore]:
    """(ours, Spark's) for retrieval; the offline folders start empty."""
    shutil.rmtree(spark_repo.offline_dir, ignore_errors=True)
    return open_stores()
