import redis

from ingestion.store.redis_server import RedisServer, find_redis_server


def test_embedded_server_starts_and_stops() -> None:
    assert find_redis_server()
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        port = server.port
    probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        probe.ping()
        alive = True
    except redis.ConnectionError:
        alive = False
    assert not alive
