"""A minute's origins online: the REST bar of a minute replaces the streamed bar of the same minute once it is
materialized, on our path and on stock Feast's, and nothing lower ever replaces it back.

Before, the online compare-and-set took only a strictly newer event time (Feast's rule) and every origin of a minute
has the same one, so a streamed bar materialized first stayed online after the REST bar landed: until the symbol's
next minute (overnight for a session's last), while training served the REST bar. Each test runs on an isolated
applied repo with a real redis-server (:mod:`ingestion.store.online.origin`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pandas as pd
import pytest
import redis
from feast import FeatureStore
from feast.protos.feast.core.PrecomputedFeatureVector_pb2 import PrecomputedFeatureVector
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, OHLCV_MINUTE
from ingestion.store.feast_online import EnvRedisOnlineStore
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import OnlineWriter
from ingestion.store.online.layout import names_header, segment_field
from ingestion.store.online.materialize import materialize_latest
from ingestion.store.precedence import MINUTE_BARS, REFILL, REST, STREAM

MINUTE_END = pd.Timestamp("2024-03-04 20:00:15", tz="UTC")  # a session's last minute: no next minute to fix it
VOLUME = {STREAM: 2.0, REFILL: 3.0, REST: 4.0}
SYMBOLS = ["ORGA", "ORGB"]
FEATURES = ["ohlcv_minute:volume", "ohlcv_minute:close", "ohlcv_minute:source"]


def _bars(origin: str, created: str) -> pd.DataFrame:
    """The minute's bar of every symbol from ``origin`` (its volume names it), written at ``created``."""
    prices = dict.fromkeys(("open", "high", "low", "close", "vwap"), 100.0 + VOLUME[origin])
    return pd.DataFrame(
        {
            ENTITY_KEY: SYMBOLS,
            "window_start": MINUTE_END - pd.Timedelta(seconds=75),
            EVENT_TS: MINUTE_END,
            CREATED_TS: pd.Timestamp(created, tz="UTC"),
            "volume": VOLUME[origin],
            "transactions": 1,
            "otc": False,
            "adjusted": False,
            "source": origin,
            **prices,
        }
    )


def _served(store: FeatureStore) -> dict[str, tuple[float, str]]:
    online = store.get_online_features(FEATURES, [{ENTITY_KEY: s} for s in SYMBOLS]).to_df()
    assert (online["close"] - online["volume"] == 100.0).all(), online  # one row's values, not a mix
    return {r[ENTITY_KEY]: (float(r["volume"]), r["source"]) for _, r in online.iterrows()}


def _only(origin: str) -> dict[str, tuple[float, str]]:
    return dict.fromkeys(SYMBOLS, (VOLUME[origin], origin))


