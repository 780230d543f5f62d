"""Training retrieval of ``options_flow_intraday``: the flow backfill lands the raw alerts and computes the view's
rows from them (the collector's code), and ``get_historical_features`` at random instants, with real Feast on our
DuckDB ASOF store, equals the brute-force windows over the simulator's alerts published by each instant. A rerun
stores nothing twice; a unit the live collector already landed is not landed again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fixtures.flow_windows import FEATURES, brute_force, same, truth_alerts
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import ENTITY_KEY, EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.jobs.flow import backfill_flow
from ingestion.runtime import Runtime
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset

START, END = dt.date(2024, 2, 28), dt.date(2024, 3, 4)  # crosses a month: two units, and the rows between them
SYMBOLS = ["JPM", "SPY"]
NOW = pd.Timestamp(UW_NOW, unit="s", tz="UTC")


@pytest.fixture
def backfilled(make_uw_client: MakeKit, make_applied_repo: Callable[[], Settings]) -> tuple[Runtime, pd.DataFrame]:
    kit = make_uw_client()
    settings = replace(make_applied_repo(), uw_base_url=kit.sim.url)
    rt = Runtime(settings, POLYGON_SIM_KEY, UW_SIM_TOKEN, simulated_polygon=True, simulated_uw=True)
    summary = backfill_flow(rt, SYMBOLS, START, END, workers=2, client=kit.client)
    assert summary.ok, summary.errors
    again = backfill_flow(rt, SYMBOLS, START, END, workers=2, client=kit.client)
    assert again.api_calls == 0 and sum(again.rows_written.values()) == 0
    days = [d.date() for d in calendar.sessions(calendar.previous_session(START), END)]
    return rt, truth_alerts(kit.sim.truth, SYMBOLS, days)


def test_raw_alerts_once_and_historical_features_equal_brute_force(
    backfilled: tuple[Runtime, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, truth = backfilled
    times = pd.to_datetime(truth[EVENT_TS], utc=True)
    first = calendar.session_close(calendar.previous_session(START)) + pd.Timedelta(minutes=15)
    last = calendar.session_close(END) + pd.Timedelta(minutes=15)
    in_span = truth[((times > first) & (times <= last)).to_numpy()]

    raw = read_dataset(rt.settings.data_dir, FLOW_ALERTS)
    assert count_duplicates(raw, FLOW_ALERTS) == 0
    assert set(raw["id"]) == set(in_span["id"])
    rows = read_dataset(rt.settings.data_dir, OPTIONS_FLOW_INTRADAY)
    assert count_duplicates(rows, OPTIONS_FLOW_INTRADAY) == 0

    # Random instants over the sessions, their evenings and the night (windows rolled off), per symbol, plus
    # instants exactly at publications and roll-offs.
    rng = np.random.default_rng(21)
    lo = (calendar.session_open(START)).value // 1000
    hi = (calendar.session_close(END) + pd.Timedelta(hours=2)).value // 1000
    picks = [pd.Timestamp(int(t), unit="us", tz="UTC") for t in rng.integers(lo, hi, 150).tolist()]
    edges = [t + d for t in times.iloc[::97] for d in (pd.Timedelta(0), pd.Timedelta(minutes=15))]
    instants = [t for t in [*picks, *edges] if START <= calendar.new_york_date(t) <= END]
    entity = pd.DataFrame({ENTITY_KEY: [SYMBOLS[i % 2] for i in range(len(instants))], EVENT_TS: instants})
    store = open_store(rt.settings, rt.settings.redis_url or "")
    got = store.get_historical_features(
        entity_df=entity, features=[f"{OPTIONS_FLOW_INTRADAY.name}:{f}" for f in FEATURES]
    ).to_df()
    assert len(got) == len(entity)
    for row in got.itertuples(index=False):
        at = pd.Timestamp(getattr(row, EVENT_TS))
        want = brute_force(truth, getattr(row, ENTITY_KEY), at)
        bad = {f: (getattr(row, f), want[f]) for f in FEATURES if not same(getattr(row, f), want[f])}
        assert not bad, (getattr(row, ENTITY_KEY), at, bad)
