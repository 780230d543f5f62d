"""The collector's live mode and its restart state, without a server: ``on_poll`` gets the as-of instant read before
the poll, every new alert reaches the sink within its poll, and a state file older than the stored alerts (a kill
between landing a batch and saving the watermark) is reconciled with ``flow_alerts``, so nothing is landed twice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ingestion.datasets import CREATED_TS, EVENT_TS, FLOW_ALERTS
from ingestion.store.offline import OfflineWriter
from ingestion.stream.flow import reconcile_state
from ingestion.unusual_whales.collector import CollectorState, FlowAlertCollector

T0 = pd.Timestamp("2024-03-05 15:00", tz="UTC")


def _alerts(n: int, start: pd.Timestamp) -> pd.DataFrame:
    times = [start + pd.Timedelta(seconds=10 * i) for i in range(n)]
    return pd.DataFrame({"id": [f"a{start.value}-{i}" for i in range(n)], "created_at": times})


def test_live_polls_flush_every_alert_and_report_their_as_of(tmp_path: Path) -> None:
    published = _alerts(7, T0)
    now = {"t": (T0 + pd.Timedelta(minutes=2)).value / 1e9}
    batches: list[pd.DataFrame] = []
    polls: list[pd.Timestamp] = []

    def fetch(newer: int, older: int | None) -> pd.DataFrame:
        visible = published[published["created_at"] <= pd.Timestamp(now["t"], unit="s", tz="UTC")]
        return visible[visible["created_at"] >= pd.Timestamp(newer, unit="s", tz="UTC")]

    collector = FlowAlertCollector(
        fetch, batches.append, tmp_path / "state.json", batch_size=500, start_at=T0 - pd.Timedelta(seconds=1),
        clock=lambda: now["t"], publication_lag_s=0.5, flush_each_poll=True, on_poll=polls.append,
    )  # fmt: skip
    collector.poll_once()
    now["t"] += 30
    collector.poll_once()
    collector.poll_once()  # nothing new: still a poll, the windows roll on
    assert [len(b) for b in batches] == [7]  # all within the first poll, not held for a batch of 500
    assert polls[0] == pd.Timestamp((T0 + pd.Timedelta(minutes=2)).value / 1e9 - 0.5, unit="s", tz="UTC")
    assert len(polls) == 3 and polls[1] > polls[0] and collector.stats.last_as_of == polls[-1]


def test_state_older_than_the_stored_alerts_is_reconciled(tmp_path: Path) -> None:
    path = tmp_path / "state" / "collector.json"
    CollectorState(int(T0.value // 1000), {}).save(path)
    # A batch landed after that state was saved (the process was killed before saving the new watermark).
    landed = _alerts(5, T0 + pd.Timedelta(seconds=5)).rename(columns={"created_at": EVENT_TS})
    rows = landed.assign(symbol="AAPL", **{CREATED_TS: T0})
    for column in FLOW_ALERTS.column_names:
        if column not in rows:
            rows[column] = None
    OfflineWriter(tmp_path, fsync=False).append(FLOW_ALERTS, rows, use_watermark=False)

    state = reconcile_state(path, tmp_path, T0 - pd.Timedelta(hours=1), overlap_s=60)
    assert set(landed["id"]) <= set(state.recent_ids)
    assert state.watermark_us == int(landed[EVENT_TS].max().value // 1000)
    assert CollectorState.load(path).watermark_us == state.watermark_us  # saved before the collector starts
