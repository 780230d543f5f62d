"""A flow alert the vendor lists late (after a poll already covered its ``created_at``) is stamped when the live
collector first saw it: with real HTTP, a real Redis and real Feast, ``get_historical_features`` one microsecond
before that moment does not count the alert, at the moment it does, and the rows emitted before it never change.
The backfill over the same day keeps the collector's knowledge time (it never places the alert earlier)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
import redis
from fixtures.flow_windows import FEATURES, alerts_frame, brute_force, same

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.unusual_whales import UWServer, uw_server
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.stream.flow import FlowFeed, FlowOptions
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient
from ingestion.unusual_whales.raw_alerts import known_times

DAY = dt.date(2024, 3, 5)
SPEED = 60.0  # simulated seconds per real second: a poll every 0.1 s real is every 6 s simulated (or slower)
# The late alerts appear in the vendor's list 4 simulated minutes after their created_at: several polls cover that
# instant first (4 real seconds at 60x), and the collector's overlap is widened to reach them (at its default 60 s
# an alert later than that is left to the backfill).
DELAY_S = 240.0
MINUTES = 10


@pytest.fixture
def applied(make_applied_repo: Callable[[], Settings], redis_client: redis.Redis) -> Settings:
    return make_applied_repo()


@pytest.fixture
def running_sim(applied: Settings, uw_market: Market) -> Iterator[UWServer]:
    start = (calendar.session_open(DAY) + pd.Timedelta(minutes=45)).value / 1e9
    with uw_server(uw_market, clock=SimClock(speed=SPEED, start=start)) as server:
        yield server


def test_a_late_listed_alert_is_known_when_first_seen(running_sim: UWServer, applied: Settings) -> None:
    s, clock = applied, running_sim.clock
    assert s.redis_url
    begin = clock.now()
    symbols = list(running_sim.truth.symbols)
    truth = alerts_frame(a for sym in symbols for a in running_sim.truth.flow_alerts(sym, DAY))
    created = pd.to_datetime(truth[EVENT_TS], utc=True)
    window = (created > pd.Timestamp(begin + 120, unit="s", tz="UTC")) & (
        created < pd.Timestamp(begin + 300, unit="s", tz="UTC")
    )
    late_ids = set(truth.loc[window.to_numpy(), "id"].iloc[::3])
    assert len(late_ids) >= 3
    running_sim.listing_delays.update(dict.fromkeys(late_ids, DELAY_S))

    client = EnhancedUnusualWhalesClient(
        UW_SIM_TOKEN, running_sim.url, use_cache=False, requests_per_minute=None, clock=clock.now
    )
    feed = FlowFeed(
        client,
        open_store(s, s.redis_url),
        s.data_dir,
        s.state_dir,
        FlowOptions(interval_s=0.1, start_at=pd.Timestamp(begin, unit="s", tz="UTC"), overlap_s=600),
    )
    feed.start()
    try:
        while clock.now() < begin + MINUTES * 60:
            time.sleep(0.05)
    finally:
        feed.stop()
        client.close()
    as_of = feed.collector.stats.last_as_of
    assert as_of is not None and feed.collector.stats.errors == 0
    assert feed.stats.counts["late_alerts"] == len(late_ids)

    raw = read_dataset(s.data_dir, FLOW_ALERTS)
    assert count_duplicates(raw, FLOW_ALERTS) == 0
    late = raw[raw["id"].isin(late_ids)].set_index("id")
    assert set(late.index) == late_ids
    for alert_id, row in late.iterrows():
        published = pd.Timestamp(row["created_at"])
        assert published == pd.Timestamp(truth.set_index("id").loc[alert_id, EVENT_TS])
        # Known no earlier than the vendor listed it, and never at its created_at.
        assert pd.Timestamp(row[EVENT_TS]) >= published + pd.Timedelta(seconds=DELAY_S), alert_id
    on_time = raw[~raw["id"].isin(late_ids)]
    assert (pd.to_datetime(on_time[EVENT_TS], utc=True) == pd.to_datetime(on_time["created_at"], utc=True)).all()

    # Training rows around each late alert: the brute-force windows over the alerts at their knowledge times.
    known = raw.assign(**{EVENT_TS: pd.to_datetime(raw[EVENT_TS], utc=True)})
    probes = []
    for alert_id, row in late.iterrows():
        k = pd.Timestamp(row[EVENT_TS])
        at_created = pd.Timestamp(row["created_at"]) + pd.Timedelta(seconds=1)
        for at in (at_created, k - pd.Timedelta(microseconds=1), k, k + pd.Timedelta(microseconds=1)):
            if at <= as_of:
                probes.append({ENTITY_KEY: row[ENTITY_KEY], EVENT_TS: at, "alert": alert_id, "after": at >= k})
    entity = pd.DataFrame(probes)
    got = (
        open_store(s, s.redis_url)
        .get_historical_features(
            entity_df=entity[[ENTITY_KEY, EVENT_TS]], features=[f"{OPTIONS_FLOW_INTRADAY.name}:{f}" for f in FEATURES]
        )
        .to_df()
    )
    assert len(got) == len(entity)
    for row in got.itertuples(index=False):
        at, symbol = pd.Timestamp(getattr(row, EVENT_TS)), getattr(row, ENTITY_KEY)
        want = brute_force(known, symbol, at)
        bad = {f: (getattr(row, f), want[f]) for f in FEATURES if not same(getattr(row, f), want[f])}
        assert not bad, (symbol, at, bad)
    # The windows before a late alert's knowledge time never count it: with it counted at created_at they differ.
    differs = 0
    for probe in entity[~entity["after"]].itertuples(index=False):
        shifted = known.copy()
        shifted.loc[shifted["id"] == probe.alert, EVENT_TS] = late.loc[probe.alert, "created_at"]
        with_it = brute_force(shifted, probe.symbol, probe.event_timestamp)
        differs += (
            with_it["alert_count_60m"] != brute_force(known, probe.symbol, probe.event_timestamp)["alert_count_60m"]
        )
    assert differs > 0

    # One row per instant; rows written before a late alert was seen were never rewritten (one created stamp each).
    rows = read_dataset(s.data_dir, OPTIONS_FLOW_INTRADAY)
    assert not rows.duplicated([ENTITY_KEY, EVENT_TS]).any()
    assert rows[CREATED_TS].notna().all()

    # A later reader of the same alerts (the flow backfill) takes the stored knowledge time, not created_at.
    refetched = truth[truth["id"].isin(late_ids)]
    again = known_times(s.data_dir, refetched)
    assert (
        pd.to_datetime(again.set_index("id")[EVENT_TS], utc=True).sort_index()
        == pd.to_datetime(late[EVENT_TS], utc=True).sort_index()
    ).all()
