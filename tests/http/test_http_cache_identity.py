"""Cache identity and integrity: entries belong to one environment (base URL + key), and a tampered one is a miss.

Scenarios run against real loopback servers and a real Redis: a keyless fetch from one server must not be served
to a keyed run against another, and a body rewritten in Redis must never reach a caller.
"""

from __future__ import annotations

import logging
import random

import orjson
import pytest
import redis
from fixtures.http import TEST_KEY, Script, ServerFactory

from ingestion.http import (
    BearerAuth,
    CacheScope,
    CacheTTL,
    HTTPResult,
    ResponseCache,
    RetryPolicy,
    VendorHTTP,
    key_fingerprint,
)
from ingestion.http.scope import base_url_identity
from ingestion.simulators.http import Request, Response

PATH = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05"
QUERY = {"adjusted": True, "limit": 5000}


def bars(close: float) -> Response:
    return Response.json({"status": "OK", "results": [{"t": 1704171600000, "c": close}]})


def anyone(request: Request) -> str:
    return "anonymous"  # a server that wants no key (the keyless run's simulator)


def client(base_url: str, redis_client: redis.Redis, key: str | None) -> VendorHTTP:
    # A fresh ResponseCache per client: as another process would have, sharing only Redis.
    return VendorHTTP(
        "polygon",
        base_url,
        auth=BearerAuth(key) if key else None,
        cache=ResponseCache(redis_client),
        retry=RetryPolicy(max_attempts=1, rng=random.Random(0)),
    )


def closes(result: HTTPResult) -> list[float]:
    return [row["c"] for row in result.json()["results"]]


def test_a_keyless_fetch_from_one_server_is_not_served_to_a_keyed_run_against_another(
    serve: ServerFactory, redis_client: redis.Redis, test_key: str
) -> None:
    simulator = Script([bars(140.91)])
    vendor = Script([bars(185.64)])
    server_a = serve({PATH: simulator}, authenticate=anyone)
    server_b = serve({PATH: vendor})  # wants TEST_KEY

    with client(server_a.url, redis_client, None) as keyless:
        assert closes(keyless.get("aggs", PATH, QUERY, cache_ttl=CacheTTL.HISTORICAL)) == [140.91]
    with client(server_b.url, redis_client, test_key) as keyed:
        first = keyed.get("aggs", PATH, QUERY, cache_ttl=CacheTTL.HISTORICAL)
        again = keyed.get("aggs", PATH, QUERY, cache_ttl=CacheTTL.HISTORICAL)
    assert vendor.calls == 1, "the keyed run must ask its own server, not take the keyless run's cached body"
    assert not first.from_cache and closes(first) == [185.64]
    assert again.from_cache and closes(again) == [185.64]  # its own environment is still cached and shared
    assert simulator.calls == 1


def test_one_server_with_two_keys_keeps_two_entries(
    serve: ServerFactory, redis_client: redis.Redis, test_key: str
) -> None:
    script = Script([bars(1.0), bars(2.0)])
    server = serve({PATH: script}, authenticate=anyone)
    with client(server.url, redis_client, test_key) as one, client(server.url, redis_client, "pk_other_key_42") as two:
        assert closes(one.get("aggs", PATH, QUERY, cache_ttl=60)) == [1.0]
        assert closes(two.get("aggs", PATH, QUERY, cache_ttl=60)) == [2.0]
        assert closes(one.get("aggs", PATH, QUERY, cache_ttl=60)) == [1.0]
    assert script.calls == 2


