"""The rest of the offline store on S3 (moto's real S3 server on loopback): the flow backfill, ``compact`` and
``quarantine list|replay`` with ``FEAST_DATA_DIR=s3://bucket/prefix``.

* A flow backfill (Unusual Whales simulator, with the Polygon daily bars its dark-pool share divides by) to S3
  stores the same rows as the same backfill to disk, and ``get_historical_features`` over every flow view returns
  the same frame row for row.
* ``compact`` on S3 leaves ``get_historical_features`` identical and reduces the visible part files to one a month;
  a compaction killed before its manifest changes nothing a reader sees, a reader sees the inputs or the merged file
  (never both, never neither), a name rewritten after the compaction stays visible (a version is retired, not a
  name), and the retired objects are purged only after the grace period.
* ``quarantine list|replay`` on S3, through the CLI: list, requeue under a new reason, land once.
* ``skew`` on S3: symbols sampled from the committed files, online against offline through the command.

The stream bridge's landing on S3 is tested beside the bridge's other tests (tests/stream/test_bridge_s3.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pandas as pd
import pytest
import redis
from fixtures.chaos import drift_where
from fixtures.s3 import make_s3_repo, s3_endpoint, s3_root  # noqa: F401  (fixtures)
from fixtures.simulators import MakePolygonRest
from fixtures.store import dataset_frame
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion import calendar
from ingestion.cli import main
from ingestion.config import Settings, settings
from ingestion.datasets import (
    CREATED_TS,
    DARK_POOL_DAILY,
    ENTITY_KEY,
    EVENT_TS,
    FLOW_ALERTS,
    OHLCV_DAILY,
    OPTIONS_FLOW_DAILY,
    QUARANTINE,
    Dataset,
)
from ingestion.jobs import quality
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.flow import FLOW_DATASETS, backfill_flow
from ingestion.jobs.quality import QualityReport
from ingestion.ops.skew import sample_symbols
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import Rejected
from ingestion.runtime import Runtime
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.store import compact_objects, offline_objects
from ingestion.store.compact import compact
from ingestion.store.feast_repo import open_store
from ingestion.store.objectstore import ObjectRoot
from ingestion.store.offline import (
    OfflineWriter,
    dedupe_on_key,
    frames_equal_ignoring_write_time,
    read_dataset,
    visible_files,
)
from ingestion.store.online.materialize import materialize_latest
from ingestion.store.quarantine import Quarantine

START, END = dt.date(2024, 2, 27), dt.date(2024, 3, 5)  # two monthly units; Mar 5 still trading at UW_NOW
SYMBOLS = ["JPM", "SPY"]
NOW = pd.Timestamp(UW_NOW, unit="s", tz="UTC")
FLOW_VIEWS = tuple(ds for ds in FLOW_DATASETS if ds.is_feature_view)
STORED = (*FLOW_DATASETS, OHLCV_DAILY, QUARANTINE)


def _features(views: tuple[Dataset, ...]) -> list[str]:
    return [f"{ds.name}:{c.name}" for ds in views for c in ds.features]


def _runtime(s: Settings, uw_url: str) -> Runtime:
    on_sim = replace(s, uw_base_url=uw_url)
    return Runtime(on_sim, POLYGON_SIM_KEY, UW_SIM_TOKEN, simulated_polygon=True, simulated_uw=True)


def _entity_frame(symbols: list[str], first: str, last: str, times: tuple[str, ...]) -> pd.DataFrame:
    days = [d.date() for d in calendar.sessions(first, last)]
    stamps = [pd.Timestamp(f"{d} {hm}", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days for hm in times]
    return pd.DataFrame([{ENTITY_KEY: s, EVENT_TS: t} for s in symbols for t in stamps])


def _historical(s: Settings, entity: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    assert s.redis_url
    frame: pd.DataFrame = (
        open_store(s, s.redis_url).get_historical_features(entity_df=entity, features=features).to_df()
    )
    return frame.sort_values([ENTITY_KEY, EVENT_TS], kind="stable").reset_index(drop=True)


def _land_flow(s: Settings, polygon_url: str, kit: Any) -> None:
    """Daily bars (the dark-pool share divides by their volume), then the flow backfill, into ``s``'s store."""
    bars = PolygonRESTClient(POLYGON_SIM_KEY, polygon_url, use_cache=False)
    daily = backfill_ohlcv(bars, Sinks.for_settings(s), SYMBOLS, dt.date(2024, 2, 20), END, "day", now=NOW)
    assert daily.ok, daily.errors
    summary = backfill_flow(_runtime(s, kit.sim.url), SYMBOLS, START, END, workers=2, client=kit.client, now=NOW)
    assert summary.ok, summary.errors
    assert summary.rows_written[OPTIONS_FLOW_DAILY.name] > 0 and summary.rows_written[FLOW_ALERTS.name] > 0


