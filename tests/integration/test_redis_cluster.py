"""Feast's online store and our Redis clients on a real 3-node Redis Cluster started from the same binary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from redis.cluster import RedisCluster

from ingestion.config import Settings
from ingestion.store.feast_repo import feast_cli, open_store
from ingestion.store.redis_conn import connect
from ingestion.store.redis_server import RedisClusterServers


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with RedisClusterServers(3) as cluster:
        yield cluster.url


@pytest.fixture(scope="module")
def cluster_settings(feast_settings: Settings, cluster_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = replace(feast_settings, data_dir=Path(tmp_path_factory.mktemp("cluster-data")), redis_url=cluster_url)
    result = feast_cli(s, cluster_url, "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    return s


def test_client_spreads_keys_over_the_nodes(cluster_url: str) -> None:
    client = connect(cluster_url)
    for i in range(50):
        client.set(f"probe:{i}", i)
    assert int(client.get("probe:42") or 0) == 42
    assert isinstance(client, RedisCluster)
    owners = {client.get_node_from_key(f"probe:{i}").name for i in range(50)}
    assert len(owners) == 3


def test_feast_apply_write_and_read_on_cluster(cluster_settings: Settings) -> None:
    assert cluster_settings.redis_url
    store = open_store(cluster_settings, cluster_settings.redis_url)
    assert store.config.online_store.redis_type == "redis_cluster"
    now = datetime.now(UTC).replace(microsecond=0)
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA"]
    rows = pd.DataFrame(
        {
            "symbol": symbols,
            "event_timestamp": [now] * len(symbols),
            "created_timestamp": [now] * len(symbols),
            **{c: [float(i + 1) for i in range(len(symbols))] for c in ("open", "high", "low", "close", "volume")},
            "vwap": [1.0] * len(symbols),
            "transactions": list(range(len(symbols))),
            "source": "polygon",  # the bar's origin is a feature of the view: Feast's write asks for it
        }
    )
    store.write_to_online_store("ohlcv_minute", rows)
    frame = store.get_online_features(
        features=["ohlcv_minute:close", "ohlcv_minute:transactions"], entity_rows=[{"symbol": s} for s in symbols]
    ).to_df()
    assert frame.set_index("symbol").loc["TSLA", "close"] == 6.0
    assert frame.set_index("symbol").loc["AAPL", "transactions"] == 0
    # The service's pre-computed vector was written with the values (script calls routed per key on a cluster).
    vector = store.get_online_features(
        features=store.get_feature_service("intraday_model"),
        entity_rows=[{"symbol": s} for s in symbols],
        full_feature_names=True,
    ).to_df()
    assert vector.set_index("symbol").loc["TSLA", "ohlcv_minute__close"] == 6.0
