"""The feature repo against real Feast and a real Redis: apply, plan, online reads before and after a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from feast import PushSource

from ingestion import datasets
from ingestion.config import Settings
from ingestion.store.feast_repo import feast_cli, open_store
from ingestion.store.feast_sources import DatasetPushSource

SERVICES = {
    "daily_model": ["ohlcv_daily", "options_flow_daily", "dark_pool_daily", "insider_activity", "etf_flow_daily"],
    "intraday_model": ["realtime_quotes", "ohlcv_minute", "ohlcv_daily", "options_flow_daily", "options_flow_intraday"],
}


def test_apply_registers_every_dataset(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {d.name for d in datasets.FEATURE_DATASETS}
    for d in datasets.FEATURE_DATASETS:
        view = views[d.name]
        assert [f.name for f in view.features] == [c.name for c in d.features]
        assert view.ttl == d.ttl
        assert view.tags["event_time_rule"] == d.event_time_rule
        assert view.entities == ["ticker"]
    assert {fs.name for fs in store.list_feature_services()} == set(SERVICES)
    push = store.get_data_source("realtime_quotes_push")
    # A PushSource to Feast (push, the feature server), of our class so that it survives the registry round trip.
    assert isinstance(push, PushSource) and type(push) is DatasetPushSource


def test_plan_after_apply_reports_no_changes(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    result = feast_cli(applied_repo, applied_repo.redis_url, "plan")
    assert result.returncode == 0, result.stderr
    assert "No changes to registry" in result.stdout
    assert "No changes to infrastructure" in result.stdout


def _declared(store: object, service_name: str) -> list[str]:
    service = store.get_feature_service(service_name)  # type: ignore[attr-defined]
    return [f.name for proj in service.feature_view_projections for f in proj.features]


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_online_features_null_before_data(applied_repo: Settings, service_name: str) -> None:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    service = store.get_feature_service(service_name)
    assert sorted(p.name for p in service.feature_view_projections) == sorted(SERVICES[service_name])
    frame = store.get_online_features(features=service, entity_rows=[{"symbol": "ZZZZ"}]).to_df()
    declared = _declared(store, service_name)
    assert sorted(frame.columns) == sorted(["symbol", *declared])
    assert frame.drop(columns=["symbol"]).isna().all().all()


def test_online_features_after_write(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = pd.DataFrame(
        {
            "symbol": ["AAPL", "MSFT"],
            "event_timestamp": [now - timedelta(days=1), now],
            "created_timestamp": [now, now],
            "open": [1.0, 2.0],
            "high": [1.5, 2.5],
            "low": [0.5, 1.5],
            "close": [1.25, 2.25],
            "volume": [1000.0, 2000.0],
            "vwap": [1.1, 2.1],
            "transactions": [10, 20],
            "return_1d": [0.01, -0.02],
            "return_5d": [0.05, None],
            "return_20d": [None, None],
            "realized_vol_20d": [0.2, 0.3],
            "volume_zscore_20d": [1.0, -1.0],
            "gap_pct": [0.0, 0.001],
            "range_pct": [0.8, 0.44],
            "total_return_1d": [0.01, -0.02],
            "split_factor": [1.0, 1.0],
        }
    )
    store.write_to_online_store("ohlcv_daily", rows)
    frame = store.get_online_features(
        features=store.get_feature_service("daily_model"),
        entity_rows=[{"symbol": "MSFT"}, {"symbol": "AAPL"}, {"symbol": "NOPE"}],
    ).to_df()
    by_symbol = frame.set_index("symbol")
    assert by_symbol.loc["MSFT", "close"] == 2.25
    assert by_symbol.loc["AAPL", "close"] == 1.25
    assert by_symbol.loc["AAPL", "transactions"] == 10
    assert pd.isna(by_symbol.loc["MSFT", "return_5d"])
    assert pd.isna(by_symbol.loc["NOPE", "close"])
    # Views with no data stay null for a symbol that has daily bars.
    assert pd.isna(by_symbol.loc["AAPL", "call_premium"])
