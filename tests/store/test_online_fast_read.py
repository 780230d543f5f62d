"""The fast service read answers exactly what Feast's own reads answer: values, names, statuses, event times.

Real Redis, real Feast, our store class. Rows of every view of both services are written with nulls among them,
then read at a fixed instant with one symbol's daily bar older than the view's ttl, one symbol never written, and
a repeated symbol, by three paths: the fast read, Feast's own pre-computed vector path (the fast read turned off),
and Feast's per-view read of the same feature references. The column decoders are checked value by value against
Feast's ``feast_value_type_to_python_type``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from feast import FeatureService, FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType

from ingestion.bench.offline_append import synthetic_frame
from ingestion.config import Settings
from ingestion.datasets import get
from ingestion.store.feast_online import EnvRedisOnlineStore
from ingestion.store.feast_repo import open_store
from ingestion.store.online import OnlineWriter
from ingestion.store.online.fast_read import VectorResponse, decoder

READ_AT = pd.Timestamp("2024-06-10 12:00:00", tz="UTC")
SERVICES = ("daily_model", "intraday_model")
FRESH = ["FASTA", "FASTB", "FASTC"]
STALE, MISSING = "FASTSTALE", "FASTNONE"


@pytest.fixture(scope="module")
def store(applied_repo: Settings) -> Iterator[FeatureStore]:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    writer = OnlineWriter(store, record_every_s=None)
    views = sorted({p.name for s in SERVICES for p in store.get_feature_service(s).feature_view_projections})
    start = READ_AT - timedelta(hours=2)
    for i, view in enumerate(views):
        frame = synthetic_frame(get(view), [*FRESH, STALE], start, 1, seed=40 + i, null_share=0.3)
        if view == "ohlcv_daily":
            frame.loc[frame["symbol"] == STALE, "event_timestamp"] = READ_AT - get(view).ttl - timedelta(seconds=1)
        writer.write(view, frame, record=False)
    writer.close()
    store.config.online_store.read_at = READ_AT.to_pydatetime()
    yield store


def _refs(service: FeatureService) -> list[str]:
    return [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]


def _plain(d: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """NaN-safe comparison form."""
    return {k: ["nan" if isinstance(v, float) and math.isnan(v) else v for v in vs] for k, vs in d.items()}


ROWS = [{"symbol": s} for s in [*FRESH, STALE, MISSING, FRESH[0]]]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("full", [False, True])
def test_the_fast_read_equals_feasts_own_reads(
    store: FeatureStore, name: str, full: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = store.get_feature_service(name)
    fast = store.get_online_features(features=service, entity_rows=ROWS, full_feature_names=full)
    assert isinstance(fast, VectorResponse)
    fast_dict = _plain(fast.to_dict())
    with_ts = fast.to_dict(include_event_timestamps=True)
    per_view = store.get_online_features(features=_refs(service), entity_rows=ROWS, full_feature_names=full)
    assert not isinstance(per_view, VectorResponse)
    assert fast_dict == _plain(per_view.to_dict())
    assert _plain(with_ts) == _plain(per_view.to_dict(include_event_timestamps=True))
    # Feast's pre-computed vector path, with the fast read turned off.
    monkeypatch.setattr(EnvRedisOnlineStore, "fast_read", lambda *a, **k: None)
    vector = store.get_online_features(features=service, entity_rows=ROWS, full_feature_names=full)
    assert fast_dict == _plain(vector.to_dict())
    # Column-wise columns against rows, and a value actually present, null and expired.
    close = "ohlcv_daily__close" if full else "close"
    if close in fast_dict:
        assert fast_dict[close][3] is None and fast_dict[close][4] is None
    assert any(v is not None for k, vs in fast_dict.items() if k != "symbol" for v in vs)


@pytest.mark.parametrize("name", SERVICES)
def test_the_fast_proto_is_feasts_message(store: FeatureStore, name: str) -> None:
    service = store.get_feature_service(name)
    fast = store.get_online_features(features=service, entity_rows=ROWS).proto
    per_view = store.get_online_features(features=_refs(service), entity_rows=ROWS).proto
    # Feast orders a view's features as a set does (hash order, per process); ours keep the service's order.
    names = list(fast.metadata.feature_names.val)
    theirs_by_name = dict(zip(per_view.metadata.feature_names.val, per_view.results, strict=True))
    assert names[0] == "symbol" and sorted(names) == sorted(theirs_by_name)
    found = [0, 1, 2, 3, 5]  # rows whose symbol was written (the missing one is checked apart)
    for feature, ours in zip(names, fast.results, strict=True):
        theirs = theirs_by_name[feature]
        assert [ours.values[i] for i in found] == [theirs.values[i] for i in found]
        assert [ours.statuses[i] for i in found] == [theirs.statuses[i] for i in found]
        got = [(t.seconds, t.nanos // 1000) for t in ours.event_timestamps]
        want = [(t.seconds, t.nanos // 1000) for t in theirs.event_timestamps]
        assert [got[i] for i in found] == [want[i] for i in found]
        assert ours.values[4] == (Value(string_val=MISSING) if feature == "symbol" else Value())
    for feature, vector in zip(names[1:], fast.results[1:], strict=True):
        assert vector.statuses[4] == FieldStatus.NOT_FOUND, feature
    if name == "daily_model":
        close = fast.results[names.index("close")]
        assert close.statuses[3] == FieldStatus.OUTSIDE_MAX_AGE and close.statuses[0] == FieldStatus.PRESENT


def test_a_changed_proto_is_what_to_dict_returns(store: FeatureStore) -> None:
    response = store.get_online_features(features=store.get_feature_service("daily_model"), entity_rows=ROWS[:1])
    names = list(response.proto.metadata.feature_names.val)
    response.proto.results[names.index("close")].values[0].Clear()
    assert response.to_dict()["close"] == [None]


def test_columnar_entity_rows_and_other_shapes(store: FeatureStore) -> None:
    service = store.get_feature_service("daily_model")
    by_rows = store.get_online_features(features=service, entity_rows=ROWS).to_dict()
    columnar = store.get_online_features(features=service, entity_rows={"symbol": [r["symbol"] for r in ROWS]})
    assert isinstance(columnar, VectorResponse)
    assert _plain(columnar.to_dict()) == _plain(by_rows)
    assert store.get_online_features(features=service, entity_rows=[{"symbol": MISSING}]).to_dict()["close"] == [None]


SAMPLES: dict[ValueType, list[Any]] = {
    ValueType.DOUBLE: [0.0, -0.0, 1.5, -2.25e300, float("inf"), float("nan"), 1e-310],
    ValueType.FLOAT: [0.0, 1.5, -3.25, float("inf")],
    ValueType.INT64: [0, 1, 127, 128, 300, -1, -(2**63), 2**63 - 1, 10**12],
    ValueType.INT32: [0, 5, 127, 128, -1, -(2**31), 2**31 - 1],
    ValueType.BOOL: [True, False],
    ValueType.STRING: ["", "a", "é" * 100],
    ValueType.UNIX_TIMESTAMP: [0, 1_700_000_000],
}
FIELD = {
    ValueType.DOUBLE: "double_val",
    ValueType.FLOAT: "float_val",
    ValueType.INT64: "int64_val",
    ValueType.INT32: "int32_val",
    ValueType.BOOL: "bool_val",
    ValueType.STRING: "string_val",
    ValueType.UNIX_TIMESTAMP: "unix_timestamp_val",
}


@pytest.mark.parametrize("value_type", list(SAMPLES))
def test_column_decoders_equal_feasts(value_type: ValueType) -> None:
    protos = [Value(**{FIELD[value_type]: v}) for v in SAMPLES[value_type]] + [Value()]
    raw: list[bytes | None] = [p.SerializeToString() for p in protos] + [None]
    want = [feast_value_type_to_python_type(p, value_type) for p in protos] + [None]
    decode = decoder(value_type)
    # With nulls (the per-value path) and without (a float column's one-unpack path), mixed and alone.
    for column in (raw, raw[:-2], raw[:1]):
        expected = want[: len(column)]
        assert _plain({"v": decode(column)}) == _plain({"v": expected})
