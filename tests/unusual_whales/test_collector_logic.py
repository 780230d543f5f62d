"""The flow-alert collector's windowing against an in-memory alert feed with the vendor's paging rules.

The end-to-end version against the Unusual Whales simulator lives with the client tests; this one drives the edge
cases directly: bursts larger than a page, alerts of one second split across polls, late publication, restarts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.unusual_whales.collector import FlowAlertCollector

T0 = pd.Timestamp("2024-03-05 14:30", tz="UTC")


class Feed:
    """Alerts become visible at ``published``; queries filter on whole-second ``created_at`` like the vendor."""

    def __init__(self, n: int, seed: int, inclusive: bool) -> None:
        rng = np.random.default_rng(seed)
        # Bursty: many alerts share seconds; some are published a few seconds after creation.
        offsets_us = np.sort(rng.integers(0, 600_000_000, n))
        # A burst: 150 alerts in one second (most of a page), then the rest spread out.
        offsets_us[n // 3 : n // 3 + 150] = offsets_us[n // 3]
        created = T0 + pd.to_timedelta(np.sort(offsets_us), unit="us")
        delay = pd.to_timedelta(rng.integers(0, 20_000_000, n), unit="us")
        self.alerts = pd.DataFrame(
            {"id": [f"a{k:05d}" for k in range(n)], "created_at": created, "published": created + delay}
        )
        self.now = T0
        self.inclusive = inclusive
        self.calls = 0

    def fetch(self, newer_than: int, older_than: int | None) -> pd.DataFrame:
        self.calls += 1
        a = self.alerts[self.alerts["published"] <= self.now]
        secs = a["created_at"].astype("int64") // 1_000_000_000
        keep = secs >= newer_than if self.inclusive else secs > newer_than
        if older_than is not None:
            keep &= secs <= older_than if self.inclusive else secs < older_than
        return a[keep].sort_values("created_at", ascending=False).head(200)[["id", "created_at"]]


@pytest.mark.parametrize(("seed", "inclusive"), [(1, True), (2, False), (3, True)])
def test_every_alert_exactly_once_across_restarts(tmp_path: Path, seed: int, inclusive: bool) -> None:
    feed = Feed(3000, seed, inclusive)
    delivered: list[str] = []
    state = tmp_path / "collector.json"

    def make() -> FlowAlertCollector:
        return FlowAlertCollector(
            feed.fetch, lambda batch: delivered.extend(batch["id"]), state, batch_size=64, start_at=T0
        )

    collector = make()
    for step in range(70):
        feed.now = T0 + pd.Timedelta(seconds=10 * step)
        collector.poll_once()
        if step in (20, 45):  # a restart: the old instance stops (flushing), a new one reads the persisted state
            collector.stop()
            collector = make()
    collector.stop()
    assert len(delivered) == len(set(delivered)), "an alert was delivered twice"
    assert set(delivered) == set(feed.alerts["id"]), "an alert was lost"


def test_batches_are_oldest_first_and_stop_flushes(tmp_path: Path) -> None:
    feed = Feed(300, 5, True)
    feed.now = T0 + pd.Timedelta(hours=1)
    batches: list[pd.DataFrame] = []
    collector = FlowAlertCollector(feed.fetch, batches.append, tmp_path / "s.json", batch_size=128, start_at=T0)
    collector.poll_once()
    assert [len(b) for b in batches] == [128, 128]
    collector.stop()
    assert [len(b) for b in batches] == [128, 128, 44]
    stamps = pd.concat(batches)["created_at"]
    assert stamps.is_monotonic_increasing
