"""Stock Feast's materialization on the repo's own yaml writes a minute's highest origin online, not its newest write.

``feast materialize`` (Feast's local compute engine over our ASOF offline store) pulls every row of the interval and
keeps, per entity, the newest ``(event time, created time)``. A stream bar written after the REST bar of the same
minute has the same event time and the newer created time, so without the store's help it would be served online
while every other reader serves the REST bar (:mod:`ingestion.store.precedence`). The store's pull of every row leaves
out the rows outranked at their event time. Each path of stock Feast is run here on an isolated applied repo with a
real redis-server: ``FeatureStore.materialize`` then ``materialize_incremental`` with Feast's default pull (every
row), the ``feast materialize`` CLI, and ``materialize`` with ``pull_latest_features`` (the store's latest row per
entity). Each must serve, per symbol, the documented winner of its newest minute.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
import redis
from feast import FeatureStore
from feast.repo_config import MaterializationConfig
from fixtures.store import dataset_frame

from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, OHLCV_MINUTE
from ingestion.store.asof.store import AsofDuckDBOfflineStore
from ingestion.store.feast_repo import feast_cli, open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.precedence import REFILL, REST, STREAM

FIRST_EVENT = pd.Timestamp("2024-03-04 14:31:15", tz="UTC")
MINUTES = 3
NEWEST = FIRST_EVENT + pd.Timedelta(minutes=MINUTES - 1)
# Every row names its origin by its volume, and the writes of the newest minute come in this order of created time:
# (symbol, [origins in write order], the documented winner).
VOLUME = {STREAM: 2.0, REFILL: 3.0, REST: 4.0}
WRITES = (
    ("AAPL", (REST, STREAM, REFILL), REST),  # a late stream bar, then a later refill: REST still wins
    ("MSFT", (REFILL, STREAM), REFILL),  # a late stream bar over a refill
    ("NVDA", (STREAM, REST), REST),  # the ordinary order: the newest write is also the winner
)
REFS = ["ohlcv_minute:volume", "ohlcv_minute:close"]


def _bars(symbol: str, origin: str, created: pd.Timestamp, minutes: int) -> pd.DataFrame:
    """``symbol``'s bars of the first ``minutes`` minutes from one origin, written at ``created``."""
    frame = dataset_frame(OHLCV_MINUTE, [symbol], FIRST_EVENT, MINUTES, freq="min").tail(minutes)
    frame["window_start"] = frame[EVENT_TS] - pd.Timedelta(seconds=75)
    prices = dict.fromkeys(("open", "high", "low", "close", "vwap"), 100.0 + VOLUME[origin])
    return frame.assign(source=origin, volume=VOLUME[origin], adjusted=False, transactions=1, **prices).assign(
        **{CREATED_TS: created}
    )


def _write(settings: Settings) -> None:
    """Each symbol's bars, one batch (and part file) per write: the first origin for every minute, the later ones
    for the newest minute only, each written a day after the one before."""
    writer = OfflineWriter(settings.data_dir, fsync=False)
    for symbol, origins, _ in WRITES:
        for i, origin in enumerate(origins):
            created = pd.Timestamp("2024-03-05", tz="UTC") + pd.Timedelta(days=i)
            writer.append(OHLCV_MINUTE, _bars(symbol, origin, created, MINUTES if i == 0 else 1), use_watermark=False)


def _served(store: FeatureStore) -> dict[str, float]:
    rows = [{ENTITY_KEY: symbol} for symbol, _, _ in WRITES]
    online = store.get_online_features(REFS, rows).to_df()
    assert (online["close"] - online["volume"] == 100.0).all(), online  # one row's values, not a mix
    return dict(zip(online[ENTITY_KEY], online["volume"].astype(float), strict=True))


@pytest.fixture
def repo(make_applied_repo: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An applied repo of its own (``materialize_incremental`` starts where this view's last recorded interval
    ended: no other test's), holding the writes; TTLs are judged at the newest minute (stores opened afterwards take
    it)."""
    monkeypatch.setenv("FEAST_ONLINE_READ_AT", NEWEST.isoformat())
    settings = make_applied_repo()
    _write(settings)
    return settings


def test_stock_feast_materialize_serves_the_highest_origin(repo: Settings, redis_client: redis.Redis) -> None:
    url = repo.redis_url
    assert url
    expected = {symbol: VOLUME[winner] for symbol, _, winner in WRITES}
    newest_writes = {symbol: VOLUME[origins[-1]] for symbol, origins, _ in WRITES}
    first = {symbol: VOLUME[origins[0]] for symbol, origins, _ in WRITES}
    assert newest_writes != expected  # not vacuous: a reader by write time alone serves something else
    start, end = FIRST_EVENT - pd.Timedelta(hours=1), NEWEST + pd.Timedelta(hours=1)
    store = open_store(repo, url)
    assert type(store._get_provider().offline_store) is AsofDuckDBOfflineStore
    assert not store.config.materialization_config.pull_latest_features

    # What Feast's local engine de-duplicates by default: the store's pull of every row leaves out the rows outranked
    # at their event time, and only those (the older minutes of each symbol are all there).
    source = store.get_feature_view(OHLCV_MINUTE.name).batch_source
    assert source is not None
    pulled = AsofDuckDBOfflineStore.pull_all_from_table_or_query(
        store.config, source, [ENTITY_KEY], ["volume"], EVENT_TS, CREATED_TS, None, None
    ).to_df()
    newest = pulled[pulled[EVENT_TS] == NEWEST]
    assert dict(zip(newest[ENTITY_KEY], newest["volume"], strict=True)) == expected
    older = pulled[pulled[EVENT_TS] < NEWEST]
    assert len(older) == len(WRITES) * (MINUTES - 1)
    assert (older["volume"] == older[ENTITY_KEY].map(first)).all()

    # materialize_incremental (Feast's default pull of every row): the older minutes first, then from there on.
    store.materialize(start.to_pydatetime(), (NEWEST - pd.Timedelta(seconds=30)).to_pydatetime(), [OHLCV_MINUTE.name])
    assert _served(store) == first  # the older minutes have one row each
    store.materialize_incremental(end.to_pydatetime(), [OHLCV_MINUTE.name])
    assert _served(store) == expected

    # The CLI, as an operator runs it.
    redis_client.flushdb()
    result = feast_cli(repo, url, "materialize", "-v", OHLCV_MINUTE.name, start.isoformat(), end.isoformat())
    assert result.returncode == 0, result.stdout + result.stderr
    assert _served(open_store(repo, url)) == expected

    # Feast's other pull: the store's latest row per entity.
    redis_client.flushdb()
    store = open_store(repo, url)
    store.config.materialization_config = MaterializationConfig(pull_latest_features=True)
    store.materialize(start.to_pydatetime(), end.to_pydatetime(), [OHLCV_MINUTE.name])
    assert _served(store) == expected