@pytest.fixture
def repo(
    make_applied_repo: Callable[[], Settings], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """An applied repo of its own (offline files, materialization intervals), the symbols' hashes cleared."""
    monkeypatch.setenv("FEAST_ONLINE_READ_AT", (MINUTE_END + pd.Timedelta(hours=1)).isoformat())
    settings = make_applied_repo()
    assert settings.redis_url
    config = open_store(settings, settings.redis_url).config
    redis_client.delete(*(EnvRedisOnlineStore.entity_key(config, ENTITY_KEY, s) for s in SYMBOLS))
    return settings


@pytest.mark.parametrize("path", ["ours", "feast"])
def test_the_rest_bar_replaces_the_streamed_bar_of_the_same_minute(
    path: str, repo: Settings, redis_client: redis.Redis
) -> None:
    assert repo.redis_url
    store = open_store(repo, repo.redis_url)
    offline = OfflineWriter(repo.data_dir, fsync=False)
    window = (
        (MINUTE_END - pd.Timedelta(hours=1)).to_pydatetime(),
        (MINUTE_END + pd.Timedelta(hours=1)).to_pydatetime(),
    )

    def materialize() -> None:
        if path == "ours":
            materialize_latest(store, OHLCV_MINUTE, repo.data_dir)
        else:  # stock Feast: its local engine over our offline store, writing through our online store class
            store.materialize(*window, [OHLCV_MINUTE.name])

    offline.append(OHLCV_MINUTE, _bars(STREAM, "2024-03-04 20:00:02"), use_watermark=False)
    materialize()
    assert _served(store) == _only(STREAM)
    # The nightly backfill lands the vendor's bar of the same minute; the next materialization serves it.
    offline.append(OHLCV_MINUTE, _bars(REST, "2024-03-05 02:00:00"), use_watermark=False)
    materialize()
    assert _served(store) == _only(REST)
    # The service's pre-computed vector follows its view, and its response's event times are the minute's, to the
    # nanosecond (the fast service read hands Feast stored times: never with the rank in them).
    response = store.get_online_features(
        features=store.get_feature_service("intraday_model"), entity_rows=[{ENTITY_KEY: s} for s in SYMBOLS]
    )
    assert response.to_dict()["volume"] == [VOLUME[REST]] * len(SYMBOLS)
    volume = response.proto.results[list(response.proto.metadata.feature_names.val).index("volume")]
    assert [(t.seconds, t.nanos) for t in volume.event_timestamps] == [(int(MINUTE_END.timestamp()), 0)] * 2

    # A rerun writes nothing, and a lower origin of the minute never replaces it, on either write path.
    assert materialize_latest(store, OHLCV_MINUTE, repo.data_dir).written == 0
    assert OnlineWriter(store, record_every_s=None).write(OHLCV_MINUTE.name, _bars(REFILL, "2024-03-06")).written == 0
    store.write_to_online_store(OHLCV_MINUTE.name, _bars(STREAM, "2024-03-06"))
    assert _served(store) == _only(REST)

    # Readers see the minute's event time to the microsecond; only the stored Timestamp carries the rank.
    read = store.get_online_features(FEATURES, [{ENTITY_KEY: SYMBOLS[0]}]).to_df(include_event_timestamps=True)
    assert read["volume__ts"].iloc[0] == int(MINUTE_END.timestamp())  # Feast's response: epoch seconds
    entity = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=SYMBOLS[0])])
    view = store.get_feature_view(OHLCV_MINUTE.name)
    ((when, _),) = EnvRedisOnlineStore().online_read(store.config, view, [entity])
    assert when == MINUTE_END.to_pydatetime()
    key = EnvRedisOnlineStore.entity_key(store.config, ENTITY_KEY, SYMBOLS[0])
    stamp = Timestamp.FromString(redis_client.hget(key, b"_ts:ohlcv_minute"))
    assert (stamp.seconds, stamp.nanos) == (int(MINUTE_END.timestamp()), MINUTE_BARS.rank(REST))

    # A later minute wins whatever its origin.
    later = _bars(STREAM, "2024-03-06").assign(**{EVENT_TS: MINUTE_END + pd.Timedelta(minutes=1)})
    assert OnlineWriter(store, record_every_s=None).write(OHLCV_MINUTE.name, later).written == len(SYMBOLS)
    assert _served(store) == _only(STREAM)


def test_a_frame_with_two_origins_of_a_minute_writes_the_higher(repo: Settings) -> None:
    assert repo.redis_url
    store = open_store(repo, repo.redis_url)
    # The REST bar first and written earlier: the newest write is the stream's, the winner is REST's.
    frame = pd.concat([_bars(REST, "2024-03-05"), _bars(STREAM, "2024-03-06")], ignore_index=True)
    assert OnlineWriter(store, record_every_s=None).write(OHLCV_MINUTE.name, frame).written == len(SYMBOLS)
    assert _served(store) == _only(REST)


def test_feast_precompute_never_puts_a_replaced_origin_back(repo: Settings, redis_client: redis.Redis) -> None:
    """Feast's precompute pass reads event times through a float, so it cannot tell two origins of one minute
    apart: for such a view it only fills a slice that is missing."""
    assert repo.redis_url
    store = open_store(repo, repo.redis_url)
    writer = OnlineWriter(store, record_every_s=None)
    key = writer.entity_key(ENTITY_KEY, SYMBOLS[0])
    field = segment_field("intraday_model", OHLCV_MINUTE.name)
    writer.write(OHLCV_MINUTE.name, _bars(STREAM, "2024-03-05"))
    streamed = redis_client.hget(key, field)
    writer.write(OHLCV_MINUTE.name, _bars(REST, "2024-03-06"))
    current = redis_client.hget(key, field)
    assert streamed and current and streamed != current

    # The streamed snapshot, as a pass that read before the REST bar was written would send it.
    names = [f"ohlcv_minute__{f}" for f in ("open", "high", "low", "close", "volume", "vwap", "transactions")]
    stale = PrecomputedFeatureVector.FromString(names_header(names) + streamed).SerializeToString()
    entity = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=SYMBOLS[0])])
    online = EnvRedisOnlineStore()
    online.write_precomputed_vector(store.config, "intraday_model", store.project, entity, stale)
    assert online.flush_precomputed() == 0
    assert redis_client.hget(key, field) == current
    # A hash without the slice (written before the service existed) gets it.
    redis_client.hdel(key, field)
    fresh = PrecomputedFeatureVector.FromString(names_header(names) + current).SerializeToString()
    online.write_precomputed_vector(store.config, "intraday_model", store.project, entity, fresh)
    assert online.flush_precomputed() == 1
    assert redis_client.hget(key, field) == current


