"""One row per key in ``ohlcv_minute`` whatever wrote it: streamed, refilled and REST bars of the same minutes.

Real WebSocket and REST simulators on loopback, the real stream bridge and refill, the real minute backfill, real
Feast on our ASOF offline store. Each origin's bars are told apart by their volume: a streamed bar is the trades the
feed sent (the market's truth), a refilled bar carries one share more and a backfilled bar two (late reports the
vendor's final bar counts and the stream never saw). So every value a reader returns names the row it came from.

The sequence stores each pair of origins in both orders of write time: a stream (its start window refilled, the
later minutes streamed), a gap's refill over two streamed minutes, the stream again (streamed rows written *after*
the refilled ones), the REST backfill over all of it, the backfill again, the stream again (streamed rows written
after the REST ones: newer ``created_timestamp``, lower precedence), then ``compact``. After each step
``read_dataset(resolved=True)`` and Feast's ``get_historical_features`` serve, for every minute, the row the
documented order picks from what is stored (one microsecond before its event time, the minute before's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore
from fixtures.stream import STREAM_DAY, STREAM_SYMBOLS, MakeClient
from test_bridge import make_bridge, replay_over

from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, OHLCV_MINUTE
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.coverage import Coverage
from ingestion.jobs.landing import Landing
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import ParseResult
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer
from ingestion.simulators.polygon_ws import Replay
from ingestion.store.asof.store import AsofDuckDBOfflineStore
from ingestion.store.compact import compact
from ingestion.store.offline import OfflineWriter, count_duplicates, read_dataset
from ingestion.store.precedence import REFILL, REST, STREAM
from ingestion.store.quarantine import Quarantine
from ingestion.stream.aggregator import RefillWindow
from ingestion.stream.bridge import StreamBridge
from ingestion.stream.refill import MinuteFetcher, Refiller

# The documented order, highest first, written out here rather than taken from the code under test.
ORDER = (REST, REFILL, STREAM)
EXTRA_SHARES = {STREAM: 0.0, REFILL: 1.0, REST: 2.0}
KEY = list(OHLCV_MINUTE.key)
# Four minutes of the session (09:35-09:39 New York) as fast as the bridge takes them; the stream's start refills
# 09:30-09:35 from REST.
REPLAY = Replay(day=STREAM_DAY, symbols=STREAM_SYMBOLS, start_minute=5, minutes=4, rate=20_000)
GAP_SYMBOL = "AAPL"
AFTER_THE_DAY = pd.Timestamp(STREAM_DAY, tz="UTC") + pd.Timedelta(days=1, hours=12)


class LateReports:
    """The REST client of the backfill, its bars two shares heavier (see the module docstring)."""

    def __init__(self, client: PolygonRESTClient) -> None:
        self._client = client

    def fetch_aggregates(self, *args: Any, **kwargs: Any) -> ParseResult:
        parsed = self._client.fetch_aggregates(*args, **kwargs)
        return replace(parsed, frame=parsed.frame.assign(volume=parsed.frame["volume"] + EXTRA_SHARES[REST]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _tagged_refill(fetch: MinuteFetcher) -> MinuteFetcher:
    def refill(symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        bars = fetch(symbol, start_ms, end_ms)
        return bars.assign(volume=bars["volume"] + EXTRA_SHARES[REFILL])

    return refill


def _stream(
    server_of: Any, make_ws_client: MakeClient, data_dir: Path, fetch: MinuteFetcher, **kw: Any
) -> StreamBridge:
    server = server_of(replay=REPLAY, **kw)
    bridge = make_bridge(server, make_ws_client, None, data_dir, fetch)  # type: ignore[arg-type]
    stats = bridge.run(seconds=60, until=replay_over(server, bridge))
    assert stats.refill_errors == 0 and stats.offline_errors == 0
    return bridge


def _gap_refill(fetch: MinuteFetcher, data_dir: Path, minutes: pd.DataFrame) -> int:
    """What the bridge runs after a drop: the refill of the hole's minutes (here ``minutes`` of one symbol) landed
    through the stream's landing; the rows it wrote."""
    starts = minutes["window_start"].astype("int64") // 1_000
    symbols = frozenset(minutes[ENTITY_KEY])
    window = RefillWindow(id=1, start_ms=int(starts.min()), end_ms=int(starts.max()), reason="gap", symbols=symbols)
    refiller = Refiller(fetch)
    landing = Landing.for_writer(OfflineWriter(data_dir, fsync=False))
    result = refiller.refill(window, symbols, pd.Timestamp.now(tz="UTC").floor("us"), landing)
    assert not result.errors and result.minutes == len(minutes)
    return refiller.summary.rows_written[OHLCV_MINUTE.name]


