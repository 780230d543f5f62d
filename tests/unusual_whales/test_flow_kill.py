"""The flow collector killed with SIGKILL mid-run and started again: the raw ``flow_alerts`` dataset holds every
alert published by the end exactly once, and the ``options_flow_intraday`` rows stored offline equal one pass of the
windows over the simulator's truth (a row re-emitted after a kill repeats the same values).

The collector runs in its own process (``flow_child.py``) against a simulator in this process, both on the same
simulated clock (60x real time), and is killed at a random moment after a poll; the run after the last kill is in
this process and stops cleanly. The default run kills once, the slow one four times."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.flow_windows import FEATURES, truth_alerts

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.unusual_whales import uw_server
from ingestion.store.feast_repo import open_store
from ingestion.store.jsonstate import read_json
from ingestion.store.offline import count_duplicates, dedupe_on_key, read_dataset
from ingestion.stream.flow import WINDOWS_STATE, FlowFeed, FlowOptions
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.unusual_whales.rolling import rolling_rows

DAY = dt.date(2024, 3, 5)
SPEED = 60.0
CHILD = Path(__file__).with_name("flow_child.py")


def _emitted_to(s: Settings) -> pd.Timestamp | None:
    raw = read_json(s.state_dir / WINDOWS_STATE)
    return None if raw is None else pd.Timestamp(int(raw["emitted_to_us"]), unit="us", tz="UTC")


def _wait(what: Callable[[], bool], child: subprocess.Popen[bytes]) -> None:
    while not what():
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else "child died"
        time.sleep(0.05)


@pytest.mark.parametrize("kills", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_kill_9_and_restart_lands_every_alert_once_and_the_same_windows(
    kills: int, make_applied_repo: Callable[[], Settings], uw_market: Market
) -> None:
    s = make_applied_repo()
    assert s.redis_url
    open_at = calendar.session_open(DAY)
    sim_start = (open_at + pd.Timedelta(minutes=10)).value / 1e9
    clock = SimClock(speed=SPEED, start=sim_start)
    wall_start = time.time()
    env = {
        **os.environ,
        "FEAST_DATA_DIR": str(s.data_dir),
        "FEAST_REPO_PATH": str(s.repo_path),
        "REDIS_URL": s.redis_url,
    }
    rng = np.random.default_rng(3)
    with uw_server(uw_market, clock=clock) as server:
        args = [
            sys.executable,
            str(CHILD),
            server.url,
            str(sim_start),
            str(wall_start),
            str(SPEED),
            open_at.isoformat(),
        ]

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        for _round in range(kills):
            child = spawn()
            before = _emitted_to(s)

            def polled(before: pd.Timestamp | None = before) -> bool:
                e = _emitted_to(s)
                return e is not None and (before is None or e > before)

            # Killed at a random moment once it has completed a poll (landing, pushing or saving, whichever).
            _wait(polled, child)
            time.sleep(float(rng.uniform(0.05, 0.5)))
            child.send_signal(signal.SIGKILL)
            child.wait()
        # The restart after the last kill runs in this process (a process start costs seconds here), on the same
        # data dir, Redis and clock, for three simulated minutes, and stops cleanly.
        client = EnhancedUnusualWhalesClient(
            UW_SIM_TOKEN, server.url, use_cache=False, requests_per_minute=None, clock=clock.now
        )
        opts = FlowOptions(interval_s=0.05, start_at=open_at)
        feed = FlowFeed(client, open_store(s, s.redis_url), s.data_dir, s.state_dir, opts)
        feed.start()
        try:
            target = pd.Timestamp(clock.now(), unit="s", tz="UTC") + pd.Timedelta(minutes=3)
            while (e := _emitted_to(s)) is None or e < target:
                time.sleep(0.05)
        finally:
            feed.stop()
            client.close()
        end = _emitted_to(s)
        assert end is not None and feed.collector.stats.errors == 0

    truth = truth_alerts(server.truth, server.truth.symbols, [DAY])
    times = pd.to_datetime(truth[EVENT_TS], utc=True)
    raw = read_dataset(s.data_dir, FLOW_ALERTS)
    assert count_duplicates(raw, FLOW_ALERTS) == 0
    assert set(truth.loc[(times <= end).to_numpy(), "id"]) <= set(raw["id"]) <= set(truth["id"])

    # Offline rows: one per change point after the first hour (windows whole), the values of one pass over truth.
    stored = dedupe_on_key(OPTIONS_FLOW_INTRADAY, read_dataset(s.data_dir, OPTIONS_FLOW_INTRADAY))
    lo = open_at + pd.Timedelta(minutes=1)
    stored = stored[(stored[EVENT_TS] > lo) & (stored[EVENT_TS] <= end)]
    expected = rolling_rows(truth[(times <= end).to_numpy()], lo, end)
    cols = [ENTITY_KEY, EVENT_TS, *FEATURES]
    pd.testing.assert_frame_equal(
        stored[cols].sort_values([ENTITY_KEY, EVENT_TS]).reset_index(drop=True),
        expected[cols].sort_values([ENTITY_KEY, EVENT_TS]).reset_index(drop=True),
        check_dtype=False,
    )
    assert CREATED_TS in stored
