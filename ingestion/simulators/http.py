"""A small real HTTP server on loopback for the vendor simulators (and for tests of the HTTP core).

Each simulator is a list of :class:`Route` objects whose handlers are plain functions from a :class:`Request` to a
:class:`Response`. The server adds what every vendor has in common: authentication through a pluggable callback,
per-key request counters by time window (so tests can prove that no request went over a limit), a scalable clock
(so a per-minute quota can be exercised in a fraction of a second), and a fault hook that can replace or damage any
response.

It is built on the standard library's threading HTTP server speaking HTTP/1.1 with keep-alive, so pooled client
connections are reused as they would be against the real vendor.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass(frozen=True)
class Request:
    """An incoming request. ``headers`` keys are lower case; ``api_key`` is what the auth callback extracted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    received_at: float
    api_key: str | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter (what most web frameworks take), or ``default``."""
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Set by a fault: close the connection without a response, or after writing only part of the body.
    reset: bool = False
    truncate_to: int | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status=status, body=orjson.dumps(payload), headers={"Content-Type": "application/json", **(headers or {})}
        )

    @classmethod
    def text(cls, text: str, status: int) -> Response:
        return cls(status=status, body=text.encode(), headers={"Content-Type": "text/plain"})


Handler = Callable[[Request, dict[str, str]], Response]
"""A route handler: the request and the named groups of the route's pattern."""


@dataclass(frozen=True)
class Route:
    """``pattern`` is a regular expression matched against the whole path; named groups become path params."""

    name: str
    pattern: str
    handler: Handler
    method: str = "GET"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = re.fullmatch(self.pattern, path)
        return m.groupdict() if m else None


class SimClock:
    """Simulated time: ``speed`` simulated seconds pass per real second (1.0 = real time).

    Vendors count requests per minute and per day; a test sets ``speed=60`` to live a minute in a second.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self.speed = speed
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            return self._sim0 + (time.monotonic() - self._real0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (e.g. past a quota reset)."""
        with self._lock:
            self._offset += seconds


Authenticator = Callable[[Request], "str | Response"]
"""Returns the caller's key when it is accepted, or the vendor's error response."""

FaultHook = Callable[[Request, Route | None], "Response | None"]
"""Called before a handler. A response it returns is sent instead (a 500, a reset, a delay already slept, ...)."""

ResponseHook = Callable[[Request, Route, Response], Response]
"""Called after a handler: may damage the response (truncate it, corrupt JSON, drift the schema)."""


class RequestLog:
    """Thread-safe counters of requests: per route, per key, and per key per time window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self._times: dict[str, list[float]] = {}

    def record(self, route: str, key: str | None, status: int, at: float) -> None:
        with self._lock:
            self.by_route[route] += 1
            self.by_status[status] += 1
            if key is not None:
                self.by_key[key] += 1
                self._times.setdefault(key, []).append(at)

    def times(self, key: str) -> list[float]:
        with self._lock:
            return list(self._times.get(key, ()))

    def max_in_window(self, key: str, window: float) -> int:
        """The largest number of requests this key made within any ``window`` seconds (simulated time)."""
        stamps = sorted(self.times(key))
        best, lo = 0, 0
        for hi, t in enumerate(stamps):
            while t - stamps[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def reset(self) -> None:
        with self._lock:
            self.by_route.clear()
            self.by_key.clear()
            self.by_status.clear()
            self._times.clear()


class SimServer:
    """A loopback HTTP server over a list of routes. Use as a context manager or call start/stop."""

    def __init__(
        self,
        routes: Iterable[Route],
        authenticate: Authenticator | None = None,
        *,
        name: str = "sim",
        clock: SimClock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.routes = list(routes)
        self.authenticate = authenticate
        self.clock = clock or SimClock()
        self.log = RequestLog()
        self.fault_hooks: list[FaultHook] = []
        self.response_hooks: list[ResponseHook] = []
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{self.name} simulator is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str]) -> Response:
        parts = urlsplit(raw_path)
        request = Request(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            received_at=self.clock.now(),
        )
        route, params = self._find(method, parts.path)
        key: str | None = None
        if self.authenticate is not None:
            outcome = self.authenticate(request)
            if isinstance(outcome, Response):
                self.log.record(route.name if route else "?", None, outcome.status, request.received_at)
                return outcome
            key = outcome
            request = Request(**{**request.__dict__, "api_key": key})
        for hook in self.fault_hooks:
            faulted = hook(request, route)
            if faulted is not None:
                self.log.record(route.name if route else "?", key, faulted.status, request.received_at)
                return faulted
        if route is None or params is None:
            response = Response.json({"status": "NOT_FOUND", "message": f"no route for {parts.path}"}, status=404)
        else:
            response = route.handler(request, params)
            for rhook in self.response_hooks:
                response = rhook(request, route, response)
        self.log.record(route.name if route else "?", key, response.status, request.received_at)
        return response

    def _find(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None, None

    def start(self) -> SimServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the second waits for a delayed ACK (~40 ms).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self._serve("POST")

            def _serve(self, method: str) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = server.dispatch(method, self.path, headers)
                if response.reset:
                    self.close_connection = True
                    return
                body = response.body
                self.send_response(response.status)
                for k, v in response.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if response.truncate_to is not None:
                    self.wfile.write(body[: response.truncate_to])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                # Request lines carry query strings (and real clients may put keys there): never print them.
                return

        self._httpd = ThreadingHTTPServer((self._host, self._port), _Handler)
        self._httpd.daemon_threads = True
        httpd = self._httpd
        # A short poll interval: stop() waits for one poll, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name=f"{self.name}-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bearer_or_query_key(request: Request, query_param: str = "apiKey") -> str | None:
    """The key from ``Authorization: Bearer`` or from a query parameter, as vendors accept either."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.arg(query_param)