def _newest_writes(data_dir: Path) -> pd.DataFrame:
    """Per key, the stored row written last: what a reader breaking ties by ``created_timestamp`` alone would serve."""
    raw = read_dataset(data_dir, OHLCV_MINUTE)
    return raw.sort_values("created_timestamp", kind="stable").drop_duplicates(KEY, keep="last")


def _latest_volume(store: FeatureStore, symbol: str, until: pd.Timestamp) -> float:
    """The volume ``materialize`` would write online for ``symbol`` from rows with event time up to ``until``."""
    view = store.get_feature_view(OHLCV_MINUTE.name)
    job = AsofDuckDBOfflineStore.pull_latest_from_table_or_query(
        store.config,
        view.batch_source,
        [ENTITY_KEY],
        ["volume"],
        EVENT_TS,
        CREATED_TS,
        (until - pd.Timedelta(hours=1)).to_pydatetime(),
        until.to_pydatetime(),
    )
    latest = job.to_df()
    return float(latest.loc[latest[ENTITY_KEY] == symbol, "volume"].item())


def _backfill(rest: PolygonRestServer, data_dir: Path, state_dir: Path) -> int:
    """Minute bars of the stream's day from the REST backfill; the rows it wrote."""
    offline = OfflineWriter(data_dir, fsync=False)
    sinks = Sinks(offline, Quarantine(data_dir, writer=offline), Coverage(state_dir))
    client = PolygonRESTClient(api_key=POLYGON_SIM_KEY, base_url=rest.url, use_cache=False)
    try:
        day = dt.date.fromisoformat(STREAM_DAY)
        summary = backfill_ohlcv(LateReports(client), sinks, STREAM_SYMBOLS, day, day, "minute", now=AFTER_THE_DAY)  # type: ignore[arg-type]
    finally:
        client.close()
    assert summary.ok, summary.errors
    return summary.rows_written[OHLCV_MINUTE.name]


def _documented_winners(data_dir: Path) -> pd.DataFrame:
    """Per key, the stored row of the highest origin in ORDER, then the newest write: brute force over every row."""
    raw = read_dataset(data_dir, OHLCV_MINUTE)
    assert set(raw["source"]) <= set(ORDER), set(raw["source"])
    place = raw["source"].map({origin: i for i, origin in enumerate(ORDER)})
    ranked = raw.assign(_place=place).sort_values([*KEY, "_place", "created_timestamp"], ascending=[True] * 4 + [False])
    return ranked.drop_duplicates(KEY).drop(columns="_place").sort_values(KEY).reset_index(drop=True)


def _assert_one_row_per_key(store: FeatureStore, data_dir: Path, market: Market) -> pd.DataFrame:
    """Every reader serves the documented winner of every stored minute; returns the winners."""
    winners = _documented_winners(data_dir)
    resolved = read_dataset(data_dir, OHLCV_MINUTE, resolved=True).sort_values(KEY).reset_index(drop=True)
    assert count_duplicates(resolved, OHLCV_MINUTE) == 0
    pd.testing.assert_frame_equal(resolved, winners)
    # Each winner's volume is its origin's: the truth plus the origin's tag.
    truth = pd.concat(
        market.minute_bars(s, STREAM_DAY, adjusted=False).assign(**{ENTITY_KEY: s}) for s in STREAM_SYMBOLS
    )
    truth["window_start"] = pd.to_datetime(truth["window_start_ms"], unit="ms", utc=True)
    joined = winners.merge(truth[[ENTITY_KEY, "window_start", "volume"]], on=[ENTITY_KEY, "window_start"])
    assert len(joined) == len(winners)
    extra = joined["volume_x"] - joined["volume_y"]
    assert (extra == joined["source"].map(EXTRA_SHARES)).all()
    # A training row at a minute's event time sees that minute's winner; one microsecond earlier, the minute before.
    at = winners[[ENTITY_KEY, EVENT_TS]]
    entity = pd.concat([at, at.assign(**{EVENT_TS: at[EVENT_TS] - pd.Timedelta(microseconds=1)})], ignore_index=True)
    got = store.get_historical_features(entity_df=entity, features=["ohlcv_minute:volume"]).to_df()
    got = got.sort_values([ENTITY_KEY, EVENT_TS]).reset_index(drop=True)
    expected = pd.concat(
        [
            winners[[ENTITY_KEY, EVENT_TS, "volume"]],
            winners[[ENTITY_KEY, EVENT_TS]].assign(
                **{EVENT_TS: winners[EVENT_TS] - pd.Timedelta(microseconds=1)},
                volume=winners.groupby(ENTITY_KEY)["volume"].shift(1),
            ),
        ]
    ).sort_values([ENTITY_KEY, EVENT_TS])
    assert got["volume"].tolist() == pytest.approx(expected["volume"].tolist(), nan_ok=True)
    return winners