def test_feast_async_writes_go_through_the_same_compare_and_set(repo: Settings, redis_client: redis.Redis) -> None:
    """``write_to_online_store_async`` (and ``push_async``, which the feature server's ``/push`` takes): a lower
    origin of the minute is refused, and a later minute's write keeps the service's vector slice current."""
    assert repo.redis_url
    store = open_store(repo, repo.redis_url)
    OnlineWriter(store, record_every_s=None).write(OHLCV_MINUTE.name, _bars(REST, "2024-03-05"))
    asyncio.run(store.write_to_online_store_async(OHLCV_MINUTE.name, _bars(STREAM, "2024-03-06")))
    assert _served(store) == _only(REST)
    later = _bars(STREAM, "2024-03-06").assign(**{EVENT_TS: MINUTE_END + pd.Timedelta(minutes=1)})
    asyncio.run(store.write_to_online_store_async(OHLCV_MINUTE.name, later))
    assert _served(store) == _only(STREAM)
    key = EnvRedisOnlineStore.entity_key(store.config, ENTITY_KEY, SYMBOLS[0])
    slice_ = redis_client.hget(key, segment_field("intraday_model", OHLCV_MINUTE.name))
    names = [f"ohlcv_minute__{f}" for f in ("open", "high", "low", "close", "volume", "vwap", "transactions")]
    vector = PrecomputedFeatureVector.FromString(names_header(names) + slice_)
    assert vector.values[names.index("ohlcv_minute__volume")].double_val == VOLUME[STREAM]


@pytest.mark.parametrize("offset_us", [-1, 0, 1])
def test_a_ranked_minute_expires_at_its_ttl_to_the_microsecond(
    offset_us: int, repo: Settings, redis_client: redis.Redis
) -> None:
    """The rank below the microsecond never moves the ttl boundary: read 1 us before, exactly at and 1 us after
    event time + ttl, the per-view read, the service read and the offline join agree (kept, kept, null)."""
    assert repo.redis_url and OHLCV_MINUTE.ttl is not None
    store = open_store(repo, repo.redis_url)
    OfflineWriter(repo.data_dir, fsync=False).append(OHLCV_MINUTE, _bars(REST, "2024-03-05"), use_watermark=False)
    assert materialize_latest(store, OHLCV_MINUTE, repo.data_dir).written == len(SYMBOLS)
    key = EnvRedisOnlineStore.entity_key(store.config, ENTITY_KEY, SYMBOLS[0])
    assert Timestamp.FromString(redis_client.hget(key, b"_ts:ohlcv_minute")).nanos == MINUTE_BARS.rank(REST)

    read_at = MINUTE_END + OHLCV_MINUTE.ttl + pd.Timedelta(microseconds=offset_us)
    store.config.online_store.read_at = read_at.to_pydatetime()
    rows = [{ENTITY_KEY: s} for s in SYMBOLS]
    expected = [None if offset_us > 0 else VOLUME[REST]] * len(SYMBOLS)
    by_refs = store.get_online_features(["ohlcv_minute:volume"], rows).to_dict()["volume"]
    service = store.get_feature_service("intraday_model")
    by_service = store.get_online_features(features=service, entity_rows=rows).to_dict()["volume"]
    entities = pd.DataFrame({ENTITY_KEY: SYMBOLS, EVENT_TS: [read_at] * len(SYMBOLS)})
    offline = store.get_historical_features(entity_df=entities, features=["ohlcv_minute:volume"]).to_df()
    by_join = [None if pd.isna(v) else float(v) for v in offline.set_index(ENTITY_KEY).loc[SYMBOLS, "volume"]]
    assert by_refs == by_service == by_join == expected
