"""On-demand outputs online are computed from the same inputs as offline: an input older than its view's ttl is null.

The offline point-in-time join hands an on-demand transform a null for an input older than its view's ttl; the
online read must too, so the transform's output (not only the plain values) is what training saw. Before the fix,
Feast's Redis read handed the transform the stale stored value and only the plain columns were nulled afterwards:
``close_filled`` read the July close online where training saw ``-1``.

Real Redis, real Feast (``get_online_features`` and ``get_historical_features`` at one instant), on-demand views in
pandas and python mode over two source views, applied into an isolated registry (``feature_repo/`` ships none).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from feast import FeatureService, FeatureStore, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64
from fixtures.store import dataset_frame

from ingestion import cli
from ingestion.config import Settings
from ingestion.datasets import OHLCV_DAILY, OPTIONS_FLOW_DAILY
from ingestion.ops.skew import measure_skew
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import OnlineWriter, materialize_latest

READ_AT = pd.Timestamp("2024-06-10 12:00:00", tz="UTC")
STALE, EDGE, FRESH = "ODFVINSTALE", "ODFVINEDGE", "ODFVINFRESH"
SYMBOLS = [STALE, EDGE, FRESH]
SKEWED = "ODFVINSKEW"  # given an online-only row by the skew test, read by no other test
OUTPUTS = ["close_filled", "premium_per_close", "close_or_sentinel"]
REFS = [
    "ohlcv_daily:close",
    "close_pandas:close_filled",
    "close_pandas:premium_per_close",
    "close_python:close_or_sentinel",
]


@pytest.fixture(scope="module")
def isolated_repo(feast_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The repo applied into a data dir (and so a registry) of this module's own: the views below stay here."""
    from ingestion.store.feast_repo import feast_cli

    settings = replace(feast_settings, data_dir=tmp_path_factory.mktemp("odfv_data"))
    assert settings.redis_url is not None
    result = feast_cli(settings, settings.redis_url, "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    return settings


@pytest.fixture(scope="module")
def store(isolated_repo: Settings) -> FeatureStore:
    settings = isolated_repo
    assert settings.redis_url and OHLCV_DAILY.ttl is not None
    store = open_store(settings, settings.redis_url)
    daily = store.get_feature_view("ohlcv_daily")
    flow = store.get_feature_view("options_flow_daily")

    @on_demand_feature_view(  # type: ignore[untyped-decorator]
        sources=[daily[["close"]], flow[["call_premium"]]],
        schema=[Field(name="close_filled", dtype=Float64), Field(name="premium_per_close", dtype=Float64)],
        mode="pandas",
    )
    def close_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
        # fillna shows the transform itself saw a null, not that a null output was patched in afterwards.
        return pd.DataFrame(
            {
                "close_filled": inputs["close"].fillna(-1.0),
                "premium_per_close": inputs["call_premium"] / inputs["close"],
            }
        )

    @on_demand_feature_view(  # type: ignore[untyped-decorator]
        sources=[daily[["close"]]], schema=[Field(name="close_or_sentinel", dtype=Float64)], mode="python"
    )
    def close_python(inputs: dict[str, Any]) -> dict[str, Any]:
        # Offline hands a python transform None (not NaN) for an expired input: online must too.
        return {"close_or_sentinel": [-2.0 if c is None else c for c in inputs["close"]]}

    service = FeatureService(
        name="odfv_stale_inputs",
        features=[daily[["close"]], close_pandas, close_python],
        precompute_online=True,
    )
    # What skew compares: a python-mode output is left out, as Feast 0.67 drops it online under full names.
    skew_service = FeatureService(name="odfv_skew", features=[daily[["close"]], close_pandas], precompute_online=True)
    store.apply([close_pandas, close_python, service, skew_service])
    writer = OfflineWriter(settings.data_dir)
    bars = dataset_frame(OHLCV_DAILY, [*SYMBOLS, SKEWED], "2024-06-01", 1, seed=7, null_share=0.0)
    # One a microsecond past the ttl, one exactly at its edge (fresh by the join's >= rule), two fresh.
    bars["event_timestamp"] = [
        READ_AT - OHLCV_DAILY.ttl - timedelta(microseconds=1),
        READ_AT - OHLCV_DAILY.ttl,
        READ_AT - timedelta(hours=1),
        READ_AT - timedelta(hours=3),
    ]
    writer.append(OHLCV_DAILY, bars)
    flows = dataset_frame(OPTIONS_FLOW_DAILY, [*SYMBOLS, SKEWED], "2024-06-07", 1, seed=8, null_share=0.0)
    flows["event_timestamp"] = [READ_AT - timedelta(hours=2)] * 4
    writer.append(OPTIONS_FLOW_DAILY, flows)
    for dataset in (OHLCV_DAILY, OPTIONS_FLOW_DAILY):
        assert materialize_latest(store, dataset, settings.data_dir).written == 4
    store.config.online_store.read_at = READ_AT.to_pydatetime()
    return store


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _by_symbol(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    columns = ["close", *OUTPUTS]
    return {
        row["symbol"]: {c: (None if _missing(row[c]) else float(row[c])) for c in columns}
        for row in frame.to_dict("records")
    }


def _offline(store: FeatureStore) -> dict[str, dict[str, object]]:
    entity = pd.DataFrame({"symbol": SYMBOLS, "event_timestamp": [READ_AT] * len(SYMBOLS)})
    return _by_symbol(store.get_historical_features(entity_df=entity, features=REFS).to_df())


def test_offline_hands_the_transform_a_null_for_an_input_past_its_ttl(store: FeatureStore) -> None:
    offline = _offline(store)
    assert offline[STALE] == {
        "close": None,
        "close_filled": -1.0,
        "premium_per_close": None,
        "close_or_sentinel": -2.0,
    }
    for symbol in (EDGE, FRESH):
        close = offline[symbol]["close"]
        assert close is not None
        assert offline[symbol]["close_filled"] == offline[symbol]["close_or_sentinel"] == close


@pytest.mark.parametrize("features", ["refs", "service"])
def test_on_demand_outputs_online_equal_offline_at_the_same_instant(store: FeatureStore, features: str) -> None:
    wanted: Any = REFS if features == "refs" else store.get_feature_service("odfv_stale_inputs")
    rows = [{"symbol": s} for s in SYMBOLS]
    online = _by_symbol(store.get_online_features(features=wanted, entity_rows=rows).to_df())
    assert online == _offline(store)


def test_the_async_read_computes_from_the_same_nulls(store: FeatureStore) -> None:
    rows = [{"symbol": s} for s in SYMBOLS]
    response = asyncio.run(store.get_online_features_async(features=REFS, entity_rows=rows))
    assert _by_symbol(response.to_df()) == _offline(store)


def test_full_feature_names_and_an_unrequested_input_view(store: FeatureStore) -> None:
    """The transform's inputs expire even when their view is not among the requested features."""
    rows = [{"symbol": s} for s in SYMBOLS]
    got = store.get_online_features(
        features=["close_pandas:close_filled"], entity_rows=rows, full_feature_names=True
    ).to_dict()
    offline = _offline(store)
    assert got["close_pandas__close_filled"] == [offline[s]["close_filled"] for s in SYMBOLS]
    assert got["close_pandas__close_filled"][0] == -1.0


def test_an_earlier_read_instant_computes_from_the_stored_value(store: FeatureStore) -> None:
    """Nothing is deleted: replaying a day earlier, the transform sees the stale entity's close."""
    before = store.config.online_store.read_at
    try:
        store.config.online_store.read_at = (READ_AT - timedelta(days=1)).to_pydatetime()
        got = _by_symbol(store.get_online_features(features=REFS, entity_rows=[{"symbol": STALE}]).to_df())[STALE]
    finally:
        store.config.online_store.read_at = before
    assert got["close"] is not None and got["close_filled"] == got["close_or_sentinel"] == got["close"]


def test_skew_covers_on_demand_outputs_and_names_the_one_that_differs(
    isolated_repo: Settings,
    store: FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    symbols = [*SYMBOLS, SKEWED]
    consistent = measure_skew(store, symbols, services=["odfv_skew"], at=READ_AT.to_pydatetime())
    assert consistent.differences == 0, consistent.table()
    compared = {(f.view, f.feature): f.compared for f in consistent.features}
    assert compared == {
        ("ohlcv_daily", "close"): 4,
        ("close_pandas", "close_filled"): 4,
        ("close_pandas", "premium_per_close"): 4,
    }

    # A python-mode output Feast drops online under full names is reported for every symbol, not a crash.
    python_mode = measure_skew(store, symbols, services=["odfv_stale_inputs"], at=READ_AT.to_pydatetime())
    dropped = {(f.view, f.feature): f for f in python_mode.features}[("close_python", "close_or_sentinel")]
    assert dropped.different == 4 and dropped.example.startswith(f"{STALE}: <absent> != ")

    # An online-only row (a stream write the offline store never got): the on-demand outputs computed from it
    # now differ from training's, and skew names them.
    row = dataset_frame(OHLCV_DAILY, [SKEWED], READ_AT - timedelta(minutes=30), 1, seed=9, null_share=0.0)
    row["close"] = 12345.5
    OnlineWriter(store, record_every_s=None).write("ohlcv_daily", row)
    skewed = measure_skew(store, symbols, services=["odfv_skew"], at=READ_AT.to_pydatetime())
    by_name = {(f.view, f.feature): f for f in skewed.features}
    assert by_name[("close_pandas", "close_filled")].different == 1
    assert by_name[("close_pandas", "close_filled")].example.startswith(f"{SKEWED}: 12345.5 != ")
    assert by_name[("close_pandas", "premium_per_close")].different == 1

    # The command: a non-zero exit and a table line naming the on-demand feature.
    assert isolated_repo.redis_url
    monkeypatch.setenv("REDIS_URL", isolated_repo.redis_url)
    monkeypatch.setenv("FEAST_DATA_DIR", str(isolated_repo.data_dir))
    monkeypatch.setenv("FEAST_REPO_PATH", str(isolated_repo.repo_path))
    argv = ["skew", "--services", "odfv_skew", "--symbols", ",".join(symbols), "--at", READ_AT.isoformat()]
    assert cli.main(argv) == 1
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["odfv_skew", "close_pandas", "close_filled", "4", "1"] in [line[:5] for line in lines]
