"""Pooled ``requests`` sessions with separate connect/read timeouts, a total deadline, and compressed transfer.

urllib3's own retries are switched off: the retry policy (:mod:`ingestion.http.retry`) is the only place that
decides to try again, so a request is never retried twice over by two layers that do not know of each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import requests

from ingestion.http.deadline import DeadlineAdapter


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``connect`` bounds the TCP/TLS handshake; ``read`` bounds each wait for bytes (not the whole body);
    ``total`` bounds a whole attempt, connection to last body byte, so a server trickling bytes cannot hold it."""

    connect: float = 5.0
    read: float = 30.0
    total: float = 30.0

    def __post_init__(self) -> None:
        if min(self.connect, self.read, self.total) <= 0:
            raise ValueError("timeouts are seconds and must be positive")

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


def make_session(
    *,
    pool_connections: int = 4,
    pool_maxsize: int = 16,
    headers: Mapping[str, str] | None = None,
    user_agent: str = "feast-market-data/0.1",
) -> requests.Session:
    """A session whose connection pool suits ``pool_maxsize`` concurrent threads per host.

    ``pool_connections`` is the number of hosts kept pooled; ``headers`` are sent with every request (never put a
    key here: use an auth provider, so the key is registered for redaction).
    """
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # Vendor JSON compresses ~10x; the body reader (ingestion.http.body) inflates it within its size limits.
    session.headers.update({"Accept-Encoding": "gzip, deflate", "Accept": "application/json", "User-Agent": user_agent})
    # .netrc credentials must not slip into vendor requests unannounced; proxies and the CA bundle are taken from the
    # environment explicitly, per request (ingestion.http.environ).
    session.trust_env = False
    if headers:
        session.headers.update(headers)
    return session
