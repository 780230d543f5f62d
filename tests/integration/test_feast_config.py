"""The pieces of the one configuration, without a Feast child: the online store config from ``REDIS_URL``, the
registry in ``FEAST_DATA_DIR``, ``${VAR}`` expansion, the in-process loader, and the glob-aware source check."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.config import DEFAULT_REPO_PATH, settings
from ingestion.store.feast_config import expand_variables, repo_config
from ingestion.store.feast_online import EnvRedisOnlineStoreConfig, feast_redis_fields
from ingestion.store.feast_registry import registry_file
from ingestion.store.feast_sources import DatasetSource

URL = "unix://:s3cret,pw@/run/redis.sock?db=2"


def test_online_config_reads_redis_url_when_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", URL)
    config = EnvRedisOnlineStoreConfig()
    assert config.connection_string == feast_redis_fields(URL)["connection_string"]
    assert "s3cret" not in repr(config)
    monkeypatch.delenv("REDIS_URL")
    assert EnvRedisOnlineStoreConfig().connection_string == "localhost:6379"


def test_online_config_explicit_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", URL)
    cluster = EnvRedisOnlineStoreConfig(redis_url="redis+cluster://h1:7000,h2:7001")
    assert cluster.redis_type == "redis_cluster"
    assert cluster.connection_string == "h1:7000,h2:7001"
    assert EnvRedisOnlineStoreConfig(connection_string="cache:6380,db=1").connection_string == "cache:6380,db=1"


def test_registry_file_is_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEAST_DATA_DIR", str(tmp_path / "env"))
    assert registry_file(SimpleNamespace(path="registry.db")) == tmp_path / "env" / "registry.db"
    pinned = SimpleNamespace(path="registry.db", data_dir=str(tmp_path / "pinned"))
    assert registry_file(pinned) == tmp_path / "pinned" / "registry.db"
    assert registry_file(SimpleNamespace(path="/abs/registry.db")) == Path("/abs/registry.db")


def test_expand_variables_matches_feast_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: ${ONE_CFG_VAR}\nb: $ONE_CFG_VAR/x\nc: ${ONE_CFG_UNSET}\nd: $$ONE_CFG_VAR"
    monkeypatch.setenv("ONE_CFG_VAR", "v")
    monkeypatch.delenv("ONE_CFG_UNSET", raising=False)
    assert expand_variables(text, {"ONE_CFG_VAR": "v"}) == os.path.expandvars(text)


def test_repo_config_is_for_the_settings_not_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("FEAST_DATA_DIR", str(tmp_path / "elsewhere"))
    s = replace(settings({}), repo_path=DEFAULT_REPO_PATH, data_dir=tmp_path / "mine")
    config = repo_config(s, URL)
    assert config.online_store.connection_string == feast_redis_fields(URL)["connection_string"]
    assert registry_file(config.registry) == tmp_path / "mine" / "registry.db"
    assert config.repo_path == DEFAULT_REPO_PATH


def _source(tmp_path: Path) -> DatasetSource:
    return DatasetSource(
        name="t_source",
        path=str(tmp_path / "offline" / "t" / "**" / "*.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )


def test_dataset_source_validates_the_glob(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = _source(tmp_path)
    with caplog.at_level(logging.WARNING):
        source.validate(repo_config(replace(settings({}), data_dir=tmp_path)))  # no files yet: not a fault
    assert caplog.records == []
    folder = tmp_path / "offline" / "t" / "2024-01"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"symbol": ["A"], "event_timestamp": [1]}), folder / "part-x.parquet")
    with caplog.at_level(logging.WARNING):
        source.validate(repo_config(replace(settings({}), data_dir=tmp_path)))
    assert [r.getMessage() for r in caplog.records] == [
        f"part file {folder / 'part-x.parquet'} of source 't_source' has no column created_timestamp"
    ]