def test_streamed_refilled_and_rest_bars_resolve_to_one_row_per_key(
    store: FeatureStore,
    asof_repo: Settings,
    make_polygon_ws: Any,
    make_ws_client: MakeClient,
    rest_fetcher: MinuteFetcher,
    polygon_rest: PolygonRestServer,
    stream_market: Market,
    tmp_path: Path,
) -> None:
    data_dir = asof_repo.data_dir
    refill = _tagged_refill(rest_fetcher)

    # A clean stream: the start window refilled from REST, the later minutes streamed; no minute twice.
    _stream(make_polygon_ws, make_ws_client, data_dir, refill)
    first = _assert_one_row_per_key(store, data_dir, stream_market)
    assert set(first["source"]) == {REFILL, STREAM}

    # A gap's refill over two streamed minutes of one symbol, as the bridge runs it after a drop: written (it ranks
    # higher). Then the stream again: the start window's refill is not written again (stored at equal precedence),
    # and the streamed bars become the newest writes of their minutes, the refilled ones included.
    gap = first[(first["source"] == STREAM) & (first[ENTITY_KEY] == GAP_SYMBOL)].head(2)
    assert len(gap) == 2
    assert _gap_refill(refill, data_dir, gap) == 2
    bridge = _stream(make_polygon_ws, make_ws_client, data_dir, refill)
    assert bridge.refiller is not None and bridge.refiller.summary.rows_written[OHLCV_MINUTE.name] == 0
    assert (_newest_writes(data_dir).merge(gap[KEY])["source"] == STREAM).all()
    second = _assert_one_row_per_key(store, data_dir, stream_market)
    assert (second.merge(gap[KEY])["source"] == REFILL).all()
    assert (second["source"] != first["source"]).sum() == 2

    # The REST backfill writes every minute of the day, the streamed and refilled ones included; again, nothing.
    minutes_of_day = sum(len(stream_market.minute_bars(s, STREAM_DAY, adjusted=False)) for s in STREAM_SYMBOLS)
    assert _backfill(polygon_rest, data_dir, tmp_path / "state") == minutes_of_day
    rows = len(read_dataset(data_dir, OHLCV_MINUTE))
    assert _backfill(polygon_rest, data_dir, tmp_path / "state-rerun") == 0
    assert len(read_dataset(data_dir, OHLCV_MINUTE)) == rows
    after_rest = _assert_one_row_per_key(store, data_dir, stream_market)
    assert (after_rest["source"] == REST).all() and len(after_rest) == minutes_of_day

    # The stream again, after the REST bars: its refills write nothing, its own bars are the newest writes of their
    # minutes and still lose.
    bridge = _stream(make_polygon_ws, make_ws_client, data_dir, refill)
    assert bridge.refiller is not None and bridge.refiller.summary.rows_written[OHLCV_MINUTE.name] == 0
    assert bridge.stats.offline_bar_rows > 0
    stream_last = read_dataset(data_dir, OHLCV_MINUTE)
    assert (stream_last["source"] == REST).sum() == minutes_of_day
    assert (_newest_writes(data_dir)["source"] == STREAM).any(), "no streamed row is the newest write of its minute"
    pd.testing.assert_frame_equal(_assert_one_row_per_key(store, data_dir, stream_market), after_rest)
    # What materialize writes online (the store's pull of the latest row per symbol), up to a minute whose three
    # origins are stored and whose streamed row is the newest write: its REST row.
    contested = after_rest.merge(gap[KEY]).iloc[-1]
    assert _latest_volume(store, GAP_SYMBOL, contested[EVENT_TS]) == contested["volume"]

    # compact keeps exactly the winners, so stock readers (write time alone) agree from then on.
    compact(data_dir, OHLCV_MINUTE, fsync=False)
    stored = read_dataset(data_dir, OHLCV_MINUTE).sort_values(KEY).reset_index(drop=True)
    assert count_duplicates(stored, OHLCV_MINUTE) == 0
    pd.testing.assert_frame_equal(stored, after_rest)
    pd.testing.assert_frame_equal(_assert_one_row_per_key(store, data_dir, stream_market), after_rest)
