"""``stream --flow`` with ``FEAST_DATA_DIR=s3://bucket/prefix`` (moto's real S3 server on loopback): the flow
collector polls the Unusual Whales simulator for a few simulated minutes (300x) and lands the raw alerts and the
rolling windows on S3, every published alert exactly once (the long form, on disk, is test_flow_live.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pandas as pd
import redis
from fixtures.flow_windows import truth_alerts
from fixtures.s3 import make_s3_repo, s3_endpoint  # noqa: F401  (fixtures)

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.unusual_whales import uw_server
from ingestion.store.feast_repo import open_store
from ingestion.store.objectstore import ObjectRoot
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.stream.flow import FlowFeed, FlowOptions
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

DAY = dt.date(2024, 3, 5)
MINUTES = 6


def test_flow_feed_lands_alerts_and_windows_on_s3(
    make_s3_repo: Callable[[], Settings],  # noqa: F811
    redis_client: redis.Redis,
    uw_market: Market,
) -> None:
    s = make_s3_repo()
    root = s.offline_root
    assert isinstance(root, ObjectRoot) and s.redis_url
    start = (calendar.session_open(DAY) + pd.Timedelta(minutes=45)).value / 1e9
    with uw_server(uw_market, clock=SimClock(speed=300.0, start=start)) as sim:
        clock = sim.clock
        client = EnhancedUnusualWhalesClient(
            UW_SIM_TOKEN, sim.url, use_cache=False, requests_per_minute=None, clock=clock.now
        )
        opts = FlowOptions(interval_s=0.1, start_at=calendar.session_open(DAY))
        feed = FlowFeed(client, open_store(s, s.redis_url), root, s.state_dir, opts)
        begin = clock.now()
        feed.start()
        try:
            while clock.now() < begin + MINUTES * 60:
                time.sleep(0.02)
        finally:
            feed.stop()
            client.close()
        as_of = feed.collector.stats.last_as_of
        assert as_of is not None and feed.collector.stats.errors == 0
        truth = truth_alerts(sim.truth, sim.truth.symbols, [DAY])

    assert not (s.data_dir / "offline").exists()  # every row is on the server
    published = truth[pd.to_datetime(truth[EVENT_TS], utc=True) <= as_of]
    raw = read_dataset(root, FLOW_ALERTS)
    assert len(published) > 0 and count_duplicates(raw, FLOW_ALERTS) == 0
    assert set(published["id"]) <= set(raw["id"]) <= set(truth["id"])
    assert len(read_dataset(root, OPTIONS_FLOW_INTRADAY)) == feed.stats.counts["rows_pushed"] > 0
