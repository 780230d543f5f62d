"""``feast plan`` and a second ``feast apply`` change nothing after a materialization, file or SQL registry.

Before the fix every view was reported "Updated feature view" once an interval was recorded (by our writers or by
stock ``materialize``): the stored view's sources had been read back as stock classes with new timestamps
(``ingestion.store.feast_sources`` explains the mechanism). The unit test shows the mechanism on Feast's objects;
the others run the real CLI as a team's CI does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
from feast.diff.property_diff import TransitionType
from feast.diff.registry_diff import diff_registry_objects
from feast.infra.registry.registry import FeastObjectType
from feast.types import String
from fixtures.feast_repo_copy import plain_feast, repo_copy

from ingestion import datasets
from ingestion.config import Settings
from ingestion.store.feast_repo import feast_cli, open_store
from ingestion.store.feast_sources import DatasetPushSource, DatasetSource
from ingestion.store.online.materialize import record_interval

START, END = datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC)


def _view(file_cls: type[FileSource], push_cls: type[PushSource]) -> FeatureView:
    ticker = Entity(name="ticker", join_keys=["symbol"], value_type=ValueType.STRING)
    batch = file_cls(name="q_source", path="/d/offline/q/**/*.parquet", timestamp_field="event_timestamp")
    return FeatureView(
        name="q",
        entities=[ticker],
        ttl=timedelta(days=1),
        schema=[Field(name="symbol", dtype=String)],
        source=push_cls(name="q", batch_source=batch),
    )


def _stored_after_materialization(view: FeatureView) -> FeatureView:
    """What the registry holds after ``apply`` then ``apply_materialization``: two proto round trips."""
    stored = FeatureView.from_proto(view.to_proto())
    stored.materialization_intervals.append((START, END))
    return FeatureView.from_proto(stored.to_proto())


@pytest.mark.parametrize(
    ("classes", "changed"),
    [((FileSource, PushSource), ["batch_source", "stream_source"]), ((DatasetSource, DatasetPushSource), [])],
    ids=["stock-feast-classes", "ours"],
)
def test_a_stored_view_diffs_against_a_fresh_parse(classes: tuple[type, type], changed: list[str]) -> None:
    stored = _stored_after_materialization(_view(*classes))
    assert [type(stored.batch_source), type(stored.stream_source)] == [
        FileSource if classes[0] is FileSource else DatasetSource,
        PushSource if classes[1] is PushSource else DatasetPushSource,
    ]
    time.sleep(0.002)  # a later `feast plan` parses the repo later: its sources are stamped later
    diff = diff_registry_objects(stored, _view(*classes), FeastObjectType.FEATURE_VIEW)
    assert sorted(p.property_name for p in diff.feast_object_property_diffs) == changed
    assert diff.transition_type == (TransitionType.UPDATE if changed else TransitionType.UNCHANGED)


def _materialize_everything(store: FeatureStore) -> None:
    """Intervals as our writers record them, for every view, then Feast's own materialize over them."""
    for view in datasets.FEATURE_DATASETS:
        record_interval(store, view.name, START, END)
    store.materialize(START, END, feature_views=[datasets.OHLCV_DAILY.name, datasets.REALTIME_QUOTES.name])


def _assert_no_registry_changes(output: str) -> None:
    assert "Updated" not in output, output
    assert "Created" not in output and "Deleted" not in output, output


def test_plan_and_reapply_after_materialization_change_nothing(make_applied_repo: Callable[[], Settings]) -> None:
    s = make_applied_repo()
    assert s.redis_url
    store = open_store(s, s.redis_url)
    _materialize_everything(store)
    assert all(v.materialization_intervals for v in store.list_feature_views())

    plan = feast_cli(s, s.redis_url, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "No changes to registry" in plan.stdout
    _assert_no_registry_changes(plan.stdout)
    again = feast_cli(s, s.redis_url, "apply")
    assert again.returncode == 0, again.stderr
    _assert_no_registry_changes(again.stdout)
    # The re-apply kept what the writers recorded.
    views = open_store(s, s.redis_url).list_feature_views()
    assert all((START, END) in v.materialization_intervals for v in views)


def test_plan_after_materialization_with_a_sql_registry(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path
    repo = repo_copy(root, {"registry_type": "sql", "path": "${FEAST_REGISTRY_URL}"})
    env = {
        "REDIS_URL": redis_url,
        "FEAST_DATA_DIR": str(root / "data"),
        "FEAST_REGISTRY_URL": f"sqlite:///{root / 'registry.sqlite'}",
    }
    applied = plain_feast(repo, env, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _materialize_everything(FeatureStore(repo_path=str(repo)))

    plan = plain_feast(repo, env, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "No changes to registry" in plan.stdout
    _assert_no_registry_changes(plan.stdout)
