"""Response and frame cache: Redis when given a client, an in-process TTL store otherwise (or when Redis fails).

What may be cached is decided by construction:

* :meth:`ResponseCache.put` takes an :class:`~ingestion.http.result.HTTPResult` and refuses anything but a fresh
  2xx (``ValueError``), so an error page cannot be stored by mistake;
* whether a 2xx body is complete (not a partial or malformed page) is the vendor client's call: it passes
  ``cache_if`` to :meth:`VendorHTTP.get` or stores explicitly after parsing;
* keys are SHA-256 of the environment (:class:`~ingestion.http.scope.CacheScope`: base URL and key fingerprint),
  vendor, endpoint, path and the sorted query with credential-like parameters removed, under ``{prefix}:{vendor}:``;
  so a key contains no secret, the same request with or without ``apiKey=`` hits one entry, and a simulator's answer
  is never served to a run against the real vendor (or with another key);
* every value is sealed by its scope (HMAC over the storage key, the metadata with its expiry, and the body) and
  checked on read: a value that fails is counted in :attr:`ResponseCache.rejected`, logged, and treated as a miss.

The caller chooses the TTL per data type; :class:`CacheTTL` holds the suggested values.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, cast

import orjson
import pandas as pd
import pyarrow as pa
import redis

from ingestion.http.clock import Clock, monotonic_clock
from ingestion.http.redaction import strip_auth_params
from ingestion.http.redis_guard import DEFAULT_RETRY_AFTER, RedisGuard
from ingestion.http.result import HTTPResult
from ingestion.http.scope import CacheScope

log = logging.getLogger(__name__)


class CacheTTL:
    """Suggested TTLs in seconds, by data type. The caller picks one per request."""

    HISTORICAL = 7 * 86400
    """Bars of a closed session: final, except for split adjustment, which a week's TTL bounds."""
    INTRADAY = 60
    """Bars of the current session: the last bar is still forming."""
    REFERENCE = 86400
    """Ticker details, exchanges, calendars: change at most daily."""
    NEWS = 300
    """News and other feeds where new items arrive all day."""


