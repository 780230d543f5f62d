"""One configuration: plain ``feast`` in the repo, our commands and ``FeatureStore(repo_path=...)`` all read
``feature_repo/feature_store.yaml`` completed from the same environment (``REDIS_URL``, ``FEAST_DATA_DIR``, and a
SQL registry's URL), with no rendered copy and no secret on disk.

Each test runs what a team would: ``feast apply`` as CI runs it (a child process in the repo folder), a backfill
through our command on the Polygon simulator, then a training job's ``FeatureStore(repo_path=...)`` online and
point-in-time reads of that data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis
from fixtures.feast_repo_copy import plain_feast, repo_copy

from ingestion import calendar, datasets
from ingestion.cli import main
from ingestion.simulators.market import Market
from ingestion.store.redis_conn import parse_redis_url

VENDOR_VARIABLES = ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN", "POLYGON_BASE_URL", "UW_BASE_URL")
SPURIOUS = "Could not validate FileSource path"


def _round_trip(repo: Path, env: dict[str, str], market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's ``feast apply``, our backfill, then a training job's reads, all from ``env`` alone."""
    applied = plain_feast(repo, env, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert SPURIOUS not in applied.stdout + applied.stderr

    for name in VENDOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**env, "FEAST_REPO_PATH": str(repo)}.items():
        monkeypatch.setenv(name, value)
    args = ["backfill", "ohlcv", "--symbols", "AAPL,MSFT", "--from", "2024-02-01", "--to", "2024-03-28"]
    assert main(args) == 0

    from feast import FeatureStore

    # Online values older than their view's ttl read as null; read as of the next morning, as a replay of that day.
    monkeypatch.setenv("FEAST_ONLINE_READ_AT", "2024-03-29T10:00:00-04:00")
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
    repo, data_dir = repo_copy(tmp_path), tmp_path / "data"
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
    repo = repo_copy(tmp_path, {"registry_type": "sql", "path": "${FEAST_REGISTRY_URL}"})
    data_dir = tmp_path / "data"
    env = {"REDIS_URL": redis_url, "FEAST_DATA_DIR": str(data_dir), "FEAST_REGISTRY_URL": f"sqlite:///{registry_db}"}
    _round_trip(repo, env, market, monkeypatch)
    assert registry_db.is_file()
    # Our commands used the SQL registry: no file registry appeared in its place.
    assert not list(tmp_path.rglob("registry.db"))
    password = parse_redis_url(redis_url).password
    assert password and _files_holding(data_dir, password) == []
