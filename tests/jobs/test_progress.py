"""Progress per unit of work: counted in symbol-sessions, planned up front from coverage, and moving within a unit."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pandas as pd
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion.jobs.coverage import Coverage
from ingestion.jobs.engine import planned_work, run_units
from ingestion.jobs.flow import FlowSource
from ingestion.jobs.landing import Sinks
from ingestion.store.offline import OfflineWriter
from ingestion.store.quarantine import Quarantine

D = dt.date
NOW = pd.Timestamp(UW_NOW, unit="s", tz="UTC")  # Tuesday 2024-03-05, mid-session


def _sinks(tmp_path: Path) -> Sinks:
    offline = OfflineWriter(tmp_path, fsync=False)
    return Sinks(offline, Quarantine(tmp_path, writer=offline), Coverage(tmp_path / "state"))


def test_a_flow_backfill_reports_progress_day_by_day_up_to_the_planned_total(
    make_uw_client: MakeKit, tmp_path: Path
) -> None:
    kit = make_uw_client()
    sinks, span = _sinks(tmp_path), (D(2024, 2, 26), D(2024, 2, 29))  # one month unit, four sessions
    source = FlowSource(kit.client, tmp_path)
    total = planned_work(source, sinks, ["AAPL"], span)
    steps: list[int] = []
    summary = run_units(source, sinks, ["AAPL"], span, now=NOW, workers=1, progress=steps.append)

    assert summary.ok and total == 4
    done = list(itertools.accumulate(steps))
    assert len(steps) > 1 and all(n > 0 for n in steps) and done[-1] == total  # more than once for one unit
    # Covered now: a rerun plans no work and reports none.
    assert planned_work(source, sinks, ["AAPL"], span) == 0
