"""``skew``: 0 differences on a consistent store; on an inconsistent one, the view and feature that differ.

Real Redis, real Feast, our online store and our offline store: rows landed offline and materialized, then read
back both ways at one fixed instant (2024 rows, so the instant is given, as ``--at`` would).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from feast import FeatureStore
from fixtures.store import dataset_frame

from ingestion import cli
from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY, OPTIONS_FLOW_DAILY
from ingestion.ops.skew import measure_skew
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import OnlineWriter, materialize_latest

AT = pd.Timestamp("2024-06-12 21:30:00", tz="UTC")
SYMBOLS = ["SKWA", "SKWB", "SKWOLD"]


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> FeatureStore:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    offline = OfflineWriter(applied_repo.data_dir)
    for i, dataset in enumerate((OHLCV_DAILY, OPTIONS_FLOW_DAILY)):
        frame = dataset_frame(dataset, SYMBOLS[:2], "2024-06-07 20:00", 5, seed=20 + i)
        old = dataset_frame(dataset, SYMBOLS[2:], "2024-05-01 20:00", 3, seed=30 + i)  # expired at AT: null both ways
        offline.append(dataset, pd.concat([frame, old], ignore_index=True))
        materialize_latest(store, dataset, applied_repo.data_dir)
    return store


def test_skew_is_zero_on_a_consistent_store_and_names_the_feature_otherwise(
    applied_repo: Settings,
    store: FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    consistent = measure_skew(store, SYMBOLS, at=AT.to_pydatetime())
    assert consistent.differences == 0, consistent.table()
    assert sum(f.compared for f in consistent.features) > 0
    ohlcv_close = [
        f for f in consistent.features if (f.service, f.view, f.feature) == ("daily_model", "ohlcv_daily", "close")
    ]
    assert ohlcv_close and ohlcv_close[0].compared == len(SYMBOLS)

    # An online-only row (a stream write the offline store never got): serving now differs from training.
    row = dataset_frame(OHLCV_DAILY, ["SKWA"], "2024-06-12 20:00", 1, seed=40, null_share=0.0)
    row["close"] = 12345.5
    OnlineWriter(store, record_every_s=None).write("ohlcv_daily", row)
    skewed = measure_skew(store, SYMBOLS, at=AT.to_pydatetime())
    by_name = {(f.service, f.view, f.feature): f for f in skewed.features}
    close = by_name[("daily_model", "ohlcv_daily", "close")]
    assert close.different == 1 and close.example.startswith("SKWA: 12345.5 != ")
    assert by_name[("daily_model", "options_flow_daily", "sweep_count")].different == 0
    assert "ohlcv_daily" in skewed.table() and skewed.differences >= 1

    # The command: the same table, and a non-zero exit.
    assert applied_repo.redis_url
    monkeypatch.setenv("REDIS_URL", applied_repo.redis_url)
    monkeypatch.setenv("FEAST_DATA_DIR", str(applied_repo.data_dir))
    monkeypatch.setenv("FEAST_REPO_PATH", str(applied_repo.repo_path))
    code = cli.main(["skew", "--symbols", ",".join(SYMBOLS), "--at", (AT + timedelta(0)).isoformat()])
    out = capsys.readouterr().out
    assert code == 1
    assert any(line.split()[:3] == ["daily_model", "ohlcv_daily", "close"] for line in out.splitlines())


def test_health_skew_check_fails_on_a_fresh_online_only_value(store: FeatureStore) -> None:
    from ingestion.ops.health import check_skew

    row = dataset_frame(OHLCV_DAILY, ["SKWNOW"], pd.Timestamp.now(tz="UTC").floor("s") - timedelta(hours=1), 1, seed=41)
    row["close"] = 1.5
    OnlineWriter(store, record_every_s=None).write("ohlcv_daily", row)
    check = check_skew(store, ["SKWNOW"])
    assert not check.ok and "ohlcv_daily:close" in check.detail
