"""``quarantine list|replay`` on a real data dir: bars quarantined by a backfill against the Polygon simulator.

A drift fault makes one daily bar's vwap impossible (the quality check refuses it) and stamps another in the year
9999 (the parser refuses it, keeping the vendor's raw row). ``list`` shows both with their reasons; a replay with
today's checks keeps the vwap bar (still bad) and says the raw row cannot be replayed; a stricter check changes the
kept row's reason; once the check no longer flags the bar, a replay lands it exactly once, recomputes the next
sessions' derived features, and a second replay lands nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from fixtures.chaos import drift_where
from fixtures.simulators import MakePolygonRest

from ingestion.cli import main
from ingestion.datasets import OHLCV_DAILY
from ingestion.jobs import quality
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.quality import QualityReport
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import Rejected
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.store.offline import OfflineWriter, dedupe_on_key, read_dataset
from ingestion.store.quarantine import Quarantine

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
VWAP_REASON = "vwap_outside_range: vwap must lie within [low, high]"
OUT_OF_RANGE = "t outside 1970-01-01..2099-12-31"
YEAR_9999_MS = 253_402_214_400_000
STRICTER = "stricter_rule: a check added after the row was quarantined"


def _ny_midnight_ms(day: str) -> int:
    return int(pd.Timestamp(day).tz_localize("America/New_York").value // 1_000_000)


BAD_VWAP, BAD_TIME = _ny_midnight_ms("2024-01-10"), _ny_midnight_ms("2024-01-17")


def _spoil(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("t") == BAD_VWAP:
        return {**record, "vw": record["h"] * 2}
    return {**record, "t": YEAR_9999_MS}


def _stricter(frame: pd.DataFrame, *, dataset: str, source: str) -> tuple[pd.DataFrame, list[Rejected], QualityReport]:
    return (
        frame.iloc[:0],
        [Rejected(dataset, source, STRICTER, row) for row in frame.to_dict("records")],
        QualityReport(),
    )


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["quarantine", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _daily(data_dir: Path) -> pd.DataFrame:
    stored = dedupe_on_key(OHLCV_DAILY, read_dataset(data_dir, OHLCV_DAILY, ["AAPL"]))
    days = stored["window_start"].dt.tz_convert("America/New_York").dt.date.astype(str)
    return stored.set_index(days.to_numpy())


@pytest.fixture
def quarantined(store_dir: Path, make_polygon_rest: MakePolygonRest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose backfill of AAPL's January quarantined a bad-vwap bar and a year-9999 bar."""
    sim = make_polygon_rest()
    sim.faults.add(Fault.drift(drift_where(lambda r: r.get("t") in (BAD_VWAP, BAD_TIME), _spoil), routes="aggs"))
    offline = OfflineWriter(store_dir)
    sinks = Sinks(offline, Quarantine(store_dir, writer=offline), Coverage(store_dir / "state"))
    client = PolygonRESTClient(POLYGON_SIM_KEY, sim.url, use_cache=False)
    summary = backfill_ohlcv(client, sinks, ["AAPL"], dt.date(2024, 1, 2), dt.date(2024, 1, 31), "day", now=NOW)
    assert summary.ok and summary.quarantined["ohlcv_daily"] == 2
    for var in ("REDIS_URL", "POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FEAST_DATA_DIR", str(store_dir))
    return store_dir


def test_list_replay_keeps_bad_rows_and_lands_a_fixed_one_once(
    quarantined: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _cli(capsys, "list", "--json")
    assert code == 0
    groups = orjson.loads(out)["groups"]
    assert {(g["dataset"], g["reason"], g["count"], g["replayed"]) for g in groups} == {
        ("ohlcv_daily", VWAP_REASON, 1, False),
        ("ohlcv_daily", OUT_OF_RANGE, 1, False),
    }
    code, out, _ = _cli(capsys, "list", "--reason", "vwap")
    assert code == 0 and VWAP_REASON in out and OUT_OF_RANGE not in out

    # Today's checks still refuse the vwap bar; the raw year-9999 row names no symbol.
    code, out, _ = _cli(capsys, "replay", "--dataset", "ohlcv_daily")
    assert code == 0
    assert "2 quarantined rows examined, 0 landed, 1 still quarantined (0 with a new reason)" in out
    assert "1 not replayable (raw vendor row: it does not name its symbol)" in out
    assert "2024-01-10" not in _daily(quarantined).index
    assert len(Quarantine(quarantined).pending(dataset="ohlcv_daily")) == 2

    # A stricter release refuses it for another reason: the row stays, under its new reason.
    monkeypatch.setitem(quality.CHECKS, "ohlcv_daily", _stricter)
    code, out, _ = _cli(capsys, "replay", "--dataset", "ohlcv_daily")
    assert code == 0 and "0 landed, 1 still quarantined (1 with a new reason)" in out
    _, out, _ = _cli(capsys, "list", "--json")
    assert sorted(g["reason"] for g in orjson.loads(out)["groups"]) == [STRICTER, OUT_OF_RANGE]

    # A release whose daily check no longer flags this bar: the replay lands it, and only it.
    monkeypatch.setitem(quality.CHECKS, "ohlcv_daily", lambda frame, **_: (frame, [], QualityReport()))
    before = _daily(quarantined)
    code, out, _ = _cli(capsys, "replay", "--dataset", "ohlcv_daily")
    assert code == 0 and "1 landed" in out and "materialize" in out
    after = _daily(quarantined)
    bar = after.loc["2024-01-10"]
    assert bar["vwap"] == pytest.approx(bar["high"] * 2)
    # The next session's return now starts from the replayed close, not from the session before the gap.
    assert after.loc["2024-01-11", "return_1d"] == pytest.approx(after.loc["2024-01-11", "close"] / bar["close"] - 1)
    assert before.loc["2024-01-11", "return_1d"] != pytest.approx(after.loc["2024-01-11", "return_1d"])
    assert before.loc["2024-01-09", "return_1d"] == after.loc["2024-01-09", "return_1d"]

    code, out, _ = _cli(capsys, "replay", "--dataset", "ohlcv_daily")
    assert code == 0 and "1 quarantined rows examined, 0 landed" in out
    raw = read_dataset(quarantined, OHLCV_DAILY, ["AAPL"])
    assert (raw["window_start"] == pd.Timestamp(BAD_VWAP, unit="ms", tz="UTC")).sum() == 1

    # Replayed rows leave the list, and come back with --all, marked.
    _, out, _ = _cli(capsys, "list", "--json")
    assert [g["reason"] for g in orjson.loads(out)["groups"]] == [OUT_OF_RANGE]
    _, out, _ = _cli(capsys, "list", "--all")
    assert STRICTER in out and "replayed" in out


def test_replay_of_a_dataset_that_cannot_be_replayed_is_one_line(
    quarantined: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "replay", "--dataset", "options_flow_daily")
    assert code == 2 and not out
    assert err.startswith("error: quarantined options_flow_daily rows cannot be replayed row by row")
    assert len(err.strip().splitlines()) == 1
