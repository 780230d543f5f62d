"""kill -9 of the Unusual Whales flow backfill (``python -m ingestion backfill flow``) at a random point, then a rerun:
the offline data is identical, row for row, to an uninterrupted run, and Redis holds the latest values.

The OHLCV backfill has the same test in tests/jobs/test_backfill_ohlcv.py (one seed by default, more with -m slow).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pandas as pd
import pytest
import redis
from fixtures.chaos import Figures

from ingestion.config import Settings
from ingestion.datasets import EVENT_TS
from ingestion.jobs.flow import FLOW_DATASETS
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, frames_equal_ignoring_write_time, read_dataset

SYMBOLS = ["AAPL", "SPY"]
START, END = dt.date(2024, 1, 22), dt.date(2024, 2, 9)  # two month units per symbol, long closed


def _env(s: Settings) -> dict[str, str]:
    # No vendor keys: the command runs its own simulators (same seed, same truth in every run) at their fast plan.
    env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.update({"FEAST_DATA_DIR": str(s.data_dir), "FEAST_REPO_PATH": str(s.repo_path), "REDIS_URL": s.redis_url or ""})
    return env


def _args(online: bool) -> list[str]:
    args = [
        "backfill",
        "flow",
        "--symbols",
        ",".join(SYMBOLS),
        "--from",
        str(START),
        "--to",
        str(END),
        "--workers",
        "1",
    ]
    return [sys.executable, "-m", "ingestion", *args, *([] if online else ["--no-online"])]


@pytest.mark.parametrize(
    "seed", [21, pytest.param(22, marks=pytest.mark.slow), pytest.param(23, marks=pytest.mark.slow)]
)
def test_killed_flow_backfill_resumes_to_the_same_rows(
    seed: int,
    make_applied_repo: Callable[[], Settings],
    redis_client: redis.Redis,
    record: Callable[[Figures], None],
) -> None:
    # The reference (uninterrupted) and the victim run side by side.
    reference, victim = make_applied_repo(), make_applied_repo()
    ref = subprocess.Popen(
        _args(False), env=_env(reference), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    proc = subprocess.Popen(_args(False), env=_env(victim), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill at a random point once it has started writing (or finished: then the rerun must add nothing).
    rng = random.Random(seed)
    offline = victim.data_dir / "offline"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(offline.rglob("*.parquet")):
        time.sleep(0.02)
    delay = rng.uniform(0.0, 1.0)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written_before = sum(len(read_dataset(victim.data_dir, ds)) for ds in FLOW_DATASETS)

    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    rerun = subprocess.run(_args(True), env=_env(victim), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout

    figures = Figures(f"kill -9 of the flow backfill, seed {seed}")
    for ds in FLOW_DATASETS:
        expected, got = read_dataset(reference.data_dir, ds), read_dataset(victim.data_dir, ds)
        figures.expected += len(expected)
        figures.stored += len(got)
        figures.duplicates += count_duplicates(got, ds)
        figures.missing += max(0, len(expected) - len(got))
        assert frames_equal_ignoring_write_time(got, expected, ds), ds.name

    # Online: the newest stored row of each symbol, as stock Feast reads it.
    store = open_store(victim, victim.redis_url or "")
    # Read the morning after the backfill's last day, inside the views' ttls (2024 data, read today: null).
    store.config.online_store.read_at = pd.Timestamp("2024-02-12 10:00", tz="America/New_York").to_pydatetime()
    online = store.get_online_features(
        features=["options_flow_daily:alert_count", "dark_pool_daily:dp_volume"],
        entity_rows=[{"symbol": s} for s in SYMBOLS],
    ).to_df()
    for name, column in (("options_flow_daily", "alert_count"), ("dark_pool_daily", "dp_volume")):
        stored = read_dataset(victim.data_dir, name)
        latest = stored.sort_values(EVENT_TS).groupby("symbol").tail(1).set_index("symbol")
        for sym in SYMBOLS:
            value = online.loc[online["symbol"] == sym, column].iloc[0]
            assert not pd.isna(value) and value == latest.loc[sym, column], (name, sym)

    figures.notes = (
        f"killed {delay:.2f} s after the first part file ({written_before} rows on disk)"
        if killed
        else "finished before the kill; rerun added nothing"
    ) + "; rerun identical row for row, online = latest"
    assert figures.missing == 0 and figures.duplicates == 0
    record(figures)
