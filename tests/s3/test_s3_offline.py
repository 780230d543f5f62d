"""The offline store on a real S3-compatible server (moto's, on loopback): the same rows and the same answers as disk.

A backfill through the Polygon simulator into ``FEAST_DATA_DIR=s3://bucket/store`` and the same backfill into a
local data dir give the same stored rows, the same coverage, and ``get_historical_features`` (our DuckDB ASOF store,
through the real ``feast apply``) returns the same frame row for row. A batch is seen whole or not at all, coverage
and watermark updates from racing writers are never lost, and the credentials appear in no error.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pandas as pd
import pytest
import redis
from feast.data_source import PushMode
from fixtures.s3 import SECRET_KEY, make_s3_repo, s3_endpoint, s3_root  # noqa: F401  (fixtures)
from fixtures.store import dataset_frame

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CORPORATE_ACTIONS, ENTITY_KEY, EVENT_TS, OHLCV_DAILY, QUARANTINE, REALTIME_QUOTES
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store import offline_objects
from ingestion.store.feast_repo import open_store
from ingestion.store.objectstore import Conflict, ObjectRoot, ObjectStoreError
from ingestion.store.offline import OfflineWriter, frames_equal_ignoring_write_time, read_dataset
from ingestion.store.online.materialize import materialize_latest
from ingestion.store.watermarks_objects import ObjectWatermarks

NOW = pd.Timestamp("2024-07-01 12:00", tz="UTC")
SYMBOLS = ["AAPL", "MSFT"]
START, END = dt.date(2023, 12, 1), dt.date(2024, 3, 28)
FEATURES = ["ohlcv_daily:close", "ohlcv_daily:volume", "ohlcv_daily:return_20d", "ohlcv_daily:total_return_1d"]


def _backfill(polygon_url: str, s: Settings) -> JobSummary:
    client = PolygonRESTClient(POLYGON_SIM_KEY, polygon_url, use_cache=False)
    return backfill_ohlcv(client, Sinks.for_settings(s), SYMBOLS, START, END, "day", now=NOW)


def _entity_frame() -> pd.DataFrame:
    """Both symbols at 10:00 and 16:30 New York on every session, month ends included, plus one before any data."""
    days = [d.date() for d in calendar.sessions("2023-12-01", "2024-03-28")]
    times = [
        pd.Timestamp(f"{d} {hm}", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days for hm in ("10:00", "16:30")
    ]
    times.append(pd.Timestamp("2023-11-01 12:00", tz="UTC"))
    return pd.DataFrame([{"symbol": s, "event_timestamp": t} for s in SYMBOLS for t in times])


def test_backfill_on_s3_equals_local_disk_row_for_row(
    polygon_rest: object,
    make_applied_repo: Callable[[], Settings],
    make_s3_repo: Callable[[], Settings],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    url = polygon_rest.url  # type: ignore[attr-defined]
    local, remote = make_applied_repo(), make_s3_repo()
    assert remote.store_url and remote.store_url.startswith("s3://")

    on_disk, on_s3 = _backfill(url, local), _backfill(url, remote)
    assert on_disk.ok and on_s3.ok
    assert on_s3.rows_written == on_disk.rows_written and on_s3.rows_written["ohlcv_daily"] > 0

    # The rows live on the server, none on the local folder of the S3 run.
    keys = [o.key for o in remote.offline_root.list()]  # type: ignore[union-attr]
    assert any(k.endswith(".parquet") and "/offline/ohlcv_daily/" in k for k in keys)
    assert any("/state/coverage/" in k for k in keys) and any("/state/watermarks/" in k for k in keys)
    assert not (remote.data_dir / "offline").exists()

    for ds in (OHLCV_DAILY, CORPORATE_ACTIONS, QUARANTINE):
        a, b = read_dataset(local.offline_root, ds), read_dataset(remote.offline_root, ds)
        assert len(a) == len(b)
        assert frames_equal_ignoring_write_time(a, b, ds), ds.name
    for sym in SYMBOLS:
        covered = Coverage(remote.state_root).get("ohlcv_daily", sym)
        assert covered and covered == Coverage(local.state_root).get("ohlcv_daily", sym)

    # Coverage on S3 makes a rerun fetch and write nothing, as on disk.
    again = _backfill(url, remote)
    assert again.api_calls == 0 and sum(again.rows_written.values()) == 0

    entity = _entity_frame()
    assert local.redis_url and remote.redis_url
    want = open_store(local, local.redis_url).get_historical_features(entity_df=entity, features=FEATURES).to_df()
    got = open_store(remote, remote.redis_url).get_historical_features(entity_df=entity, features=FEATURES).to_df()
    assert want["close"].notna().sum() > len(entity) // 2
    assert want["close"].isna().sum() >= len(SYMBOLS)  # the entity rows before any data are null on both sides
    pd.testing.assert_frame_equal(got, want)


def test_a_batch_is_seen_whole_or_not_at_all(s3_root: ObjectRoot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    days = pd.to_datetime(["2024-01-30 21:00", "2024-01-31 21:00", "2024-02-01 21:00", "2024-03-01 21:00"], utc=True)
    given = {
        "symbol": "AAPL",
        "event_timestamp": days,
        "window_start": days,
        "created_timestamp": NOW,
        "close": [1.0, 2.0, 3.0, 4.0],
    }
    frame = pd.DataFrame({c: given.get(c) for c in OHLCV_DAILY.column_names})
    writer = OfflineWriter(s3_root)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("writer killed between its part files and its manifest")

    monkeypatch.setattr(offline_objects, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        writer.append(OHLCV_DAILY, frame)
    parts = [o for o in (s3_root / "offline" / "ohlcv_daily").list() if o.name.startswith("part-")]
    assert len(parts) == 3  # three months written, one object each...
    assert read_dataset(s3_root, OHLCV_DAILY).empty  # ...and no reader sees any of them
    assert ObjectWatermarks(s3_root / "state").get("ohlcv_daily", "AAPL") is None

    monkeypatch.undo()
    result = writer.append(OHLCV_DAILY, frame)  # the rerun writes the same names and commits them together
    assert sorted(o.url for o in result.files) == sorted(p.url for p in parts)  # type: ignore[union-attr]
    stored = read_dataset(s3_root, OHLCV_DAILY)
    assert stored["close"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert writer.append(OHLCV_DAILY, frame).written == 0  # at or below the watermark
    assert len(read_dataset(s3_root, OHLCV_DAILY)) == 4


def test_conditional_puts_lose_no_update(s3_root: ObjectRoot) -> None:  # noqa: F811
    marker = s3_root / "once.json"
    marker.put(b"{}", if_none_match=True)
    with pytest.raises(Conflict):
        marker.put(b"{}", if_none_match=True)

    # Two "machines" (separate clients) record coverage units of one dataset at the same time.
    units = 40

    def record(worker: int) -> None:
        coverage = Coverage(ObjectRoot(s3_root.url) / "state")
        for i in range(units):
            day = dt.date(2020, 1, 1) + dt.timedelta(days=3 * (worker * units + i))
            coverage.add("ohlcv_daily", f"S{worker}", (day, day))

    threads = [threading.Thread(target=record, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    coverage = Coverage(s3_root / "state")
    assert [len(coverage.get("ohlcv_daily", f"S{w}")) for w in range(2)] == [units, units]

    marks = ObjectWatermarks(s3_root / "state")
    marks.advance("ohlcv_daily", {"AAPL": pd.Timestamp("2024-02-01", tz="UTC")})
    marks.advance("ohlcv_daily", {"AAPL": pd.Timestamp("2024-01-01", tz="UTC")})  # never moves back
    assert marks.get("ohlcv_daily", "AAPL") == pd.Timestamp("2024-02-01", tz="UTC")


def test_credentials_stay_out_of_errors_and_urls(s3_root: ObjectRoot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="credentials only in AWS_"):
        ObjectRoot("s3://key:secret@bucket/prefix")
    assert SECRET_KEY not in repr(s3_root)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET_KEY)
    missing = ObjectRoot("s3://no-such-bucket-here/prefix")
    with pytest.raises(ObjectStoreError) as failed:
        missing.put(b"x")
    assert SECRET_KEY not in str(failed.value) and "no-such-bucket-here" in str(failed.value)


def test_feast_push_and_materialize_on_s3(make_s3_repo: Callable[[], Settings], redis_client: redis.Redis) -> None:  # noqa: F811
    s = make_s3_repo()
    assert s.redis_url
    store = open_store(s, s.redis_url)
    rows = dataset_frame(REALTIME_QUOTES, ["PSHA", "PSHB"], "2024-04-30 23:58", 4, freq="min", seed=5)
    for batch in (rows.iloc[::2], rows.iloc[1::2]):  # two pushes, each over a month boundary
        store.push("realtime_quotes_push", batch, to=PushMode.OFFLINE)
    assert frames_equal_ignoring_write_time(read_dataset(s.offline_root, REALTIME_QUOTES), rows, REALTIME_QUOTES)

    entity = rows[[ENTITY_KEY, EVENT_TS]].reset_index(drop=True)
    got = store.get_historical_features(entity_df=entity, features=["realtime_quotes:last_price"]).to_df()
    merged = got.merge(rows[[ENTITY_KEY, EVENT_TS, "last_price"]], on=[ENTITY_KEY, EVENT_TS], suffixes=("", "_in"))
    assert len(merged) == len(rows)
    pd.testing.assert_series_equal(merged["last_price"], merged["last_price_in"], check_names=False)

    # Feast's own materialize pulls the latest rows from S3 through the ASOF store into Redis.
    newest = rows[EVENT_TS].max()
    store.materialize(newest - pd.Timedelta(days=1), newest + pd.Timedelta(seconds=1), ["realtime_quotes"])
    store.config.online_store.read_at = (newest + pd.Timedelta(seconds=1)).to_pydatetime()
    online = store.get_online_features(
        features=["realtime_quotes:last_price"], entity_rows=[{"symbol": "PSHA"}, {"symbol": "PSHB"}]
    ).to_df()
    latest = rows.sort_values(EVENT_TS).groupby(ENTITY_KEY)["last_price"].last()
    assert online["last_price"].tolist() == [latest["PSHA"], latest["PSHB"]]

    # Our own materialize (the backfill's online step and `ingestion materialize`) reads the same committed files.
    redis_client.flushdb()
    result = materialize_latest(s, REALTIME_QUOTES)
    assert result.keys == 2
    again = store.get_online_features(
        features=["realtime_quotes:last_price"], entity_rows=[{"symbol": "PSHA"}, {"symbol": "PSHB"}]
    ).to_df()
    assert again["last_price"].tolist() == [latest["PSHA"], latest["PSHB"]]
