"""Backfills of both vendors and a stream session under injected faults, measured against the simulators' truth.

Faults: a 503 storm that opens the breaker, ~20% 5xx, 429 bursts with Retry-After, connection resets, truncated
bodies, schema drift on a known set of rows, and WebSocket drops. Figures: missing rows = 0, duplicate rows = 0,
requests over the vendor's limit counted at the server = 0, breaker openings and recoveries observed, quarantined
rows = exactly the rows made bad on purpose. Every wait (retry, Retry-After, limiter, breaker recovery) moves a
shared frozen simulated clock, so nothing really waits. A backfill stopped by the open breaker keeps what it
finished; the next round (after the breaker's recovery time) resumes it, as an operator's rerun would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import redis
from fixtures.chaos import BreakerLog, Figures, add_chaos, breaker_on, describe, drift_where, polygon_client
from fixtures.stream import FAST_BACKOFF, STREAM_DAY, STREAM_SYMBOLS, MakeClient
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import MakeUW

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, OHLCV_DAILY, OHLCV_MINUTE, Dataset
from ingestion.http import RetryPolicy
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.flow import FLOW_DATASETS, backfill_flow
from ingestion.jobs.runs import latest_online
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.runtime import Runtime
from ingestion.simulators.faults import Fault, FaultPlan, wrong_type
from ingestion.simulators.http import SimClock
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import Plan
from ingestion.simulators.polygon_ws import Replay, WsFaults
from ingestion.simulators.unusual_whales import uw_error
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter, count_duplicates, read_dataset
from ingestion.store.online import OnlineWriter
from ingestion.store.quarantine import Quarantine
from ingestion.stream.aggregator import MINUTE_MS, minute_of, session_bounds
from ingestion.stream.bridge import StreamBridge, subscription_topics
from ingestion.stream.refill import Refiller, rest_minute_fetcher
from ingestion.vendor_http import HTTPOptions

D = dt.date
NOW = pd.Timestamp("2024-07-01 12:00", tz="UTC")
KEY = "chaos-polygon-key"
RPM = 30  # the key's plan at the server; the client's limiter is set to the same budget
ROUNDS = 8  # reruns allowed before a scenario counts as stuck


@dataclass(frozen=True)
class PolygonCase:
    seed: int
    daily: tuple[str, ...]
    daily_range: tuple[dt.date, dt.date]
    minute: tuple[str, ...]
    minute_range: tuple[dt.date, dt.date]
    bad_days: tuple[dt.date, ...]
    bad_minute_day: dt.date


SHORT = PolygonCase(
    seed=1,
    daily=("AAPL", "MSFT"),
    daily_range=(D(2023, 1, 1), D(2024, 6, 28)),
    minute=("NVDA",),
    minute_range=(D(2024, 3, 1), D(2024, 4, 30)),
    bad_days=(D(2023, 3, 15), D(2024, 2, 13)),
    bad_minute_day=D(2024, 3, 5),
)
LONG = [
    PolygonCase(
        seed=seed,
        daily=("AAPL", "MSFT", "NVDA", "SPY"),
        daily_range=(D(2021, 1, 1), D(2024, 6, 28)),
        minute=("TSLA", "JPM"),
        minute_range=(D(2024, 1, 1), D(2024, 6, 28)),
        bad_days=(D(2021, 6, 8), D(2022, 11, 16), D(2023, 3, 15), D(2024, 2, 13)),
        bad_minute_day=D(2024, 3, 5),
    )
    for seed in (2, 3)
]


def _ms(series: pd.Series) -> pd.Series:
    return series.astype("int64") // 1_000


def _truth(market: Market, case: PolygonCase) -> dict[str, pd.DataFrame]:
    """The bars each dataset should hold (as traded): ``symbol, window_start_ms`` and the OHLCV columns."""
    daily = pd.concat(
        [market.daily_bars(s, *case.daily_range, adjusted=False).assign(symbol=s) for s in case.daily],
        ignore_index=True,
    )
    lo = int(pd.Timestamp(case.minute_range[0], tz=calendar.NEW_YORK).value // 1_000_000)
    hi = int(pd.Timestamp(case.minute_range[1] + dt.timedelta(days=1), tz=calendar.NEW_YORK).value // 1_000_000) - 1
    minute = pd.concat(
        [market.minute_bars_range(s, lo, hi, adjusted=False).assign(symbol=s) for s in case.minute], ignore_index=True
    )
    cols = ["symbol", "window_start_ms", "open", "high", "low", "close", "volume"]
    return {OHLCV_DAILY.name: daily.loc[:, cols], OHLCV_MINUTE.name: minute.loc[:, cols]}


def _bad_times(market: Market, case: PolygonCase) -> set[int]:
    """``t`` (ms) of the bars made bad on purpose: New York midnight of the bad days, and three minutes of one day."""
    days = {int(pd.Timestamp(d, tz=calendar.NEW_YORK).value // 1_000_000) for d in case.bad_days}
    bars = market.minute_bars(case.minute[0], case.bad_minute_day, adjusted=False)
    return days | {int(bars["window_start_ms"].iloc[i]) for i in (3, 100, 250)}


def _run_rounds(run: Callable[[], list[JobSummary]], advance: Callable[[float], None]) -> int:
    """Run a backfill until every symbol finished, waiting out the breaker (on the simulated clock) between rounds."""
    for n in range(1, ROUNDS + 1):
        if all(summary.ok for summary in run()):
            return n
        advance(31.0)
    raise AssertionError(f"backfill still failing after {ROUNDS} rounds")


def polygon_scenario(case: PolygonCase, make_polygon_rest: Callable[..., Any], market: Market, s: Settings) -> Figures:
    clock = SimClock(speed=0.0, start=NOW.value / 1e9)
    sim = make_polygon_rest(keys={KEY: Plan("chaos", requests_per_minute=RPM)}, clock=clock, seed=case.seed)
    plan: FaultPlan = sim.faults
    add_chaos(plan, {"aggs"})
    bad_t = _bad_times(market, case)
    drift = plan.add(Fault.drift(drift_where(lambda r: r.get("t") in bad_t, wrong_type("vw")), routes="aggs"))
    log = BreakerLog()
    client = polygon_client(sim.url, KEY, clock, rpm=RPM, breaker=breaker_on(clock.now, "polygon-chaos", log))
    sinks = Sinks.for_settings(s)

    def one_round() -> list[JobSummary]:
        return [
            backfill_ohlcv(client, sinks, case.daily, *case.daily_range, "day", max_workers=2, now=NOW),
            backfill_ohlcv(client, sinks, case.minute, *case.minute_range, "minute", max_workers=2, now=NOW),
        ]

    rounds = _run_rounds(one_round, clock.advance)
    truth = _truth(market, case)
    figures = Figures(f"Polygon backfill, seed {case.seed}")
    bad_keys: set[tuple[str, int]] = set()
    for name, expected in truth.items():
        stored = read_dataset(s.data_dir, name)
        keys = set(zip(stored["symbol"], _ms(stored["window_start"]), strict=True))
        want = set(zip(expected["symbol"], expected["window_start_ms"], strict=True))
        bad = {k for k in want if k[1] in bad_t}
        bad_keys |= bad
        figures.expected += len(want)
        figures.stored += len(stored)
        figures.missing += len(want - keys - bad)
        figures.duplicates += count_duplicates(stored, name)
        assert keys == want - bad, f"{name}: stored rows differ from the truth"
        # Values too: every stored bar is the vendor's bar.
        got = stored.assign(window_start_ms=_ms(stored["window_start"])).set_index(["symbol", "window_start_ms"])
        ref = expected.set_index(["symbol", "window_start_ms"]).loc[got.index]
        pd.testing.assert_frame_equal(got.loc[:, ref.columns], ref, check_dtype=False)
    quarantined = sinks.quarantine.read()
    figures.quarantined_expected, figures.quarantined = len(bad_keys), len(quarantined)
    assert {orjson.loads(p)["t"] for p in quarantined["payload"]} <= bad_t
    assert quarantined["reason"].str.contains("'vw'").all()

    figures.over_limit = sim.server.rate_limited[KEY]
    assert sim.server.log.max_in_window(KEY, 60.0) <= RPM
    figures.breaker_opened, figures.breaker_recovered = log.opened, log.recovered
    figures.faults = describe(plan)
    requests = sum(sim.server.log.by_route.values())
    figures.notes = f"{requests} requests, {drift.fired} pages drifted, finished in {rounds} rounds"

    assert figures.missing == 0 and figures.duplicates == 0 and figures.over_limit == 0
    assert figures.quarantined == figures.quarantined_expected > 0
    assert figures.breaker_opened >= 1 and figures.breaker_recovered >= 1

    # The online store holds the latest values.
    assert s.redis_url is not None
    latest_online(s, s.redis_url, [OHLCV_DAILY, OHLCV_MINUTE], JobSummary("online"))
    store = open_store(s, s.redis_url)
    for name, symbols in ((OHLCV_DAILY.name, case.daily), (OHLCV_MINUTE.name, case.minute)):
        last = truth[name].sort_values("window_start_ms").groupby("symbol").tail(1).set_index("symbol")
        # Read two days after the view's last bar, inside its ttl (the case's history is in 2024; read today: null).
        read_at = pd.Timestamp(int(last["window_start_ms"].max()), unit="ms", tz="UTC") + pd.Timedelta(days=2)
        store.config.online_store.read_at = read_at.to_pydatetime()
        online = store.get_online_features(features=[f"{name}:close"], entity_rows=[{"symbol": x} for x in symbols])
        frame = online.to_df().set_index("symbol")
        for sym in symbols:
            assert frame.loc[sym, "close"] == last.loc[sym, "close"], (name, sym)
    return figures


@pytest.mark.parametrize("case", [SHORT, *(pytest.param(c, marks=pytest.mark.slow) for c in LONG)])
def test_polygon_backfill_under_faults_loses_nothing(
    case: PolygonCase,
    make_polygon_rest: Callable[..., Any],
    market: Market,
    make_applied_repo: Callable[[], Settings],
    redis_client: redis.Redis,
    record: Callable[[Figures], None],
) -> None:
    record(polygon_scenario(case, make_polygon_rest, market, make_applied_repo()))


# -- Unusual Whales --------------------------------------------------------------------------------------------------

UW_START, UW_END = D(2024, 2, 27), D(2024, 3, 5)  # two month units; Mar 5 is still trading at UW_NOW


def _bad_size(size: int) -> bool:
    # Sizes are round lots: about one print in seven goes bad.
    return (size // 100) % 7 == 3


def _bad_print(record: dict[str, Any]) -> bool:
    return _bad_size(int(record.get("size") or 0))


def _uw_runtime(s: Settings, url: str) -> Runtime:
    return Runtime(replace(s, uw_base_url=url), POLYGON_SIM_KEY, UW_SIM_TOKEN, True, True)


def _comparable(frame: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    cols = [c for c in ds.column_names if c != CREATED_TS]
    return frame.loc[:, cols].sort_values(list(ds.key)).reset_index(drop=True).astype(object)


def uw_scenario(
    seed: int, symbols: list[str], make_uw: MakeUW, make_uw_client: MakeKit, s: Settings, ref_dir: Path
) -> Figures:
    # Reference: the same backfill on a simulator without faults.
    clean = make_uw_client(make_uw())
    ref_sinks = Sinks(OfflineWriter(ref_dir), Quarantine(ref_dir), Coverage(ref_dir / "state"))
    ref_rt = _uw_runtime(replace(s, data_dir=ref_dir), clean.sim.url)
    assert backfill_flow(ref_rt, symbols, UW_START, UW_END, workers=2, client=clean.client, sinks=ref_sinks).ok

    sim = make_uw()
    plan = FaultPlan(seed=seed, sleep=lambda _s: None, error_response=uw_error).attach(sim.server)
    add_chaos(plan, {"flow-alerts", "options-volume", "darkpool-ticker", "insider-transactions", "etf-in-outflow"})
    drift = plan.add(Fault.drift(drift_where(_bad_print, lambda r: {**r, "price": "n/a"}), routes="darkpool-ticker"))
    log = BreakerLog()
    kit = make_uw_client(sim, breaker=breaker_on(sim.clock.now, "uw-chaos", log), per_minute=100, max_attempts=8)
    rt = _uw_runtime(s, sim.url)
    sinks = Sinks.for_settings(rt.settings)
    rounds = _run_rounds(
        lambda: [backfill_flow(rt, symbols, UW_START, UW_END, workers=2, client=kit.client, sinks=sinks)],
        sim.clock.advance,
    )

    figures = Figures(f"Unusual Whales flow backfill, seed {seed}")
    for ds in FLOW_DATASETS:
        want, got = read_dataset(ref_dir, ds), read_dataset(rt.settings.data_dir, ds)
        want_keys = set(map(tuple, want.loc[:, list(ds.key)].astype(str).to_numpy().tolist()))
        got_keys = set(map(tuple, got.loc[:, list(ds.key)].astype(str).to_numpy().tolist()))
        figures.expected += len(want)
        figures.stored += len(got)
        figures.missing += len(want_keys - got_keys)
        figures.duplicates += count_duplicates(got, ds)
        assert got_keys == want_keys, ds.name
        if ds.name != "dark_pool_daily":  # the quarantined prints are missing from its sums, on purpose
            pd.testing.assert_frame_equal(_comparable(got, ds), _comparable(want, ds))

    # The prints made bad: every print of every day fetched (each unit's days and the session before it).
    last_done = calendar.previous_session(UW_END).date()
    days: set[dt.date] = set()
    for lo, hi in ((UW_START, D(2024, 2, 29)), (D(2024, 3, 1), last_done)):
        days |= {calendar.previous_session(lo).date(), *(d.date() for d in calendar.sessions(lo, hi))}
    truth = sim.truth
    bad = {(sym, d, p.seq) for sym in symbols for d in days for p in truth.darkpool_prints(sym, d) if _bad_size(p.size)}
    quarantined = Quarantine(rt.settings.data_dir).read()
    figures.quarantined_expected, figures.quarantined = len(bad), len(quarantined)
    assert set(quarantined["dataset"]) == {"uw_dark_pool"}
    assert quarantined["reason"].str.contains("'price'").all()

    # Requests beyond the plan's 120 in any rolling minute, as the server counted them.
    figures.over_limit = max(0, sim.server.log.max_in_window(UW_SIM_TOKEN, 60.0) - 120)
    figures.breaker_opened, figures.breaker_recovered = log.opened, log.recovered
    figures.faults = describe(plan)
    figures.notes = f"{sum(sim.server.log.by_route.values())} requests, {drift.fired} pages drifted, {rounds} rounds"
    assert figures.missing == 0 and figures.duplicates == 0 and figures.over_limit == 0
    assert figures.quarantined == figures.quarantined_expected > 0
    assert figures.breaker_opened >= 1 and figures.breaker_recovered >= 1
    return figures


@pytest.mark.parametrize(
    ("seed", "symbols"),
    [(1, ["AAPL", "SPY"]), pytest.param(2, ["AAPL", "SPY", "JPM", "MSFT"], marks=pytest.mark.slow)],
)
def test_uw_flow_backfill_under_faults_loses_nothing(
    seed: int,
    symbols: list[str],
    make_uw: MakeUW,
    make_uw_client: MakeKit,
    make_applied_repo: Callable[[], Settings],
    tmp_path: Path,
    record: Callable[[Figures], None],
) -> None:
    record(uw_scenario(seed, symbols, make_uw, make_uw_client, make_applied_repo(), tmp_path / "reference"))


# -- stream ------------------------------------------------------------------------------------------------------------

BAR_COLUMNS = ["open", "high", "low", "close", "volume", "transactions"]


@pytest.mark.parametrize(
    ("replay", "ws_faults"),
    [
        (
            Replay(day=STREAM_DAY, symbols=STREAM_SYMBOLS, start_minute=5, minutes=6, rate=4_000),
            WsFaults(drop_every_messages=900, duplicate_every=25, out_of_order_every=40),
        ),
        pytest.param(
            Replay(day=STREAM_DAY, symbols=STREAM_SYMBOLS, start_minute=5, minutes=30, rate=4_000),
            WsFaults(drop_every_seconds=2.0, drop_every_messages=5000, duplicate_every=25, out_of_order_every=40),
            marks=pytest.mark.slow,
        ),
    ],
)
def test_stream_under_drops_and_rest_faults_loses_no_minute(
    replay: Replay,
    ws_faults: WsFaults,
    make_polygon_ws: Any,
    make_ws_client: MakeClient,
    make_polygon_rest: Callable[..., Any],
    stream_store: Any,
    redis_client: redis.Redis,
    stream_market: Market,
    tmp_path: Path,
    record: Callable[[Figures], None],
) -> None:
    server = make_polygon_ws(replay=replay, faults=ws_faults)
    # Refills go to a REST simulator with the same fault mix (no storm: an open breaker would leave a refill undone).
    clock = SimClock(speed=0.0, start=NOW.value / 1e9)
    rest = make_polygon_rest(clock=clock, seed=5)
    add_chaos(rest.faults, {"aggs"}, storm=False)
    options = HTTPOptions(
        use_cache=False,
        retry=RetryPolicy(max_attempts=10, sleep=clock.advance, wall_clock=clock.now, max_total_wait=None),
        failure_threshold=50,
    )
    fetch = rest_minute_fetcher(PolygonRESTClient(api_key=POLYGON_SIM_KEY, base_url=rest.url, options=options))
    client = make_ws_client(server, backoff=FAST_BACKOFF)
    client.subscribe(subscription_topics(STREAM_SYMBOLS))
    bridge = StreamBridge(
        client,
        OnlineWriter(stream_store),
        OfflineWriter(tmp_path, fsync=False),
        Refiller(fetch),
        flush_interval_ms=50,
        offline_interval_s=0.3,
    )

    def over() -> bool:
        return (
            server.replay_done.is_set()
            and server.counters["frames"] == client.stats.data_frames
            and client.queue_depth() == 0
            and client.connected
        )

    stats = bridge.run(seconds=120, until=over)
    assert server.counters["drops"] >= 2 and client.stats.reconnects >= 2
    assert stats.refill_errors == 0 and stats.offline_errors == 0
    bars = read_dataset(tmp_path, "ohlcv_minute")
    last_closed = minute_of(bridge.aggregator.watermark_ms) - MINUTE_MS
    open_ms = session_bounds(bridge.aggregator.watermark_ms)[0]
    assert last_closed >= open_ms + (replay.start_minute + 3) * MINUTE_MS, "the stream did not get far"
    figures = Figures("Polygon stream (WebSocket drops, REST refills under faults)")
    figures.duplicates = count_duplicates(bars, "ohlcv_minute")
    for sym in STREAM_SYMBOLS:
        truth = stream_market.minute_bars(sym, STREAM_DAY, adjusted=False)
        truth = truth[truth["window_start_ms"] <= last_closed].set_index("window_start_ms")
        got = bars[bars["symbol"] == sym].copy()
        got.index = _ms(got["window_start"])
        got = got[got.index <= last_closed]
        figures.expected += len(truth)
        figures.stored += len(got)
        figures.missing += len(set(truth.index) - set(got.index))
        assert sorted(set(got.index) - set(truth.index)) == []
        pd.testing.assert_frame_equal(
            got.loc[truth.index, BAR_COLUMNS], truth.loc[:, BAR_COLUMNS], check_dtype=False, check_names=False
        )
    # Duplicated trades were dropped, one for one; no tick was refused.
    assert client.stats.duplicates == server.counters["duplicates"] > 0 and client.stats.rejected == 0
    figures.over_limit = rest.server.rate_limited[POLYGON_SIM_KEY]
    figures.faults = f"ws drops {server.counters['drops']}, dup trades {server.counters['duplicates']}; " + describe(
        rest.faults
    )
    figures.notes = (
        f"{client.stats.reconnects} reconnects, {len(stats.refills)} refills, "
        f"{client.stats.sequence_anomalies} sequence anomalies counted"
    )
    assert figures.missing == 0 and figures.duplicates == 0 and figures.over_limit == 0
    record(figures)
