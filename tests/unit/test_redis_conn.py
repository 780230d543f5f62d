import pytest

from ingestion.store.redis_conn import feast_online_store, parse_redis_url


def test_single_node_with_tls_and_password() -> None:
    t = parse_redis_url("rediss://:s%3Ecret@cache.example:6380/2")
    assert (t.kind, t.nodes, t.db, t.ssl, t.password) == ("redis", (("cache.example", 6380),), 2, True, "s>cret")
    assert "s>cret" not in repr(t)
    block = feast_online_store(t)
    assert block == {
        "type": "redis",
        "redis_type": "redis",
        "connection_string": "cache.example:6380,db=2,password=s>cret,ssl=true",
    }


def test_cluster_and_sentinel() -> None:
    c = parse_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    assert c.kind == "redis_cluster" and len(c.nodes) == 2
    assert feast_online_store(c)["connection_string"] == "10.0.0.1:7000,10.0.0.2:7001"
    s = parse_redis_url("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/1")
    assert (s.kind, s.sentinel_master, s.db) == ("redis_sentinel", "mymaster", 1)
    block = feast_online_store(s)
    assert block["redis_type"] == "redis_sentinel" and block["sentinel_master"] == "mymaster"


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://h:1", "REDIS_URL must look like"),
        ("redis://h1:1,h2:2", "redis\\+cluster"),
        ("redis+sentinel://h:26379", "master name"),
        ("redis+cluster://h:7000/3", "only database 0"),
        ("redis://h:port/0", "REDIS_URL must look like"),
    ],
)
def test_bad_urls_explain_the_fix(url: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_redis_url(url)
