"""One configuration: plain ``feast`` in the repo, our commands and ``FeatureStore(repo_path=...)`` all read
``feature_repo/feature_store.yaml`` completed from the same environment (``REDIS_URL``, ``FEAST_DATA_DIR``, and a
SQL registry's URL), with no rendered copy and no secret on disk.

Each test runs what a team would: ``feast apply`` as CI runs it (a child process in the repo folder), a backfill
through our command on the Polygon simulator, then a training job's ``FeatureStore(repo_path=...)`` online and
point-in-time reads of that data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import redis
import yaml

from ingestion import calendar, datasets
from ingestion.cli import main
from ingestion.simulators.market import Market
from ingestion.store.redis_conn import parse_redis_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENDOR_VARIABLES = ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN", "POLYGON_BASE_URL", "UW_BASE_URL")
SPURIOUS = "Could not validate FileSource path"


def _repo_copy(tmp_path: Path, registry: dict[str, object] | None = None) -> Path:
    """A copy of ``feature_repo/``; ``registry`` replaces its registry block, as a team would edit it."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    if registry is not None:
        path = repo / "feature_store.yaml"
        config = yaml.safe_load(path.read_text())
        config["registry"] = registry
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def _plain_feast_apply(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``feast apply`` in the repo folder, nothing but the environment telling it where things are.

    PYTHONOPTIMIZE only skips typeguard's checks (a faster ``import feast``); it changes no configuration.
    """
    child = {**os.environ, **env, "PYTHONOPTIMIZE": "1"}
    cmd = [sys.executable, "-m", "feast.cli.cli", "apply"]
    return subprocess.run(cmd, cwd=repo, env=child, capture_output=True, text=True, check=False, timeout=300)


def _round_trip(repo: Path, env: dict[str, str], market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's ``feast apply``, our backfill, then a training job's reads, all from ``env`` alone."""
    applied = _plain_feast_apply(repo, env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert SPURIOUS not in applied.stdout + applied.stderr

    for name in VENDOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**env, "FEAST_REPO_PATH": str(repo)}.items():
        monkeypatch.setenv(name, value)
    args = ["backfill", "ohlcv", "--symbols", "AAPL,MSFT", "--from", "2024-02-01", "--to", "2024-03-28"]
    assert main(args) == 0

    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    assert {v.name for v in store.list_feature_views()} == {d.name for d in datasets.FEATURE_DATASETS}
    online = store.get_online_features(
        features=["ohlcv_daily:close", "ohlcv_daily:volume"], entity_rows=[{"symbol": "AAPL"}, {"symbol": "MSFT"}]
    ).to_dict()
    for i, symbol in enumerate(["AAPL", "MSFT"]):
        last = market.daily_bars(symbol, "2024-03-28", "2024-03-28").iloc[0]
        assert online["close"][i] == last["close"]
        assert online["volume"][i] == last["volume"]

    # At 10:00 New York a model knows the previous session's close, never the same day's.
    day = pd.Timestamp("2024-03-15")
    entity = pd.DataFrame(
        {"symbol": ["MSFT"], "event_timestamp": [pd.Timestamp(f"{day.date()} 10:00", tz=calendar.NEW_YORK)]}
    )
    hist = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    prev = calendar.previous_session(day.date()).date()
    truth = market.daily_bars("MSFT", str(prev), str(prev)).iloc[0]
    assert hist["close"].tolist() == [truth["close"]]


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_plain_feast_our_backfill_and_sdk_share_one_configuration(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, data_dir = _repo_copy(tmp_path), tmp_path / "data"
    _round_trip(repo, {"REDIS_URL": redis_url, "FEAST_DATA_DIR": str(data_dir)}, market, monkeypatch)
    # One registry, in the data dir: none beside the repo, no rendered feature_store.yaml anywhere.
    assert (data_dir / "registry.db").is_file()
    assert not (tmp_path / "data" / "feature_store.yaml").exists()
    assert not list(tmp_path.rglob("registry.db")) or list(tmp_path.rglob("registry.db")) == [data_dir / "registry.db"]
    password = parse_redis_url(redis_url).password
    assert password, "the test Redis is password-protected, so the grep below means something"
    assert _files_holding(data_dir, password) == []
    assert _files_holding(repo, password) == []


def test_sql_registry_is_kept_by_plain_feast_our_commands_and_the_sdk(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLAlchemy's sqlite stands in for postgresql://: the same SQL registry code, no server to start.
    registry_db = tmp_path / "registry.sqlite"
    repo = _repo_copy(tmp_path, {"registry_type": "sql", "path": "${FEAST_REGISTRY_URL}"})
    data_dir = tmp_path / "data"
    env = {"REDIS_URL": redis_url, "FEAST_DATA_DIR": str(data_dir), "FEAST_REGISTRY_URL": f"sqlite:///{registry_db}"}
    _round_trip(repo, env, market, monkeypatch)
    assert registry_db.is_file()
    # Our commands used the SQL registry: no file registry appeared in its place.
    assert not list(tmp_path.rglob("registry.db"))
    password = parse_redis_url(redis_url).password
    assert password and _files_holding(data_dir, password) == []
