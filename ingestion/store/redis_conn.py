"""One way to name a Redis deployment, for Feast's online store and for our own cache, limiter and breaker state.

``REDIS_URL`` takes the usual single-node URLs plus two schemes for what one URL cannot say:

* ``redis://[user:password@]host:port/db`` and ``rediss://...`` (TLS): one node.
* ``redis+cluster://[:password@]host1:port1,host2:port2`` (or ``rediss+cluster://``): a Redis Cluster; any
  reachable nodes will do, the client discovers the rest.
* ``redis+sentinel://[:password@]host1:port1,host2:port2/master_name[/db]``: Sentinel-managed primary.

:func:`feast_online_store` renders the same target as Feast's ``online_store`` block (``redis_type``,
``connection_string``, ``sentinel_master``), and :func:`connect` returns the matching redis-py client, so the two can
never point at different deployments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import redis
from redis.cluster import ClusterNode, RedisCluster

Kind = Literal["redis", "redis_cluster", "redis_sentinel"]

_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("redis", False),
    "rediss": ("redis", True),
    "redis+cluster": ("redis_cluster", False),
    "rediss+cluster": ("redis_cluster", True),
    "redis+sentinel": ("redis_sentinel", False),
    "rediss+sentinel": ("redis_sentinel", True),
}

_HINT = (
    "REDIS_URL must look like redis://host:6379/0, rediss://host:6380/0, redis+cluster://h1:7000,h2:7001 "
    "or redis+sentinel://h1:26379,h2:26379/mymaster"
)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``REDIS_URL``. The password is kept out of ``repr``."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...]
    db: int = 0
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_master: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ValueError(_HINT)
    kind, ssl = _SCHEMES[scheme]
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart, userinfo = rest, ""
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) or None
    hosts, _, path = hostpart.partition("/")
    nodes = tuple(_node(h) for h in hosts.split(",") if h)
    if not nodes:
        raise ValueError(_HINT)
    segments = [p for p in path.split("/") if p]
    master = None
    if kind == "redis_sentinel":
        if not segments:
            raise ValueError(
                "redis+sentinel:// needs the master name as the path, e.g. redis+sentinel://h:26379/mymaster"
            )
        master = segments.pop(0)
    if kind == "redis" and len(nodes) > 1:
        raise ValueError("several hosts in REDIS_URL need redis+cluster:// or redis+sentinel://")
    db = 0
    if segments:
        if not segments[0].isdigit() or len(segments) > 1:
            raise ValueError(_HINT)
        db = int(segments[0])
    if kind == "redis_cluster" and db:
        raise ValueError("Redis Cluster has only database 0; drop the /db from REDIS_URL")
    if username == "default":
        username = None
    return RedisTarget(kind, nodes, db, ssl, username, password, master)


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, "6379"
    if not port.isdigit():
        raise ValueError(_HINT)
    return host.strip("[]"), int(port)


def feast_online_store(target: RedisTarget) -> dict[str, Any]:
    """Feast's ``online_store`` block for this target (type redis)."""
    options = [f"{h}:{p}" for h, p in target.nodes]
    if target.db:
        options.append(f"db={target.db}")
    if target.password:
        options.append(f"password={target.password}")
    if target.username:
        options.append(f"username={target.username}")
    if target.ssl:
        options.append("ssl=true")
    block: dict[str, Any] = {"type": "redis", "redis_type": target.kind, "connection_string": ",".join(options)}
    if target.sentinel_master:
        block["sentinel_master"] = target.sentinel_master
    return block


def connect(url: str, **kwargs: Any) -> redis.Redis | RedisCluster:
    """A redis-py client for ``url`` (single node, cluster or sentinel primary). ``kwargs`` go to the client."""
    target = parse_redis_url(url)
    common: dict[str, Any] = {"username": target.username, "password": target.password, **kwargs}
    if target.ssl:
        common["ssl"] = True
    if target.kind == "redis_cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes], **common)  # type: ignore[no-untyped-call]
    if target.kind == "redis_sentinel":
        from redis.sentinel import Sentinel

        sentinel = Sentinel(list(target.nodes), sentinel_kwargs={"password": target.password}, **common)  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinel.master_for(target.sentinel_master or "", db=target.db)  # type: ignore[no-untyped-call]
        return master
    host, port = target.nodes[0]
    return redis.Redis(host=host, port=port, db=target.db, **common)
