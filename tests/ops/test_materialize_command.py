"""``materialize`` needs Redis and the registry only: it starts no vendor simulator.

The observable is the sockets the process binds (Python's ``socket.bind`` audit event): every simulator server
binds a loopback TCP port, while materialize only connects to Redis.
"""

from __future__ import annotations

import socket
import sys

import pytest
import redis

from ingestion import cli
from ingestion.config import Settings

_bound: list[object] | None = None
"""Addresses bound while a test records (None: not recording)."""


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.bind" and _bound is not None:
        sock, address = args
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            _bound.append(address)


# An audit hook cannot be removed; it records only while ``_bound`` is a list.
sys.addaudithook(_audit)


def test_materialize_starts_no_simulator(
    applied_repo: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    global _bound
    s = applied_repo
    assert s.redis_url
    for key in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)  # no keys: a command that wanted vendors would start the simulators
    monkeypatch.setenv("REDIS_URL", s.redis_url)
    monkeypatch.setenv("FEAST_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("FEAST_REPO_PATH", str(s.repo_path))

    _bound = []
    try:
        code = cli.main(["materialize", "--views", "ohlcv_daily"])
        bound = list(_bound)
    finally:
        _bound = None

    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("ohlcv_daily: ") and "keys/s" in out
    assert bound == [] and "simulators" not in err