def _canonical(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    def norm(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return sorted((str(k), norm(v)) for k, v in strip_auth_params(params).items() if v is not None)


def cache_key(
    prefix: str, vendor: str, kind: str, parts: list[Any], params: Mapping[str, Any], scope: CacheScope
) -> str:
    """``{prefix}:{vendor}:{kind}:{sha256}`` over the scope (base URL, key fingerprint), ``parts`` and the sorted,
    credential-free ``params``."""
    digest = hashlib.sha256(orjson.dumps([*scope.parts, vendor, kind, *parts, _canonical(params)])).hexdigest()
    return f"{prefix}:{vendor}:{kind}:{digest}"


class _LocalStore:
    """A bounded in-process TTL store (least recently used entries go first)."""

    def __init__(self, clock: Clock, max_entries: int) -> None:
        self._clock = clock
        self._max = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[1]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._data[key] = (self._clock() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for k in doomed:
                del self._data[k]
            return len(doomed)


STALE_TTL = 7 * 86400
"""Seconds a last-good copy is kept for the stale fallback (a vendor outage longer than a week is not papered over)."""


def _pack(meta: dict[str, Any], body: bytes) -> bytes:
    head = orjson.dumps(meta)
    return len(head).to_bytes(4, "big") + head + body


def _unpack(raw: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(raw[:4], "big")
    meta: dict[str, Any] = orjson.loads(raw[4 : 4 + size])
    return meta, raw[4 + size :]


def _cached_result(
    vendor: str, endpoint: str, path: str, query: Mapping[str, Any], meta: dict[str, Any], body: bytes, **extra: Any
) -> HTTPResult:
    return HTTPResult(
        vendor=vendor,
        endpoint=endpoint,
        path=path,
        query=dict(query),
        status=int(meta["status"]),
        headers=meta["headers"],
        body=body,
        from_cache=True,
        request_id=meta.get("request_id"),
        attempts=0,
        **extra,
    )


class ResponseCache:
    """Cached vendor responses and whole frames.

    Args:
        redis: a ``redis.Redis`` client; None keeps everything in process.
        prefix: the key prefix; entries live under ``{prefix}:{vendor}:`` (frames under ``{prefix}:frames:``).
        clock: for the in-process TTLs (Redis expires keys itself).
        max_local_entries: bound of the in-process store.
        redis_retry_after: seconds to stay in process after a Redis error before trying Redis again.

    If Redis raises, the cache logs one warning and carries on in process for ``redis_retry_after`` seconds: a
    cache outage must not add a connect timeout to every request, nor stop ingestion
    (:class:`~ingestion.http.redis_guard.RedisGuard`).

    Every method takes the ``scope`` of the value (:class:`~ingestion.http.scope.CacheScope`); the default,
    :meth:`CacheScope.local`, suits values cached outside any vendor client and verifies only in this process.
    """

    def __init__(
        self,
        redis: redis.Redis | None = None,
        *,
        prefix: str = "ingestion:cache",
        clock: Clock | None = None,
        max_local_entries: int = 4096,
        redis_retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self._redis = redis
        self.prefix = prefix
        self._clock = clock or monotonic_clock
        self._local = _LocalStore(self._clock, max_local_entries)
        self._guard = RedisGuard("response cache", log, clock=self._clock, retry_after=redis_retry_after)
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        """Values that failed their integrity check or expiry (each also counted as a miss)."""

    @classmethod
    def from_url(cls, redis_url: str | None, **kwargs: Any) -> ResponseCache:
        """Redis at ``redis_url`` (e.g. ``settings().redis_url``) or, when None, the in-process store.

        Other keywords go to the constructor.
        """
        client = redis.Redis.from_url(redis_url) if redis_url else None
        return cls(client, **kwargs)

    @property
    def shared(self) -> bool:
        """True when entries go to Redis (and so are seen by other processes)."""
        return self._redis is not None

    # -- storage -------------------------------------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        client = self._redis
        if client is None:
            return self._local.get(key)

        def shared() -> bytes | None:
            raw = client.get(key)
            return raw if isinstance(raw, bytes) else None

        return self._guard.run(shared, lambda: self._local.get(key))

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        client = self._redis
        if client is None:
            self._local.set(key, value, ttl)
            return

        def shared() -> None:
            client.set(key, value, px=max(1, int(ttl * 1000)))

        self._guard.run(shared, lambda: self._local.set(key, value, ttl))

    def _put_sealed(self, key: str, scope: CacheScope, meta: dict[str, Any], body: bytes, ttl: float) -> None:
        self._set(key, scope.seal(key, _pack(meta, body)), ttl)

    def _get_sealed(self, key: str, scope: CacheScope, now: float | None) -> tuple[dict[str, Any], bytes] | None:
        """The metadata and body stored at ``key``, when present, sealed by ``scope`` and not past its expiry."""
        raw = self._get(key)
        if raw is None:
            return None
        payload = scope.unseal(key, raw)
        if payload is None:
            self._reject(key, "failed its integrity check")
            return None
        meta, body = _unpack(payload)
        if float(meta.get("expires_at", 0.0)) <= (time.time() if now is None else now):
            # Signed expiry: a once-valid value replayed after its time is refused like a forged one.
            self._reject(key, "is past its signed expiry")
            return None
        return meta, body

    def _reject(self, key: str, why: str) -> None:
        self.rejected += 1
        log.warning("response cache: entry %s %s; treated as a miss", key, why)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    # -- responses -----------------------------------------------------------------------------------------------

    def response_key(
        self, vendor: str, endpoint: str, path: str, query: Mapping[str, Any], scope: CacheScope | None = None
    ) -> str:
        return cache_key(self.prefix, vendor, "resp", [endpoint, path], query, scope or CacheScope.local())

    def stale_key(
        self, vendor: str, endpoint: str, path: str, query: Mapping[str, Any], scope: CacheScope | None = None
    ) -> str:
        return cache_key(self.prefix, vendor, "last-good", [endpoint, path], query, scope or CacheScope.local())

    def get(
        self,
        vendor: str,
        endpoint: str,
        path: str,
        query: Mapping[str, Any],
        *,
        scope: CacheScope | None = None,
        now: float | None = None,
    ) -> HTTPResult | None:
        """The cached 2xx response for this request in ``scope``, marked ``from_cache=True``, or None.

        ``now`` is the wall-clock time (epoch seconds, default the system clock) checked against the signed expiry.
        """
        scope = scope or CacheScope.local()
        found = self._get_sealed(self.response_key(vendor, endpoint, path, query, scope), scope, now)
        self._count(found is not None)
        if found is None:
            return None
        return _cached_result(vendor, endpoint, path, query, *found)

    def put(
        self, result: HTTPResult, ttl: float, *, stored_at: float | None = None, scope: CacheScope | None = None
    ) -> None:
        """Store a fresh 2xx response for ``ttl`` seconds in ``scope``. Anything else raises ``ValueError``.

        A last-good copy is also kept for :data:`STALE_TTL` (at least ``ttl``), for :meth:`get_stale` to serve when
        the vendor is down. ``stored_at`` is the wall-clock time of the fetch (epoch seconds); the signed expiries
        count from it.
        """
        if not result.ok:
            raise ValueError(f"refusing to cache a {result.status} response: only 2xx responses are cached")
        if result.from_cache:
            return
        scope = scope or CacheScope.local()
        stored = time.time() if stored_at is None else stored_at
        # Only the content type is kept: quota and date headers would be stale when replayed.
        headers = {k: v for k, v in result.headers.items() if k == "content-type"}
        meta = {"status": result.status, "headers": headers, "request_id": result.request_id, "stored_at": stored}
        args = (result.vendor, result.endpoint, result.path, result.query, scope)
        self._put_sealed(self.response_key(*args), scope, {**meta, "expires_at": stored + ttl}, result.body, ttl)
        keep = max(ttl, STALE_TTL)
        self._put_sealed(self.stale_key(*args), scope, {**meta, "expires_at": stored + keep}, result.body, keep)

    def get_stale(
        self,
        vendor: str,
        endpoint: str,
        path: str,
        query: Mapping[str, Any],
        *,
        now: float | None = None,
        scope: CacheScope | None = None,
    ) -> HTTPResult | None:
        """The last good response for this request, marked ``stale=True`` with its ``age`` in seconds, or None."""
        scope = scope or CacheScope.local()
        now = time.time() if now is None else now
        found = self._get_sealed(self.stale_key(vendor, endpoint, path, query, scope), scope, now)
        if found is None:
            return None
        age = max(0.0, now - float(found[0].get("stored_at", 0.0)))
        return _cached_result(vendor, endpoint, path, query, *found, stale=True, age=age)

    # -- frames --------------------------------------------------------------------------------------------------

    def frame_key(self, name: str, params: Mapping[str, Any], scope: CacheScope | None = None) -> str:
        return cache_key(self.prefix, "frames", name, [], params, scope or CacheScope.local())

    def set_dataframe(
        self, name: str, params: Mapping[str, Any], df: pd.DataFrame, ttl: float, *, scope: CacheScope | None = None
    ) -> None:
        """Keep ``df`` for ``ttl`` seconds as Arrow IPC (dtypes, time zones and index survive the round trip)."""
        table = pa.Table.from_pandas(df)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        scope = scope or CacheScope.local()
        meta = {"expires_at": time.time() + ttl}
        self._put_sealed(self.frame_key(name, params, scope), scope, meta, sink.getvalue(), ttl)

    def get_dataframe(
        self, name: str, params: Mapping[str, Any], *, scope: CacheScope | None = None
    ) -> pd.DataFrame | None:
        """The frame stored under ``name`` and ``params``, or None when absent, expired or failing its check."""
        scope = scope or CacheScope.local()
        found = self._get_sealed(self.frame_key(name, params, scope), scope, None)
        self._count(found is not None)
        if found is None:
            return None
        with pa.ipc.open_stream(found[1]) as reader:
            frame: pd.DataFrame = reader.read_all().to_pandas()
        return frame

    # -- housekeeping --------------------------------------------------------------------------------------------

    def clear(self, vendor: str | None = None) -> int:
        """Drop every entry (of one vendor, or ``"frames"``, when given). Returns how many were dropped."""
        prefix = f"{self.prefix}:{vendor}:" if vendor else f"{self.prefix}:"
        dropped = self._local.delete_prefix(prefix)
        client = self._redis
        if client is not None:

            def shared() -> int:
                keys = list(client.scan_iter(match=prefix + "*", count=500))
                return cast(int, client.delete(*keys)) if keys else 0

            dropped += self._guard.run(shared, lambda: 0)
        return dropped
