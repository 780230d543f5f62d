"""A total deadline per attempt: a server that trickles bytes cannot hold a request past it.

Socket timeouts bound each *wait* for bytes, so a server sending one byte a second never trips them and can hold an
attempt for as long as it likes. The deadline bounds the whole attempt (connection, headers and body): a timer
armed when the attempt starts shuts the attempt's socket down when it fires, which wakes the blocked read with an
error that the caller reports as a :class:`~ingestion.errors.TransportError` (and the retry policy treats as such).

To know the socket, the sessions built by :func:`~ingestion.http.session.make_session` use connection classes that
report their socket to the deadline armed on the current thread (:class:`DeadlineAdapter`), once connected and each
time they send a request (a pooled connection is reused across attempts). The socket itself is kept, not the
connection: ``http.client`` detaches it from a connection that will close, while the response still reads from it.
A session from elsewhere still gets the deadline for the body (:meth:`AttemptDeadline.watch_response`). The TCP
connect is bounded by the connect timeout, before there is a socket to shut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager

_armed = threading.local()


class AttemptDeadline:
    """Context manager: within it, connections used by this thread are shut down once ``seconds`` have passed.

    ``expired`` tells afterwards whether it fired; a body that ended early because of it is not a complete body.
    """

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the attempt deadline is seconds and must be positive")
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, conn: HTTPConnection) -> None:
        """The connection this attempt is using (called by the watched connection classes)."""
        sock = conn.sock
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            fire = self.expired
        if fire:
            _shutdown(sock)

    def watch_response(self, response: Any) -> None:
        """Watch the connection behind a ``requests`` response (for sessions not built with the adapter)."""
        conn = getattr(getattr(response, "raw", None), "connection", None)
        if isinstance(conn, HTTPConnection):
            self.watch(conn)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def __enter__(self) -> AttemptDeadline:
        _armed.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _armed.deadline = None


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not the TLS wrapper's: that one also drops the TLS object another thread is reading with.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _report(conn: HTTPConnection) -> None:
    deadline: AttemptDeadline | None = getattr(_armed, "deadline", None)
    if deadline is not None:
        deadline.watch(conn)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _report(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _report(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """TLS connections report the same way (the watched methods come first in the MRO)."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections (direct or through an HTTP proxy) honour :class:`AttemptDeadline`."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS manager keeps its own pool classes
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager
