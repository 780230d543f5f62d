"""Proxies and CA bundle from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE), read per request.

A tiny recording forward proxy on loopback forwards plain-HTTP requests and tunnels CONNECT; an HTTPS vendor with
a self-signed certificate (made with the ``openssl`` tool) is trusted only through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fixtures.http import TEST_KEY, Script, ServerFactory

from ingestion.errors import TransportError
from ingestion.http import BearerAuth, RetryPolicy, Timeouts, VendorHTTP
from ingestion.simulators.http import Response

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]


class RecordingProxy:
    """Records every request; forwards absolute-URI GETs and tunnels CONNECT."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.seen.append(Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                target = urlsplit(self.path)
                upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
                forwarded = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
                upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=forwarded)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

            def do_CONNECT(self) -> None:
                proxy.seen.append(Seen("CONNECT", self.path, {k.lower(): v for k, v in self.headers.items()}))
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                relay(self.connection, upstream)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def relay(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 10)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    finally:
        b.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    server = RecordingProxy()
    yield server
    server.stop()


def core(base_url: str) -> VendorHTTP:
    return VendorHTTP(
        "polygon",
        base_url,
        auth=BearerAuth(TEST_KEY),
        retry=RetryPolicy(max_attempts=1, rng=random.Random(0)),
        timeouts=Timeouts(connect=2.0, read=5.0, total=10.0),
    )


OK = Response.json({"status": "OK", "results": [{"c": 1.0}]})


def test_http_proxy_is_used_for_an_http_base_url(
    proxy: RecordingProxy, serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, test_key: str
) -> None:
    script = Script([OK])
    server = serve({"/v2/x": script})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # set after the client exists: read per request
    with core(server.url) as http:
        assert http.get("x", "/v2/x", {"a": 1}).json()["results"] == [{"c": 1.0}]
    assert [s.method for s in proxy.seen] == ["GET"] and proxy.seen[0].target == f"{server.url}/v2/x?a=1"
    assert script.calls == 1


def test_no_proxy_bypasses_the_proxy(
    proxy: RecordingProxy, serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, test_key: str
) -> None:
    script = Script([OK])
    server = serve({"/v2/x": script})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with core(server.url) as http:
        http.get("x", "/v2/x")
    assert proxy.seen == [] and script.calls == 1


def test_proxy_credentials_never_reach_an_error_message(proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "proxy-pass-7Hq2"
    monkeypatch.setenv("HTTP_PROXY", f"http://me:{secret}@127.0.0.1:9")  # nothing listens on port 9
    with core("http://127.0.0.1:8") as http, pytest.raises(TransportError) as info:
        http.get("x", "/v2/x")
    assert secret not in str(info.value)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_vendor(certificate: tuple[Path, Path]) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS vendor with a self-signed certificate; yields its URL and the Authorization headers it received."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("Authorization", ""))
            body = json.dumps({"status": "OK", "results": [{"c": 2.0}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_https_goes_through_a_connect_tunnel_and_trusts_the_ca_bundle(
    proxy: RecordingProxy,
    tls_vendor: tuple[str, list[str]],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    test_key: str,
) -> None:
    url, received = tls_vendor
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    with core(url) as http:
        assert http.get("x", "/v2/x").json()["results"] == [{"c": 2.0}]
    assert received == [f"Bearer {test_key}"]  # the vendor got the key, inside TLS
    assert [s.method for s in proxy.seen] == ["CONNECT"] and proxy.seen[0].target == url.removeprefix("https://")
    assert all(test_key not in v for v in proxy.seen[0].headers.values())  # the proxy never saw it
    assert "authorization" not in proxy.seen[0].headers


def test_without_the_ca_bundle_a_self_signed_vendor_is_refused(
    proxy: RecordingProxy, tls_vendor: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = tls_vendor
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with core(url) as http, pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        http.get("x", "/v2/x")
    assert received == []
