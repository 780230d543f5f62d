"""The embedded Redis is locked to its user: a password, a private unix socket, no CONFIG; the effective
``feature_store.yaml`` that holds the password is 0600; and a password with ``,`` reaches Feast intact."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from fixtures.serving import etf_flow_row

from ingestion.config import Settings, settings
from ingestion.http.redaction import redact
from ingestion.store.redis_conn import connect
from ingestion.store.redis_server import RedisServer, redis_url_or_embedded


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_embedded_redis_refuses_strangers_and_config_writes() -> None:
    with RedisServer() as server:
        assert server.socket_path is not None
        assert server.url.startswith("unix://")
        with pytest.raises(redis.AuthenticationError, match=r"(?i)authentication required|NOAUTH"):
            redis.Redis(unix_socket_path=server.socket_path).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(unix_socket_path=server.socket_path, password="guess").ping()
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        # Even with the password, the dump file cannot be pointed elsewhere (the attack: CONFIG SET dir + SAVE).
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command("CONFIG", "SET", "dir", "/tmp")
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command("MODULE", "LIST")
        client.close()
        # Only our user can reach the socket, and the password is not on the command line other users can read.
        assert _mode(server.socket_path) & 0o077 == 0
        assert _mode(os.path.dirname(server.socket_path)) == 0o700
        assert server.pid is not None
        assert server.password not in Path(f"/proc/{server.pid}/cmdline").read_text()
        socket_path, url = server.socket_path, server.url
    # Stopped means gone: no socket file left behind, and nothing answers at the URL.
    assert not os.path.exists(socket_path)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()


def test_embedded_url_password_is_masked_in_logged_text() -> None:
    with redis_url_or_embedded(None) as url:
        password = redis.connection.parse_url(url)["password"]
        assert password and password in url
        assert password not in redact(f"connecting to {url}")


def test_effective_feature_store_yaml_is_private(feast_settings: Settings) -> None:
    from ingestion.store.feast_repo import render_store_yaml

    assert feast_settings.redis_url is not None
    path = render_store_yaml(feast_settings, feast_settings.redis_url)
    assert _mode(path) == 0o600
    assert not list(path.parent.glob(".feature_store.*.tmp"))


def test_password_with_comma_reaches_feast_end_to_end(feast_repo: Path, tmp_path: Path) -> None:
    from ingestion.store.feast_repo import feast_cli, open_store

    password = 'p,w=1,"q",true'
    with RedisServer(password=password) as server:
        url = f"unix://:{quote(password, safe='')}@{server.socket_path}?db=0"
        s = replace(settings({}), repo_path=feast_repo, data_dir=tmp_path / "data", redis_url=url)
        applied = feast_cli(s, url, "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        store = open_store(s, url)
        now = datetime.now(UTC).replace(microsecond=0)
        store.write_to_online_store("etf_flow_daily", etf_flow_row(now))
        got = store.get_online_features(features=["etf_flow_daily:etf_close"], entity_rows=[{"symbol": "SPY"}])
        assert got.to_dict()["etf_close"] == [601.25]
        # Our own clients read the same URL the same way.
        assert connect(url).ping()
