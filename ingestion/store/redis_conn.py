"""One way to name a Redis deployment, for Feast's online store and for our own cache, limiter and breaker state.

``REDIS_URL`` takes the usual single-node URLs plus two schemes for what one URL cannot say:

* ``redis://[user:password@]host:port/db`` and ``rediss://...`` (TLS): one node.
* ``redis+cluster://[:password@]host1:port1,host2:port2`` (or ``rediss+cluster://``): a Redis Cluster; any
  reachable nodes will do, the client discovers the rest.
* ``redis+sentinel://[:password@]host1:port1,host2:port2/master_name[/db]``: Sentinel-managed primary.
* ``unix://[:password@]/path/to/redis.sock[?db=N]``: one node on a unix socket (the embedded server's form).

:func:`feast_online_store` renders the same target as Feast's ``online_store`` block (``redis_type``,
``connection_string``, ``sentinel_master``), and :func:`connect` returns the matching redis-py client, so the two can
never point at different deployments.

Feast's ``connection_string`` is ``host:port,key=value,...``: it splits on every ``,`` and JSON-decodes each value
(``feast/infra/online_stores/redis.py``, ``_parse_connection_string``), then passes the pairs to redis-py as keyword
arguments. So a value with a ``,`` (or one that is valid JSON, like ``123`` or ``true``) would not reach Redis as
written; such values are rendered as JSON strings with ``,`` escaped as ``\u002c``, which Feast decodes back to the
exact text. A unix socket is passed the same way, as redis-py's ``unix_socket_path`` beside a placeholder node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster

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
    "REDIS_URL must look like redis://host:6379/0, rediss://host:6380/0, redis+cluster://h1:7000,h2:7001, "
    "redis+sentinel://h1:26379,h2:26379/mymaster or unix:///path/to/redis.sock?db=0"
)
# Feast needs a host:port first even when redis-py is told to use a unix socket (which then ignores it).
_SOCKET_PLACEHOLDER_NODE = ("localhost", 6379)


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
    socket_path: str | None = None
    """The unix socket of a ``unix://`` URL (``nodes`` is then empty)."""


def parse_redis_url(url: str) -> RedisTarget:
    scheme, sep, rest = url.partition("://")
    if not sep or (scheme not in _SCHEMES and scheme != "unix"):
        raise ValueError(_HINT)
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart, userinfo = rest, ""
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) or None
    if username == "default":
        username = None
    if scheme == "unix":
        return _unix_target(hostpart, username, password)
    kind, ssl = _SCHEMES[scheme]
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
    return RedisTarget(kind, nodes, db, ssl, username, password, master)


def _unix_target(rest: str, username: str | None, password: str | None) -> RedisTarget:
    path, _, query = rest.partition("?")
    params = dict(parse_qsl(query))
    db_text = params.get("db", "0")
    if not path.startswith("/") or not db_text.isdigit():
        raise ValueError(_HINT)
    return RedisTarget("redis", (), int(db_text), False, username, password, None, unquote(path))


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, "6379"
    if not port.isdigit():
        raise ValueError(_HINT)
    return host.strip("[]"), int(port)


def feast_online_store(target: RedisTarget) -> dict[str, Any]:
    """Feast's ``online_store`` block for this target (type redis); see the module docstring for the escaping."""
    nodes = target.nodes or (_SOCKET_PLACEHOLDER_NODE,)
    options = [f"{h}:{p}" for h, p in nodes]
    if target.socket_path:
        options.append(f"unix_socket_path={_feast_value(target.socket_path)}")
    if target.db:
        options.append(f"db={target.db}")
    if target.password:
        options.append(f"password={_feast_value(target.password)}")
    if target.username:
        options.append(f"username={_feast_value(target.username)}")
    if target.ssl:
        options.append("ssl=true")
    block: dict[str, Any] = {"type": "redis", "redis_type": target.kind, "connection_string": ",".join(options)}
    if target.sentinel_master:
        block["sentinel_master"] = target.sentinel_master
    return block


def _feast_value(text: str) -> str:
    """``text`` as a ``connection_string`` value that Feast's parser turns back into exactly ``text``."""
    if "," not in text:
        try:
            json.loads(text)
        except ValueError:
            return text  # Feast keeps a value that is not JSON as it is
    return json.dumps(text).replace(",", "\\u002c")


def connect(url: str, **kwargs: Any) -> redis.Redis | RedisCluster:
    """A redis-py client for ``url`` (single node, cluster or sentinel primary). ``kwargs`` go to the client."""
    # redis-py is imported here, not at module level: every command parses REDIS_URL before it runs, and ``apply``
    # never opens a connection in its own process (a quarter of a second of import it would pay for nothing).
    import redis
    from redis.cluster import ClusterNode, RedisCluster

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
    if target.socket_path:
        return redis.Redis(unix_socket_path=target.socket_path, db=target.db, **common)
    host, port = target.nodes[0]
    return redis.Redis(host=host, port=port, db=target.db, **common)


def parse_connection_string(connection_string: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Feast's ``host:port,key=value,...``: the nodes, and the options JSON-decoded where they are JSON (as Feast)."""
    nodes: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for item in connection_string.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            host, _, port = item.rpartition(":")
            nodes.append((host or item, int(port) if port.isdigit() and host else 6379))
            continue
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return nodes, options


def connect_feast(kind: str, connection_string: str, sentinel_master: str = "mymaster") -> redis.Redis | RedisCluster:
    """A redis-py client for a Feast ``online_store`` block's target (``redis_type``, ``connection_string``)."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    nodes, options = parse_connection_string(connection_string)
    if kind == "redis_cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **options)  # type: ignore[no-untyped-call]
    if kind == "redis_sentinel":
        from redis.sentinel import Sentinel

        sentinel = Sentinel(nodes, **options)  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinel.master_for(sentinel_master)  # type: ignore[no-untyped-call]
        return master
    host, port = nodes[0]
    return redis.Redis(host=host, port=port, **options)