def test_a_body_rewritten_in_redis_is_refused_and_fetched_again(
    serve: ServerFactory, redis_client: redis.Redis, test_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script([bars(140.91)])
    server = serve({PATH: script})
    with client(server.url, redis_client, test_key) as http:
        http.get("aggs", PATH, QUERY, cache_ttl=CacheTTL.HISTORICAL)
        keys = redis_client.keys("ingestion:cache:*")
        assert len(keys) == 2  # the entry and its last-good copy
        for key in keys:  # someone with write access to Redis, but not the key, multiplies the prices by ten
            raw = redis_client.get(key)
            assert raw is not None and b"140.91" in raw
            redis_client.set(key, raw.replace(b"140.91", b"1409.1"), keepttl=True)
        with caplog.at_level(logging.WARNING, logger="ingestion.http.cache"):
            page = http.get("aggs", PATH, QUERY, cache_ttl=CacheTTL.HISTORICAL)
    assert closes(page) == [140.91] and not page.from_cache
    assert script.calls == 2
    assert http.cache is not None and http.cache.rejected == 1
    assert any("integrity check" in r.getMessage() for r in caplog.records)


def test_an_entry_moved_to_another_key_or_forged_without_the_key_is_a_miss(redis_client: redis.Redis) -> None:
    scope = CacheScope.of("https://api.polygon.io", "Bearer " + TEST_KEY)
    cache = ResponseCache(redis_client)

    def page(path: str, close: float) -> HTTPResult:
        body = orjson.dumps({"status": "OK", "results": [{"c": close}]})
        return HTTPResult("polygon", "aggs", path, {}, 200, {"content-type": "application/json"}, body)

    cache.put(page("/AAPL", 185.0), 60, scope=scope)
    cache.put(page("/MSFT", 400.0), 60, scope=scope)
    aapl = cache.response_key("polygon", "aggs", "/AAPL", {}, scope)
    msft = cache.response_key("polygon", "aggs", "/MSFT", {}, scope)
    redis_client.set(aapl, redis_client.get(msft) or b"")  # a valid entry, under another key
    assert cache.get("polygon", "aggs", "/AAPL", {}, scope=scope) is None
    # A stale last-good copy put in the fresh slot (to pass old data off as new) is refused the same way.
    redis_client.set(msft, redis_client.get(cache.stale_key("polygon", "aggs", "/MSFT", {}, scope)) or b"")
    assert cache.get("polygon", "aggs", "/MSFT", {}, scope=scope) is None
    # The same bytes sealed for another key (what an attacker with only their own key can make) do not verify.
    other = CacheScope.of("https://api.polygon.io", "Bearer pk_attacker_own_key")
    forged = ResponseCache(redis_client)
    forged.put(page("/AAPL", 999.0), 60, scope=other)
    redis_client.set(aapl, redis_client.get(cache.response_key("polygon", "aggs", "/AAPL", {}, other)) or b"")
    assert cache.get("polygon", "aggs", "/AAPL", {}, scope=scope) is None
    assert cache.rejected == 3


def test_an_entry_replayed_after_its_signed_expiry_is_a_miss() -> None:
    cache = ResponseCache()
    body = HTTPResult("polygon", "aggs", "/p", {}, 200, {}, b'{"status":"OK"}')
    cache.put(body, 60, stored_at=1_000.0)
    assert cache.get("polygon", "aggs", "/p", {}, now=1_059.0) is not None
    assert cache.get("polygon", "aggs", "/p", {}, now=1_061.0) is None
    assert cache.rejected == 1


def test_scope_names_the_environment_without_the_key() -> None:
    fingerprint = key_fingerprint(TEST_KEY)
    assert len(fingerprint) == 16 and TEST_KEY not in fingerprint
    assert key_fingerprint(None) == key_fingerprint("") == "none"
    assert base_url_identity("https://API.polygon.io") == base_url_identity("https://api.polygon.io:443/")
    assert base_url_identity("http://127.0.0.1:8000/polygon/") == "http://127.0.0.1:8000/polygon"
    assert base_url_identity("http://[::1]:9/") == "http://[::1]:9"
    a = CacheScope.of("https://api.polygon.io", TEST_KEY)
    assert a == CacheScope.of("https://api.polygon.io:443", TEST_KEY)  # another process, the same environment
    assert a.key_fingerprint == fingerprint and TEST_KEY not in repr(a)
    assert CacheScope.of("https://api.polygon.io", None).key_fingerprint == "none"
    cache = ResponseCache()
    keys = {
        cache.response_key("polygon", "aggs", "/p", {}, scope)
        for scope in (
            a,
            CacheScope.of("https://api.massive.com", TEST_KEY),
            CacheScope.of("https://api.polygon.io", "pk_other_key_42"),
            CacheScope.of("https://api.polygon.io", None),
        )
    }
    assert len(keys) == 4 and all(TEST_KEY not in k and key_fingerprint(TEST_KEY) not in k for k in keys)
