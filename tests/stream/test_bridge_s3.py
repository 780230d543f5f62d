"""The stream bridge with ``FEAST_DATA_DIR=s3://bucket/prefix`` (moto's real S3 server on loopback): a short replay
of the WebSocket simulator, with the REST simulator refilling, lands its quotes and minute bars on S3 through the
sinks the ``stream`` command builds, and they are the market's truth, read back by Feast's offline retrieval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import redis
from buffer_checks import assert_bars_are_the_truth
from fixtures.s3 import make_s3_repo, s3_endpoint  # noqa: F401  (fixtures)
from fixtures.stream import STREAM_DAY, STREAM_REPLAY, STREAM_SYMBOLS, MakeClient
from test_bridge import replay_over

from ingestion.config import Settings
from ingestion.datasets import ENTITY_KEY, EVENT_TS, REALTIME_QUOTES
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.store.feast_repo import open_store
from ingestion.store.objectstore import ObjectRoot
from ingestion.store.offline import read_dataset
from ingestion.stream.aggregator import MINUTE_MS, minute_of
from ingestion.stream.bridge import StreamBridge, subscription_topics
from ingestion.stream.runner import StreamOptions, build_sinks


def test_bridge_lands_ticks_on_s3(
    make_polygon_ws: Any,
    make_ws_client: MakeClient,
    polygon_rest: Any,
    stream_market: Market,
    make_s3_repo: Callable[[], Settings],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    s = make_s3_repo()
    root = s.offline_root
    assert isinstance(root, ObjectRoot) and s.redis_url
    online, offline, refiller = build_sinks(s, s.redis_url, polygon_rest.url, POLYGON_SIM_KEY, StreamOptions())
    assert offline is not None and offline.root == root

    server = make_polygon_ws(replay=STREAM_REPLAY)
    client = make_ws_client(server)
    client.subscribe(subscription_topics(STREAM_SYMBOLS))
    bridge = StreamBridge(client, online, offline, refiller, flush_interval_ms=50, offline_interval_s=0.3)
    stats = bridge.run(seconds=60, until=replay_over(server, bridge))
    assert stats.offline_errors == 0 and stats.refill_errors == 0 and stats.offline_quote_rows > 0

    assert not (s.data_dir / "offline").exists()  # every row is on the server
    keys = [o.key for o in root.list()]
    assert any("/offline/ohlcv_minute/" in k and k.endswith(".parquet") for k in keys)
    assert any("/offline/realtime_quotes/_commits/" in k for k in keys)
    last_closed = minute_of(bridge.aggregator.watermark_ms) - MINUTE_MS
    assert assert_bars_are_the_truth(root, stream_market, STREAM_SYMBOLS, STREAM_DAY, last_closed) > 0  # type: ignore[arg-type]
    assert len(read_dataset(root, REALTIME_QUOTES)) == stats.offline_quote_rows
    # Resolved as every reader does (two ticks of one millisecond on either side of a cut give two rows of one key,
    # the newer write wins, on disk as here): each symbol's latest row is the aggregator's final state.
    quotes = read_dataset(root, REALTIME_QUOTES, resolved=True)
    latest = quotes.sort_values(EVENT_TS).groupby(ENTITY_KEY).tail(1).set_index(ENTITY_KEY)
    for sym in STREAM_SYMBOLS:
        state = bridge.aggregator.states[sym]
        assert latest.loc[sym, EVENT_TS] == pd.Timestamp(state.event_ms, unit="ms", tz="UTC")
        assert latest.loc[sym, "last_price"] == state.last_price

    # Training retrieval reads the landed quotes from S3: at each quote's own instant, its own values.
    sample = quotes.sort_values(EVENT_TS).groupby(ENTITY_KEY).tail(3).reset_index(drop=True)
    entity = sample[[ENTITY_KEY, EVENT_TS]]
    store = open_store(s, s.redis_url)
    got = store.get_historical_features(entity_df=entity, features=["realtime_quotes:last_price"]).to_df()
    merged = got.merge(sample, on=[ENTITY_KEY, EVENT_TS], suffixes=("", "_stored"))
    assert len(merged) == len(sample)
    pd.testing.assert_series_equal(merged["last_price"], merged["last_price_stored"], check_names=False)