def test_flow_backfill_on_s3_equals_local_disk_and_compacts_without_changing_an_answer(
    polygon_rest: Any,
    make_uw_client: MakeKit,
    make_applied_repo: Callable[[], Settings],
    make_s3_repo: Callable[[], Settings],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    local, remote = make_applied_repo(), make_s3_repo()
    root = remote.offline_root
    assert isinstance(root, ObjectRoot)
    kit = make_uw_client()
    _land_flow(local, polygon_rest.url, kit)
    _land_flow(remote, polygon_rest.url, kit)
    assert not (remote.data_dir / "offline").exists()  # every row of the S3 run is on the server

    for ds in STORED:
        a, b = read_dataset(local.offline_root, ds), read_dataset(root, ds)
        assert len(a) == len(b) and frames_equal_ignoring_write_time(a, b, ds), ds.name
    assert read_dataset(root, DARK_POOL_DAILY)["dp_share_of_volume"].notna().any()  # read the bars from S3

    # A rerun on S3 finds its coverage there: no request, no row.
    again = backfill_flow(_runtime(remote, kit.sim.url), SYMBOLS, START, END, workers=2, client=kit.client, now=NOW)
    assert again.api_calls == 0 and sum(again.rows_written.values()) == 0

    features = _features(FLOW_VIEWS)
    entity = _entity_frame(SYMBOLS, "2024-02-26", "2024-03-06", ("09:45", "12:00", "16:20", "18:00"))
    want = _historical(local, entity, features)
    got = _historical(remote, entity, features)
    assert want["alert_count"].notna().sum() > len(entity) // 2 and want["call_premium_5m"].notna().any()
    pd.testing.assert_frame_equal(got, want)

    # Compaction on S3: one visible file a month, the same answers, the same stored rows.
    before = {ds.name: len(visible_files(root, ds)) for ds in STORED}
    merged = {ds.name: compact(root, ds) for ds in STORED}
    after = {ds.name: len(visible_files(root, ds)) for ds in STORED}
    assert sum(after.values()) < sum(before.values())
    for ds in STORED:
        months = compact_objects.partitions(root, ds)
        assert after[ds.name] == len(months) and merged[ds.name].files_after == len(months), ds.name
        assert merged[ds.name].purged == 0  # the inputs stay for the grace period
    for ds in STORED:
        assert frames_equal_ignoring_write_time(
            dedupe_on_key(ds, read_dataset(local.offline_root, ds)), read_dataset(root, ds), ds
        ), ds.name
    pd.testing.assert_frame_equal(_historical(remote, entity, features), want)


def _write(root: Any, day: str, closes: list[float], created: str) -> None:
    """Daily bars of one symbol from ``day`` on (one batch per call), written with ``created`` as write time."""
    frame = dataset_frame(OHLCV_DAILY, ["CMPA"], day, len(closes), freq="D", seed=3)
    frame = frame.assign(close=closes, adjusted=False, **{CREATED_TS: pd.Timestamp(created, tz="UTC")})
    OfflineWriter(root, fsync=False).append(OHLCV_DAILY, frame, use_watermark=False)


def test_compaction_on_s3_switches_readers_in_one_manifest_and_purges_after_the_grace(
    s3_root: ObjectRoot,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = s3_root / "offline" / OHLCV_DAILY.name
    for i, day in enumerate(["2024-01-03", "2024-01-10", "2024-01-17", "2024-01-30"]):
        _write(s3_root, day, [10.0 + i, 20.0 + i, 30.0 + i], f"2024-03-0{i + 1}")  # the last crosses a month
    stored = read_dataset(s3_root, OHLCV_DAILY, resolved=True)
    inputs = offline_objects.committed_files(folder, "2024-01")
    assert len(inputs) == 4

    # Killed between the merged file and its manifest: the merged object exists, no reader sees it.
    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("compaction killed before its manifest")

    monkeypatch.setattr(offline_objects, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        compact(s3_root, OHLCV_DAILY)
    monkeypatch.undo()
    assert any(o.name.startswith("compact-") for o in folder.list())
    assert offline_objects.committed_files(folder, "2024-01") == inputs

    # The rerun writes the same merged object and switches readers in one manifest: before it, the four inputs
    # only; after it, the merged file only (what a reader lists is one or the other, never a mix).
    result = compact(s3_root, OHLCV_DAILY)
    switched = offline_objects.committed_files(folder, "2024-01")
    assert len(switched) == 1 and switched[0].name.startswith("compact-") and not set(switched) & set(inputs)
    assert result.files_before == 5 and result.files_after == 2  # January merged; February's one file left alone
    assert frames_equal_ignoring_write_time(read_dataset(s3_root, OHLCV_DAILY), stored, OHLCV_DAILY)
    assert all(i.head() is not None for i in inputs)  # a reader that listed before the switch can still read them
    assert compact(s3_root, OHLCV_DAILY).partitions_compacted == 0  # nothing left to merge

    # The same name written again after the compaction (same keys: a correction) is a new version: visible.
    _write(s3_root, "2024-01-10", [99.0, 98.0, 97.0], "2024-04-01")
    resolved = read_dataset(s3_root, OHLCV_DAILY, resolved=True).set_index("window_start")
    closes = set(resolved["close"])
    assert {99.0, 98.0, 97.0} <= closes and closes.isdisjoint({11.0, 21.0, 31.0})
    assert len(offline_objects.committed_files(folder, "2024-01")) == 2

    # Past the grace period the retired objects and the manifests that named only them are deleted; the rewritten
    # name is live again, so its object stays.
    manifests_before = len(offline_objects.manifests(folder))
    purged = compact_objects.purge_retired(s3_root, OHLCV_DAILY, older_than=timedelta(0))
    remaining = {o.url for o in folder.list()}
    assert sum(i.url not in remaining for i in inputs) == 3
    assert all(f.url in remaining for f in offline_objects.committed_files(folder))
    assert len(offline_objects.manifests(folder)) < manifests_before and purged >= 3 + 2
    after = read_dataset(s3_root, OHLCV_DAILY, resolved=True).set_index("window_start")
    pd.testing.assert_frame_equal(after, resolved)


BAD_DAYS = ("2024-01-10", "2024-02-07")
VWAP_REASON = "vwap_outside_range: vwap must lie within [low, high]"
STRICTER = "stricter_rule: a check added after the row was quarantined"


def _stricter(frame: pd.DataFrame, *, dataset: str, source: str) -> tuple[pd.DataFrame, list[Rejected], QualityReport]:
    """A later release's check that refuses January's bars and passes the others."""
    january = (pd.to_datetime(frame["window_start"], utc=True) < pd.Timestamp("2024-02-01", tz="UTC")).to_numpy()
    refused = [Rejected(dataset, source, STRICTER, r) for r in frame[january].to_dict("records")]
    return frame[~january], refused, QualityReport()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _reasons(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, int]]:
    groups = orjson.loads(_cli(capsys, "quarantine", "list", "--json"))["groups"]
    return [(g["reason"], g["count"]) for g in groups]


def test_quarantine_list_and_replay_on_s3(
    s3_root: ObjectRoot,  # noqa: F811
    make_polygon_rest: MakePolygonRest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    bad_ms = [int(pd.Timestamp(d).tz_localize(calendar.NEW_YORK).value // 1_000_000) for d in BAD_DAYS]
    sim = make_polygon_rest()
    spoiled: set[int] = set()
    sim.faults.add(Fault.drift(drift_where(lambda r: r.get("t") in spoiled, lambda r: {**r, "vw": r["h"] * 2})))
    for var in ("REDIS_URL", "POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FEAST_DATA_DIR", s3_root.url)
    monkeypatch.setenv("FEAST_LOCAL_DIR", str(tmp_path))
    sinks = Sinks.for_settings(settings())
    client = PolygonRESTClient(POLYGON_SIM_KEY, sim.url, use_cache=False)
    months = ((dt.date(2024, 1, 2), dt.date(2024, 1, 31)), (dt.date(2024, 2, 1), dt.date(2024, 2, 29)))
    for (first, last), bad in zip(months, bad_ms, strict=True):
        # Two runs, each spoiling one bar: two quarantine batches (two part files) for compaction to merge.
        spoiled.clear()
        spoiled.add(bad)
        landed = backfill_ohlcv(client, sinks, ["AAPL"], first, last, "day")
        assert landed.ok and landed.quarantined["ohlcv_daily"] == 1
    assert not (tmp_path / "offline").exists()
    assert _reasons(capsys) == [(VWAP_REASON, 2)]
    assert "0 landed, 2 still quarantined (0 with a new reason)" in _cli(
        capsys, "quarantine", "replay", "--dataset", "ohlcv_daily"
    )
    merged = compact(s3_root, QUARANTINE)
    assert (merged.files_before, merged.files_after) == (2, 1)

    # A stricter release: February's bar lands, January's is requeued under its new reason. The requeue rewrites
    # the name of January's original part file, which the compaction retired: the new version is visible.
    monkeypatch.setitem(quality.CHECKS, "ohlcv_daily", _stricter)
    out = _cli(capsys, "quarantine", "replay", "--dataset", "ohlcv_daily")
    assert "1 landed, 1 still quarantined (1 with a new reason)" in out
    assert _reasons(capsys) == [(STRICTER, 1)]
    out = _cli(capsys, "compact", "--datasets", "quarantine,quarantine_replays")  # the command, on S3
    assert "quarantine: 1 months compacted, files 2 -> 1" in out
    assert _reasons(capsys) == [(STRICTER, 1)]

    # Today's check passes it: landed on S3 once, and a second replay lands nothing.
    monkeypatch.setitem(quality.CHECKS, "ohlcv_daily", lambda frame, **_: (frame, [], QualityReport()))
    assert "1 landed" in _cli(capsys, "quarantine", "replay", "--dataset", "ohlcv_daily")
    assert "0 landed" in _cli(capsys, "quarantine", "replay", "--dataset", "ohlcv_daily")
    raw, resolved = (read_dataset(s3_root, OHLCV_DAILY, ["AAPL"], resolved=r) for r in (False, True))
    stamps = [pd.Timestamp(ms, unit="ms", tz="UTC") for ms in bad_ms]
    assert [(resolved["window_start"] == t).sum() for t in stamps] == [1, 1]
    # January's bar was landed by one replay only (February's is written again, with new features, by the replay
    # that landed January: its 1-day return now starts from January's close).
    assert (raw["window_start"] == stamps[0]).sum() == 1
    assert len(Quarantine(s3_root).pending(dataset="ohlcv_daily")) == 0
    assert "no quarantined rows" in _cli(capsys, "quarantine", "list")


def test_skew_on_s3_samples_and_compares(
    make_s3_repo: Callable[[], Settings],  # noqa: F811
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_s3_repo()
    assert s.redis_url and s.store_url
    store = open_store(s, s.redis_url)
    symbols = ["SKSA", "SKSB", "SKSC"]  # not test_skew's: the two may share a Redis
    for i, ds in enumerate((OHLCV_DAILY, OPTIONS_FLOW_DAILY)):
        OfflineWriter(s.offline_root).append(ds, dataset_frame(ds, symbols, "2024-06-07 20:00", 5, seed=20 + i))
        materialize_latest(store, ds, s.offline_root)
    assert sample_symbols(s.offline_root, 9) == symbols and len(set(sample_symbols(s.offline_root, 2))) == 2

    monkeypatch.setenv("REDIS_URL", s.redis_url)
    monkeypatch.setenv("FEAST_DATA_DIR", s.store_url)
    monkeypatch.setenv("FEAST_LOCAL_DIR", str(s.data_dir))
    monkeypatch.setenv("FEAST_REPO_PATH", str(s.repo_path))
    code = main(["skew", "--sample", "3", "--at", "2024-06-12T21:30:00+00:00"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert any(line.split()[:3] == ["daily_model", "ohlcv_daily", "close"] for line in out.splitlines())
