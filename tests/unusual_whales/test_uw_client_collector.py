"""Continuous flow-alert collection through the client, against the simulator's ground truth.

The collector is stopped mid-way, a new client instance resumes from the persisted watermark, and in the end the
sink has received every alert of the period exactly once: no gap at the restart, no duplicate from the overlap.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import pytest
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion.errors import ConfigError


def test_collector_restart_delivers_every_alert_exactly_once(make_uw_client: MakeKit, tmp_path: Path) -> None:
    first = make_uw_client(batch_size=40)
    sim = first.sim
    state = tmp_path / "collector.json"
    delivered: list[str] = []
    batches: list[int] = []

    def sink(batch: pd.DataFrame) -> None:
        assert str(batch["created_at"].dtype) == "datetime64[us, UTC]"  # the parser's dtype, kept through the collector
        batches.append(len(batch))
        delivered.extend(batch["id"])

    start_at = pd.Timestamp(UW_NOW - 3600, unit="s", tz="UTC")  # 12:00 New York
    collector = first.client.options_flow_collector(sink, state_path=state, start_at=start_at)
    for _ in range(6):
        collector.poll_once()
        sim.clock.advance(97)
    collector.stop()  # flushes the partial batch and saves the watermark
    assert batches and all(n == 40 for n in batches[:-1])
    mid = len(delivered)

    # A new client instance (a restarted process) on the same state file.
    second = make_uw_client(sim, batch_size=40)
    resumed = second.client.options_flow_collector(sink, state_path=state)
    for _ in range(5):
        resumed.poll_once()
        sim.clock.advance(131)
    resumed.stop()
    assert resumed.stats.duplicates_dropped > 0  # the overlap re-read alerts, and they were recognised

    # The same through the background thread of the client's start/stop API.
    sim.clock.advance(300)
    collector3 = second.client.start_options_flow_collection(sink, state_path=state, interval=0.01)
    assert second.client.options_flow_running
    for _ in range(1000):  # wait for one completed poll (not a timing assertion)
        if collector3.stats.polls >= 1:
            break
        time.sleep(0.01)
    second.client.stop_options_flow_collection()
    assert not second.client.options_flow_running
    end = sim.clock.now()

    # With no saved state the first poll reaches back one overlap (60 s) before start_at.
    lo = math.floor(start_at.value / 1e9) - 60
    truth = sim.truth.flow_alerts_between(sim.truth.symbols, lo, end)
    assert 0 < mid < len(delivered)
    assert len(delivered) == len(set(delivered))
    assert set(delivered) == {a.id for a in truth}


def test_collection_needs_a_sink(make_uw_client: MakeKit, tmp_path: Path) -> None:
    kit = make_uw_client()
    with pytest.raises(ConfigError, match="sink"):
        kit.client.start_options_flow_collection(state_path=tmp_path / "s.json")
    assert not kit.client.options_flow_running
