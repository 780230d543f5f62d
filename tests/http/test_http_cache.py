"""Response and frame cache: keys without secrets, only 2xx stored, TTLs, Redis and the in-process fallback."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ingestion.http import CacheTTL, HTTPResult, ManualClock, ResponseCache
from ingestion.store.redis_server import free_port


def result(status: int = 200, body: bytes = b'{"status":"OK"}', **query: object) -> HTTPResult:
    return HTTPResult(
        vendor="polygon",
        endpoint="aggs",
        path="/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-31",
        query=query or {"adjusted": "true", "limit": 5000},
        status=status,
        headers={"content-type": "application/json", "x-uw-daily-req-count": "17"},
        body=body,
        request_id="req-1",
    )


def test_keys_are_hashes_without_secrets_and_ignore_auth_params(test_key: str) -> None:
    cache = ResponseCache()
    plain = cache.response_key("polygon", "aggs", "/p", {"b": 2, "a": 1})
    with_key = cache.response_key("polygon", "aggs", "/p", {"a": 1, "apiKey": test_key, "b": 2, "token": test_key})
    assert plain == with_key
    assert test_key not in with_key
    assert plain.startswith("ingestion:cache:polygon:resp:")
    assert cache.response_key("polygon", "aggs", "/p", {"a": 1, "b": 3}) != plain
    assert cache.response_key("uw", "aggs", "/p", {"a": 1, "b": 2}) != plain  # namespaced per vendor
    assert cache.response_key("polygon", "aggs", "/p", {"a": True}) == cache.response_key(
        "polygon", "aggs", "/p", {"a": "true"}
    )


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 429, 500, 503])
def test_non_2xx_cannot_be_stored(status: int) -> None:
    cache = ResponseCache()
    with pytest.raises(ValueError, match="only 2xx"):
        cache.put(result(status=status), ttl=60)
    assert cache.get("polygon", "aggs", result().path, result().query) is None


def test_round_trip_and_ttl_in_process(manual_clock: ManualClock) -> None:
    cache = ResponseCache(clock=manual_clock.now)
    original = result()
    cache.put(original, ttl=CacheTTL.INTRADAY)
    hit = cache.get("polygon", "aggs", original.path, original.query)
    assert hit is not None and hit.from_cache and hit.body == original.body and hit.status == 200
    assert hit.request_id == "req-1"
    assert "x-uw-daily-req-count" not in hit.headers  # stale quota counters are not replayed
    manual_clock.advance(CacheTTL.INTRADAY)
    assert cache.get("polygon", "aggs", original.path, original.query) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_local_store_is_bounded(manual_clock: ManualClock) -> None:
    cache = ResponseCache(clock=manual_clock.now, max_local_entries=3)
    for i in range(5):
        cache.put(result(page=i), ttl=60)
    assert cache.get("polygon", "aggs", result().path, {"page": 0}) is None
    assert cache.get("polygon", "aggs", result().path, {"page": 4}) is not None


def test_from_url_picks_the_backend(redis_url: str) -> None:
    assert ResponseCache.from_url(redis_url).shared
    assert not ResponseCache.from_url(None).shared


def test_redis_backend_expires_and_clears(redis_client: redis.Redis) -> None:
    cache = ResponseCache(redis_client)
    r = result()
    cache.put(r, ttl=CacheTTL.HISTORICAL)
    key = cache.response_key(r.vendor, r.endpoint, r.path, r.query)
    assert 0 < redis_client.pttl(key) <= CacheTTL.HISTORICAL * 1000
    other = ResponseCache(redis_client)  # another process sees it
    hit = other.get("polygon", "aggs", r.path, r.query)
    assert hit is not None and hit.body == r.body
    assert other.clear("polygon") == 2  # the response and its last-good copy (the stale fallback)
    assert cache.get("polygon", "aggs", r.path, r.query) is None


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series(["AAPL", "MSFT"], dtype="string"),
            "window_start": pd.to_datetime([1704205800000, 1704205860000], unit="ms", utc=True),
            "close": [185.5, 370.25],
            "transactions": pd.Series([10, None], dtype="Int64"),
        }
    )


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_dataframes_round_trip_with_dtypes(backend: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue("redis_client") if backend == "redis" else None
    cache = ResponseCache(client)
    df = frame()
    params = {"symbol": "AAPL", "from": "2024-01-02"}
    assert cache.get_dataframe("polygon.aggs", params) is None
    cache.set_dataframe("polygon.aggs", params, df, ttl=CacheTTL.HISTORICAL)
    back = cache.get_dataframe("polygon.aggs", params)
    assert back is not None
    pd.testing.assert_frame_equal(back, df)
    assert str(back["window_start"].dtype) == "datetime64[ns, UTC]"


def test_redis_outage_falls_back_to_process_memory(caplog: pytest.LogCaptureFixture, manual_clock: ManualClock) -> None:
    port = free_port()
    # No client-side retries, so the test does not wait through redis-py's own backoff.
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    cache = ResponseCache(client, clock=manual_clock.now, redis_retry_after=30.0)
    with caplog.at_level(logging.WARNING, logger="ingestion.http.cache"):
        cache.put(result(), ttl=60)
        hit = cache.get("polygon", "aggs", result().path, result().query)
    assert hit is not None and hit.body == result().body
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1
    assert cache.clear("frames") == 0  # still skipping Redis during the cool-down: no second error
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1
