"""The expiry inside Feast's per-view read, on hand-built responses (pure unit tests, no Redis).

Feast's Redis read appends each view's requested features, then its ``_ts:<view>`` column; the store walks that
layout, nulls what is past each view's ttl, and leaves a response laid out any other way alone (logged), so the
expiry after the read still applies.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from ingestion.store.feast_online import EnvRedisOnlineStore

NOW = datetime(2024, 6, 10, 12, tzinfo=UTC)
CONFIG: Any = SimpleNamespace(online_store=SimpleNamespace(read_at=NOW))


def _table(name: str, ttl: timedelta | None) -> Any:
    return SimpleNamespace(name=name, ttl=ttl, projection=SimpleNamespace(name_to_use=lambda: name), features=[])


def _vector(response: GetOnlineFeaturesResponse, name: str, ages: list[timedelta]) -> None:
    response.metadata.feature_names.val.append(name)
    vector = response.results.add()
    for age in ages:
        ts = Timestamp()
        ts.FromDatetime(NOW - age)
        vector.values.append(Value(double_val=1.0))
        vector.statuses.append(FieldStatus.PRESENT)
        vector.event_timestamps.append(ts)


def _response(*, ts_column: str = "_ts:daily") -> GetOnlineFeaturesResponse:
    """An entity column, then ``daily`` (ttl 1h: close, _ts) and ``forever`` (no ttl: close, _ts)."""
    response = GetOnlineFeaturesResponse()
    response.metadata.feature_names.val.append("symbol")
    response.results.add().values.append(Value(string_val="A"))
    ages = [timedelta(hours=2), timedelta(minutes=5)]
    _vector(response, "close", ages)
    _vector(response, ts_column, ages)
    _vector(response, "close", ages)
    _vector(response, "_ts:forever", ages)
    return response


REQUESTED = [(_table("daily", timedelta(hours=1)), ["close"]), (_table("forever", None), ["close"])]


def _present(response: GetOnlineFeaturesResponse, index: int) -> list[bool]:
    return [v.HasField("double_val") for v in response.results[index].values]


def test_values_past_their_views_ttl_are_nulled_in_feasts_layout() -> None:
    response = _response()
    EnvRedisOnlineStore()._expire_read(CONFIG, response, 1, REQUESTED, False)
    assert _present(response, 1) == [False, True]
    assert list(response.results[1].statuses) == [FieldStatus.OUTSIDE_MAX_AGE, FieldStatus.PRESENT]
    assert _present(response, 3) == [True, True]  # the view without a ttl


def test_an_unexpected_layout_is_left_alone_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    response = _response(ts_column="close_extra")  # not a store column: the walk no longer lines up
    with caplog.at_level(logging.WARNING, logger="ingestion.store.feast_online"):
        EnvRedisOnlineStore()._expire_read(CONFIG, response, 1, REQUESTED, False)
    assert _present(response, 1) == [True, True]
    assert "layout is not the expected one" in caplog.text
