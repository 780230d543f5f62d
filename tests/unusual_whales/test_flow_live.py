"""End to end on the simulator, with real HTTP, a real Redis and real Feast: the flow collector of
``python -m ingestion stream --flow`` (:class:`~ingestion.stream.flow.FlowFeed`) polls the Unusual Whales simulator
while its clock runs a session at 300x. After N simulated minutes, the online ``options_flow_intraday`` values equal
the brute-force windows over the simulator's truth at the last poll's as-of instant, and ``flow_alerts`` holds every
alert published by then exactly once. Also measured (printed, not asserted): publication -> online latency on the
simulator's clock, and the requests per simulated minute against the vendor's 120."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
import redis
from fixtures.flow_windows import FEATURES, brute_force, same, truth_alerts

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import EVENT_TS, FLOW_ALERTS, OPTIONS_FLOW_INTRADAY
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.unusual_whales import UWServer, uw_server
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.stream.flow import FlowFeed, FlowOptions, flow_health
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient

DAY = dt.date(2024, 3, 5)
# (clock speed, simulated minutes, poll interval in real seconds). The default run lives 20 minutes at 300x; the slow
# one runs 10 minutes at 10x with the collector's real pace (a poll every 5 simulated seconds), where the measured
# publication -> online latency is not inflated by this machine's own processing time times 300.
RUNS = [(300.0, 20, 0.1), pytest.param((10.0, 10, 0.5), marks=pytest.mark.slow)]


@pytest.fixture
def applied(make_applied_repo: Callable[[], Settings], redis_client: redis.Redis) -> Settings:
    """A fresh data dir and an empty Redis: online rows of another run (newer event times) would win over ours."""
    return make_applied_repo()


@pytest.fixture
def running_sim(applied: Settings, uw_market: Market, request: pytest.FixtureRequest) -> Iterator[UWServer]:
    """The simulator mid-session on a fast clock (started after the repo is applied, so no session time is lost)."""
    speed = request.node.callspec.params["run"][0]
    start = (calendar.session_open(DAY) + pd.Timedelta(minutes=45)).value / 1e9
    with uw_server(uw_market, clock=SimClock(speed=speed, start=start)) as server:
        yield server


def _wait_until(clock: SimClock, instant: float) -> None:
    while clock.now() < instant:
        time.sleep(0.02)


@pytest.mark.parametrize("run", RUNS)
def test_online_windows_equal_brute_force_and_raw_alerts_land_once(
    run: tuple[float, int, float], running_sim: UWServer, applied: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _speed, minutes, interval = run
    s = applied
    assert s.redis_url
    clock = running_sim.clock
    store = open_store(s, s.redis_url)
    client = EnhancedUnusualWhalesClient(
        UW_SIM_TOKEN, running_sim.url, use_cache=False, requests_per_minute=None, clock=clock.now
    )
    # Collection starts at the open: the windows of the first polls are whole.
    opts = FlowOptions(interval_s=interval, start_at=calendar.session_open(DAY))
    feed = FlowFeed(client, store, s.data_dir, s.state_dir, opts)
    begin = clock.now()
    feed.start()
    try:
        _wait_until(clock, begin + minutes * 60)
        # /health of the stream: running, its last complete poll recent on the vendor's clock (300x here).
        check = flow_health(feed, max_lag_s=600.0)
        assert check.ok, check.detail
    finally:
        feed.stop()
        client.close()
    as_of = feed.collector.stats.last_as_of
    assert as_of is not None and feed.collector.stats.errors == 0

    truth = truth_alerts(running_sim.truth, running_sim.truth.symbols, [DAY])
    published = truth[pd.to_datetime(truth[EVENT_TS], utc=True) <= as_of]
    assert len(published) > 100

    # Raw: every alert published by the last as-of, exactly once; nothing that was not published.
    raw = read_dataset(s.data_dir, FLOW_ALERTS)
    assert count_duplicates(raw, FLOW_ALERTS) == 0
    assert set(published["id"]) <= set(raw["id"])
    assert set(raw["id"]) <= set(truth["id"])
    assert (raw[EVENT_TS] <= pd.Timestamp(clock.now(), unit="s", tz="UTC")).all()

    # Online: the brute-force windows at the as-of instant, for every symbol of the universe.
    symbols = list(running_sim.truth.symbols)
    # Online TTLs are judged at the read instant: read as of the simulated session, not today's wall clock.
    monkeypatch.setenv("FEAST_ONLINE_READ_AT", as_of.isoformat())
    online = (
        open_store(s, s.redis_url)
        .get_online_features(
            features=[f"{OPTIONS_FLOW_INTRADAY.name}:{f}" for f in FEATURES],
            entity_rows=[{"symbol": x} for x in symbols],
        )
        .to_dict()
    )
    for i, symbol in enumerate(symbols):
        want = brute_force(published, symbol, as_of)
        bad = {f: (online[f][i], want[f]) for f in FEATURES if not same(online[f][i], want[f])}
        assert not bad, (symbol, as_of, bad)

    # The same rows landed offline (pushed online and offline in one call).
    offline = read_dataset(s.data_dir, OPTIONS_FLOW_INTRADAY)
    assert len(offline) == feed.stats.counts["rows_pushed"] > 0

    p50, p99 = feed.stats.latency_percentiles()
    minute_max = running_sim.log.max_in_window(UW_SIM_TOKEN, 60.0)
    sim_seconds = clock.now() - begin
    n, real = feed.stats.counts, feed.stats.seconds
    print(
        f"\nflow live: {n['alerts_landed']} alerts in {sim_seconds / 60:.1f} simulated min "
        f"({n['alerts_landed'] / sim_seconds:.2f} alerts/s simulated), publication -> online p50 {p50:.1f} s "
        f"p99 {p99:.1f} s (simulated), max {minute_max} requests in any simulated minute (vendor: 120); "
        f"{n['polls']} polls, real s landing {real['land']:.2f}, rolling+push {real['push']:.2f}"
    )
    assert minute_max <= 120
