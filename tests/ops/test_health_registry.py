"""``health``'s registry check reads whatever registry the repo's yaml names, through Feast's registry API.

It used to look for ``<data_dir>/registry.db`` and so said "no registry" for a SQL registry that was applied.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fixtures.feast_repo_copy import plain_feast, repo_copy

from ingestion.config import Settings, settings
from ingestion.ops.health import check_registry, run_health
from ingestion.store.feast_config import repo_config
from ingestion.store.registry_probe import describe_registry, local_registry_file

SQL_REGISTRY = {"registry_type": "sql", "path": "${FEAST_REGISTRY_URL}"}


def _settings(repo: Path, data_dir: Path, redis_url: str) -> Settings:
    return replace(settings({}), repo_path=repo, data_dir=data_dir, redis_url=redis_url)


def test_sql_registry_before_and_after_plain_feast_apply(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, data_dir = repo_copy(tmp_path, SQL_REGISTRY), tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("FEAST_REGISTRY_URL", url)
    s = _settings(repo, data_dir, redis_url)

    before, store = check_registry(s, redis_url)
    assert not before.ok and store is not None
    assert before.detail.startswith(f"no feature views in the SQL registry {url}: run `python -m ingestion apply`")

    env = {"REDIS_URL": redis_url, "FEAST_DATA_DIR": str(data_dir), "FEAST_REGISTRY_URL": url}
    applied = plain_feast(repo, env, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    data_dir.mkdir(exist_ok=True)  # health probes a data dir, it never creates one
    report = run_health(s, ["AAPL"], vendors=False)
    [registry] = [c for c in report.checks if c.name == "registry"]
    assert registry.ok, registry.detail
    assert registry.detail.endswith(f"feature views applied (SQL registry {url})")
    # No file registry was looked for, or made, in the data dir.
    assert not (data_dir / "registry.db").exists()


def test_missing_file_registry_is_reported_and_not_created(tmp_path: Path, redis_url: str) -> None:
    repo, data_dir = repo_copy(tmp_path), tmp_path / "data"
    data_dir.mkdir()
    check, store = check_registry(_settings(repo, data_dir, redis_url), redis_url)
    assert (check.ok, store) == (False, None)
    assert (
        check.detail
        == f"no registry at {data_dir / 'registry.db'}: run `python -m ingestion apply` (or `feast apply` in the repo)"
    )
    # Opening Feast's file registry on a missing path would have written an empty one.
    assert not (data_dir / "registry.db").exists()


def test_registry_descriptions_name_the_registry_without_a_password(tmp_path: Path) -> None:
    s = replace(settings({}), data_dir=tmp_path)
    config = repo_config(s)
    assert local_registry_file(config) == tmp_path / "registry.db"
    assert describe_registry(config) == f"file registry {tmp_path / 'registry.db'}"

    config.registry_config = {"registry_type": "sql", "path": "postgresql+psycopg://feast:s3cret@db:5432/feast"}
    config._registry = None
    assert local_registry_file(config) is None
    assert describe_registry(config) == "SQL registry postgresql+psycopg://feast:***@db:5432/feast"

    # Feast's own file store keeps a relative path beside the repo.
    config.registry_config = {"registry_type": "file", "path": "data/registry.db"}
    config._registry = None
    assert local_registry_file(config) == s.repo_path / "data" / "registry.db"
