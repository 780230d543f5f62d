"""Shared fixtures: a real Redis server, vendor data from ../shared, and an applied Feast repo."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from ingestion.config import Settings, settings
from ingestion.store.redis_server import RedisServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Fixtures of each area live in their own module under tests/fixtures/, loaded here.
pytest_plugins = [
    "fixtures.simulators",
    "fixtures.uw_simulator",
    "fixtures.uw_client",
    "fixtures.http",
    "fixtures.store",
    "fixtures.retrieval",
    "fixtures.stream",
    "fixtures.chaos",
]


def vendor_dir() -> Path:
    """The vendor specs and captures, read at test time and never copied into the project."""
    env = os.environ.get("VENDOR_DIR")
    path = Path(env) if env else PROJECT_ROOT.parent / "shared" / "vendor"
    if not path.is_dir():
        raise RuntimeError(f"vendor data not found at {path}: put ../shared beside the checkout or set VENDOR_DIR")
    return path


@pytest.fixture(scope="session")
def vendor() -> Path:
    return vendor_dir()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server: REDIS_URL when set, otherwise one started on a free loopback port for the session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of feature_repo/, so tests never write into the checkout."""
    target = tmp_path_factory.mktemp("repo") / "feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


@pytest.fixture(scope="session")
def feast_settings(feast_repo: Path, tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Settings:
    """Settings pointing at the repo copy, a fresh data dir and the test Redis (no vendor keys)."""
    base = settings({})
    return replace(
        base,
        repo_path=feast_repo,
        data_dir=tmp_path_factory.mktemp("data"),
        redis_url=redis_url,
    )


@pytest.fixture(scope="session")
def applied_repo(feast_settings: Settings) -> Settings:
    """The repo applied once with the real ``feast apply`` CLI."""
    from ingestion.store.feast_repo import feast_cli

    assert feast_settings.redis_url is not None
    result = feast_cli(feast_settings, feast_settings.redis_url, "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    return feast_settings


@pytest.fixture
def make_applied_repo(
    feast_repo: Path, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Callable[[], Settings]:
    """A factory of isolated applied repos: each call gets its own data dir (and so its own offline files)."""
    from ingestion.store.feast_repo import feast_cli

    def make() -> Settings:
        s = replace(settings({}), repo_path=feast_repo, data_dir=tmp_path_factory.mktemp("data"), redis_url=redis_url)
        result = feast_cli(s, redis_url, "apply")
        assert result.returncode == 0, result.stdout + result.stderr
        return s

    return make


def pytest_configure(config: pytest.Config) -> None:
    """Undo the environment that importing ``feast.metrics`` sets for its own feature-server workers
    (``PROMETHEUS_MULTIPROC_DIR``): prometheus_client reads it when it is first imported, and a process (an xdist
    worker, a command started by a test) that inherits it keeps every counter in files shared by all instances of
    the same name, so one test's HTTP metrics would count another's."""
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
        if Path(os.environ.get(name, "/")).name.startswith("feast_metrics_"):
            del os.environ[name]
