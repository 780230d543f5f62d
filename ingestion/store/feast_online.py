"""Our online store: Feast's Redis online store with the key layout, TTL at read and pre-computed vectors ours.

``feature_repo/feature_store.yaml`` names it by import path::

    online_store:
      type: ingestion.store.feast_online.EnvRedisOnlineStore

Feast resolves that to :class:`EnvRedisOnlineStoreConfig` (the type name plus ``Config``) and, for reads and writes,
to :class:`EnvRedisOnlineStore`. Feast expands ``${VAR}`` in the yaml but has no defaults and takes no URLs, so the
config class fills Feast's
``redis_type`` / ``connection_string`` / ``sentinel_master`` from a Redis URL at load time, the one way our commands
render it (:func:`ingestion.store.redis_conn.feast_online_store`). Plain ``feast``, ``FeatureStore(repo_path=...)``
and our commands therefore reach the same Redis, and the password lives only in the environment and in memory.

The store class owns the layout (:mod:`ingestion.store.online.layout`) and every write goes through its
compare-and-set script (:mod:`ingestion.store.online.cas`): our fast writer and materialization
(:class:`~ingestion.store.online.OnlineWriter`) as well as Feast's own ``push`` and ``feast materialize``
(:meth:`EnvRedisOnlineStore.online_write_batch`). It uses no private Feast name: its Redis client, the hash fields
and the registry lookups are its own; the one protected method it overrides is a hook Feast's base class documents
for subclasses (see TTL at read).

**TTL at read.** ``FeatureView.ttl`` does not filter Feast's online reads, so an online value outlives the window
the offline join allows and a model serves what it never trained on. :meth:`EnvRedisOnlineStore.get_online_features`
nulls (status ``OUTSIDE_MAX_AGE``) every value whose event time is older than its view's ttl at the read instant,
by the offline join's rule: fresh when ``event_timestamp >= read instant - ttl``, to the microsecond. The read
instant is the wall clock, or ``read_at`` / ``$FEAST_ONLINE_READ_AT`` (an ISO instant) to replay a past day.
The per-view read expires its rows as Feast fills the response (``_read_features_per_fv``, the one hook Feast's
base class documents for subclasses, between the Redis read and the on-demand transforms), so an on-demand view
computes its output from a null for an input past its view's ttl, exactly the input the offline join hands it.

**Pre-computed vectors.** A FeatureService with ``precompute_online=True`` is read by Feast through
:meth:`read_precomputed_vectors`: one ``HMGET`` per entity of the service's slices (written with the values, see
the layout) and its views' event times; expired slices are swapped for null ones, and the slices are joined after
the names header. Feast then decodes the vector with its own fast path.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from pydantic import Field, StrictStr, model_validator

from ingestion.config import DEFAULT_REDIS_URL, settings
from ingestion.store.online.cas import SET_IF_NEWER, SET_SLICES_IF_CURRENT
from ingestion.store.online.catalog import Catalog, view_ttl_us
from ingestion.store.online.layout import Prepared, ServicePlan, ViewLayout, segment_field, ts_field
from ingestion.store.redis_conn import connect, connect_feast, feast_online_store, parse_redis_url

if TYPE_CHECKING:
    from feast import FeatureService, FeatureView, RepoConfig
    from feast.online_response import OnlineResponse
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

READ_AT_VARIABLE = "FEAST_ONLINE_READ_AT"
SLICE_BATCH = 512
BATCH_KEYS = 2048
"""Keys per batch a bulk write sends (about 1 MB for a daily bar): small enough to sit in the socket's buffer while
Redis runs the batch before it, large enough that a round trip is noise."""

TYPE_PATH: Literal["ingestion.store.feast_online.EnvRedisOnlineStore"] = (
    "ingestion.store.feast_online.EnvRedisOnlineStore"
)


def feast_redis_fields(redis_url: str) -> dict[str, Any]:
    """Feast's Redis fields (``redis_type``, ``connection_string``, maybe ``sentinel_master``) for a URL."""
    block = feast_online_store(parse_redis_url(redis_url))
    del block["type"]
    return block


class EnvRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """``online_store:`` block: Feast's Redis options, with the target taken from a URL.

    ``redis_url`` (default: ``$REDIS_URL``, else ``redis://localhost:6379/0``) names the deployment in any form
    ``REDIS_URL`` takes. An explicit ``connection_string`` in the yaml wins over both, as in Feast's own store.
    """

    type: Literal["ingestion.store.feast_online.EnvRedisOnlineStore"] = TYPE_PATH  # type: ignore[assignment]
    redis_url: StrictStr | None = Field(default=None, repr=False)
    read_at: datetime | None = None
    """The instant TTLs are judged at (default: ``$FEAST_ONLINE_READ_AT``, else the wall clock at each read)."""
    # The rendered string may carry the password: kept out of repr like the URL.
    connection_string: StrictStr = Field(default="localhost:6379", repr=False)

    @model_validator(mode="before")
    @classmethod
    def _connection_from_url(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        # Read now, when Feast loads the yaml, never at import: a test or a notebook may change the environment.
        if not values.get("read_at") and os.environ.get(READ_AT_VARIABLE, "").strip():
            values = {**values, "read_at": os.environ[READ_AT_VARIABLE].strip()}
        if values.get("connection_string"):
            return values
        url = values.get("redis_url") or settings().redis_url or DEFAULT_REDIS_URL
        return {**values, **feast_redis_fields(url), "redis_url": url}


@dataclass(frozen=True)
class _Request:
    """What one ``get_online_features`` call tells its ``read_precomputed_vectors`` call."""

    plan: ServicePlan
    full_feature_names: bool
    now_us: int


# A context variable, not a thread-local: the async read path runs in the caller's task, and the feature server's
# threads each read their own request.
_REQUEST: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("online_request", default=None)


@dataclass
class _ReadState:
    """One read's instant, and whether its per-view rows were already expired before Feast's transforms ran."""

    now_us: int
    expired_early: bool = False


# Set by every read for :meth:`EnvRedisOnlineStore._read_features_per_fv` (a copy of the context reaches the async
# read's tasks; the state object itself is shared, so the flag set there is seen by the caller).
_READ: contextvars.ContextVar[_ReadState | None] = contextvars.ContextVar("online_read_state", default=None)


def _cas_arguments(prepared: Prepared) -> tuple[list[Any], Any]:
    """The script header (ts field, field count, field names) and one object row per entity: seconds, nanos,
    Timestamp bytes, then the values and vector slices. A block of rows flattened with ``ravel().tolist()`` is a
    call's per-key arguments, built at C speed instead of a Python loop per key. Every write path comes here, so
    this is where a view with an order of origins gets the rank into its event times
    (:mod:`~ingestion.store.online.origin`)."""
    import numpy as np

    from ingestion.store.online.layout import segment_columns
    from ingestion.store.online.origin import ranked

    prepared = ranked(prepared)
    layout = prepared.layout
    fields = [*layout.fields, *(seg.field for seg in layout.segments)]
    columns = [*prepared.values, *segment_columns(layout, prepared.values, prepared.ts_bytes)]
    grid = np.empty((len(prepared), 3 + len(fields)), dtype=object)
    grid[:, 0] = prepared.secs
    grid[:, 1] = prepared.nanos
    grid[:, 2] = prepared.ts_bytes
    for j, column in enumerate(columns):
        grid[:, 3 + j] = column
    return [layout.ts_field, len(fields), *fields], grid


def _ts_us(raw: bytes, cache: dict[bytes, int]) -> int:
    """Epoch microseconds of a serialized Timestamp (cached: many entities share an event time)."""
    got = cache.get(raw)
    if got is None:
        from google.protobuf.timestamp_pb2 import Timestamp

        ts = Timestamp.FromString(raw)
        got = ts.seconds * 1_000_000 + ts.nanos // 1000
        if len(cache) < 100_000:
            cache[raw] = got
    return got


class EnvRedisOnlineStore(RedisOnlineStore):
    """Feast's ``RedisOnlineStore`` with our layout, TTL at read and pre-computed vectors (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._catalogs: dict[int, Catalog] = {}
        self._own_registry: Any = None
        self._ts_cache: dict[bytes, int] = {}
        self._lock = threading.Lock()
        # Slices from write_precomputed_vector, sent a batch per round trip (see there).
        self._pending_slices: list[tuple[bytes, list[bytes]]] = []
        self._pending_config: RepoConfig | None = None
        self._exit_hook = False
        self.clock: Callable[[], float] = time.time

    # Connection and registry ---------------------------------------------------------------------------------

    def redis(self, config: RepoConfig) -> Any:
        """Our redis-py client for the configured deployment (opened once)."""
        if self._redis is None:
            online = config.online_store
            url = getattr(online, "redis_url", None)
            if url:
                self._redis = connect(url)
            else:
                self._redis = connect_feast(online.redis_type.value, online.connection_string, online.sentinel_master)
        return self._redis

    def attach(self, client: Any) -> None:
        """Use ``client`` (a caller's redis-py client) instead of opening one."""
        self._redis, self._scripts = client, {}

    def script(self, config: RepoConfig, source: str) -> Any:
        """A registered Lua script on our client (EVALSHA, loaded on first use)."""
        if source not in self._scripts:
            self._scripts[source] = self.redis(config).register_script(source)
        return self._scripts[source]

    def catalog(self, registry: Any, project: str) -> Catalog:
        """Layouts, TTLs and vector plans of ``registry`` (cached per registry object)."""
        key = id(registry)
        found = self._catalogs.get(key)
        if found is None or found.registry is not registry:
            found = Catalog(registry, project)
            self._catalogs[key] = found
        return found

    def _config_catalog(self, config: RepoConfig) -> Catalog:
        """The catalog when Feast gives only the config (its ``push`` and ``materialize`` write paths)."""
        with self._lock:
            if self._own_registry is None:
                from feast import FeatureStore

                self._own_registry = FeatureStore(repo_path=str(config.repo_path), config=config).registry
        return self.catalog(self._own_registry, config.project)

    def read_instant_us(self, config: RepoConfig) -> int:
        """The read instant in epoch microseconds: ``read_at`` when configured, else now."""
        at = getattr(config.online_store, "read_at", None)
        if isinstance(at, str):  # assigned after validation (pydantic validates only at load)
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        if at is not None:
            aware = at if at.tzinfo else at.replace(tzinfo=UTC)
            return int(aware.timestamp() * 1_000_000)
        return int(self.clock() * 1_000_000)

    # Keys ----------------------------------------------------------------------------------------------------

    @staticmethod
    def entity_key(config: RepoConfig, join_key: str, value: str) -> bytes:
        """The hash key of one entity (serialized entity key + project)."""
        from ingestion.store.online.encoding import entity_key

        return entity_key(join_key, value, project=config.project, version=config.entity_key_serialization_version)

    @staticmethod
    def entity_keys(config: RepoConfig, join_key: str, values: Sequence[str]) -> list[bytes]:
        """The hash keys of many string entity values (:func:`~ingestion.store.online.encoding.entity_keys`)."""
        from ingestion.store.online.encoding import entity_keys

        return entity_keys(join_key, values, project=config.project, version=config.entity_key_serialization_version)

    @staticmethod
    def _keys(config: RepoConfig, entity_keys: Sequence[EntityKeyProto]) -> list[bytes]:
        from feast.infra.key_encoding_utils import serialize_entity_key

        project = config.project.encode()
        version = config.entity_key_serialization_version
        return [serialize_entity_key(k, entity_key_serialization_version=version) + project for k in entity_keys]

    # Writes --------------------------------------------------------------------------------------------------

    def write_prepared(self, config: RepoConfig, prepared: Prepared, *, keys_per_call: int = 256) -> int:
        """Compare-and-set every entity of ``prepared`` (values and vector slices); returns how many hashes were
        written."""
        return self.write_chunks(config, [prepared], keys_per_call=keys_per_call)

    def write_chunks(self, config: RepoConfig, chunks: Iterable[Prepared], *, keys_per_call: int = 256) -> int:
        """:meth:`write_prepared` for a stream of chunks, each encoded while Redis runs the one before (a lazy
        iterable overlaps the caller's encoding with Redis's work); returns how many hashes were written."""
        from ingestion.store.online.sender import ScriptStream

        client = self.redis(config)
        if type(client).__name__ == "RedisCluster":
            # A script's keys must share a slot on a cluster, and redis-py refuses scripts in a cluster pipeline:
            # one call per key, each routed to its key's node.
            script = self.script(config, SET_IF_NEWER)
            written = 0
            for prepared in chunks:
                header, grid = _cas_arguments(prepared)
                rows = zip(prepared.keys, grid, strict=True)
                written += sum(int(script(keys=[key], args=header + row.tolist())) for key, row in rows)
            return written
        stream = ScriptStream(client, SET_IF_NEWER)
        try:
            for prepared in chunks:
                header, grid = _cas_arguments(prepared)
                n = len(prepared)
                for first in range(0, n, BATCH_KEYS):
                    last = min(first + BATCH_KEYS, n)
                    bounds = [(s, min(s + keys_per_call, last)) for s in range(first, last, keys_per_call)]
                    stream.send([(prepared.keys[a:b], header + grid[a:b].ravel().tolist()) for a, b in bounds])
        except BaseException:
            stream.abort()
            raise
        return stream.finish()

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Feast's write path (``push``, ``feast materialize``) through our compare-and-set, slices included."""
        from google.protobuf.timestamp_pb2 import Timestamp

        if not data:
            return
        self.flush_precomputed()
        layout = self._config_catalog(config).layout(table.name)
        secs, nanos, stamps = [], [], []
        columns: list[list[bytes]] = [[] for _ in layout.features]
        for _, values, when, _ in data:
            ts = Timestamp()
            ts.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
            secs.append(ts.seconds)
            nanos.append(ts.nanos)
            stamps.append(ts.SerializeToString())
            for column, name in zip(columns, layout.features, strict=True):
                value = values.get(name)
                column.append(value.SerializeToString() if value is not None else b"")
        keys = self._keys(config, [d[0] for d in data])
        self.write_prepared(config, Prepared(layout, keys, secs, nanos, stamps, columns))
        if progress:
            progress(len(data))

    async def online_write_batch_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Feast's async write path (``push_async``, ``write_to_online_store_async``, and so the feature server's
        ``/push``) through the same compare-and-set, in a worker thread. The one inherited from Feast's Redis store
        writes the hash directly: no vector slices, no origin rank, and its own read-then-write compare."""
        import asyncio

        await asyncio.to_thread(self.online_write_batch, config, table, data, progress)

    def write_precomputed_vector(
        self,
        config: RepoConfig,
        feature_service_name: str,
        project: str,
        entity_key: EntityKeyProto,
        vector_bytes: bytes,
    ) -> None:
        """Store a vector computed elsewhere (``feast precompute``) as our per-view slices.

        Each view's slice is written only when the view's stored event time is the one the vector carries for it
        (:data:`~ingestion.store.online.cas.SET_SLICES_IF_CURRENT`): the slices our writes keep current are never
        replaced by an older snapshot, while hashes written before slices existed get theirs.
        """
        from feast.protos.feast.core.PrecomputedFeatureVector_pb2 import PrecomputedFeatureVector

        from ingestion.store.online.layout import segment, view_name_entry

        vector = PrecomputedFeatureVector.FromString(vector_bytes)
        by_view: dict[str, list[bytes]] = {}
        for name, value in zip(vector.feature_names, vector.values, strict=True):
            view, sep, _ = name.partition("__")
            if not sep:
                raise ValueError(f"vector of {feature_service_name}: feature {name!r} lacks its view prefix")
            by_view.setdefault(view, []).append(value.SerializeToString())
        args: list[bytes] = []
        for stamp in vector.fv_timestamps:
            view = stamp.feature_view_name
            ts = stamp.event_timestamp.SerializeToString()
            slice_ = segment(by_view.get(view, []), view_name_entry(view), ts)
            args += [ts_field(view), ts, segment_field(feature_service_name, view), slice_]
        if not args:
            return
        key = self._keys(config, [entity_key])[0]
        with self._lock:
            self._pending_slices.append((key, args))
            self._pending_config = config
            full = len(self._pending_slices) >= SLICE_BATCH
            if not self._exit_hook:
                atexit.register(self._flush_at_exit)
                self._exit_hook = True
        if full:
            self.flush_precomputed()

    def flush_precomputed(self) -> int:
        """Send the pending slices of :meth:`write_precomputed_vector` in one pipeline; returns how many were written.

        Feast calls ``write_precomputed_vector`` once per entity after every ``materialize`` and ``push`` (its
        ``precompute_feature_service`` pass over every key). A round trip each made a 200k-key materialize take
        minutes more, so slices are sent :data:`SLICE_BATCH` at a time, and whatever is pending at the store's next
        read or write (Feast's pass reads its next batch through :meth:`online_read`) or at exit. Deferring is safe:
        each slice is still written only if its view's event time is unchanged.
        """
        with self._lock:
            todo, self._pending_slices = self._pending_slices, []
            config = self._pending_config
        if not todo or config is None:
            return 0
        script = self.script(config, SET_SLICES_IF_CURRENT)
        client = self.redis(config)
        if type(client).__name__ == "RedisCluster":  # no scripts in a cluster pipeline (see write_prepared)
            return sum(int(script(keys=[key], args=args)) for key, args in todo)
        with client.pipeline(transaction=False) as pipe:
            for key, args in todo:
                script(keys=[key], args=args, client=pipe)
            return sum(int(n) for n in pipe.execute())

    def _flush_at_exit(self) -> None:
        try:
            self.flush_precomputed()
        except Exception as exc:  # at exit Redis may be gone; the slices are only a refresh of current ones
            logging.getLogger(__name__).warning("pending vector slices not written at exit: %s", type(exc).__name__)

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        """Feast's per-view read (values as stored, no TTL: ``get_online_features`` applies it), after sending any
        pending slices."""
        self.flush_precomputed()
        rows: list[tuple[datetime | None, dict[str, ValueProto] | None]] = super().online_read(
            config, table, entity_keys, requested_features
        )
        return rows

    # Feast's per-view read of ``get_online_features`` fills the response in ``_read_features_per_fv``, the hook
    # its OnlineStore base documents for subclasses, and runs on-demand transforms right after it. Expiring there,
    # not afterwards, hands a transform a null for an input past its view's ttl, as the offline join does.

    def _read_features_per_fv(self, *args: Any, **kwargs: Any) -> None:
        """Feast's batched per-view read, then every value older than its view's ttl nulled (see above)."""
        with self._expiring(*args, **kwargs):
            super()._read_features_per_fv(*args, **kwargs)

    async def _read_features_per_fv_async(self, *args: Any, **kwargs: Any) -> None:
        with self._expiring(*args, **kwargs):
            await super()._read_features_per_fv_async(*args, **kwargs)

    @contextlib.contextmanager
    def _expiring(
        self,
        config: RepoConfig,
        grouped_refs: Any,
        join_key_values: Any,
        entity_name_to_join_key_map: Any,
        online_features_response: Any,
        full_feature_names: bool,
        include_feature_view_version_metadata: bool = False,
    ) -> Iterator[None]:
        """Around Feast's per-view read (its arguments, by Feast's names): expire what it appended."""
        first, names = len(online_features_response.results), _requested_names(grouped_refs)
        yield
        self._expire_read(config, online_features_response, first, names, full_feature_names)

    def _expire_read(
        self,
        config: RepoConfig,
        response: Any,
        first: int,
        requested: list[tuple[Any, list[str]]],
        full_feature_names: bool,
    ) -> None:
        """Null the values Feast just appended (from result ``first`` on) that are older than their view's ttl.

        Feast appends each view's requested features in order, each block maybe followed by its store's own
        columns (Redis: the ``_ts:<view>`` field, dropped later). The names are checked as they are walked: a
        response laid out otherwise (a Feast upgrade) is left whole to the expiry after the read, and logged.
        """
        state = _READ.get()
        now_us = state.now_us if state is not None else self.read_instant_us(config)
        names = response.metadata.feature_names.val
        blocks: list[tuple[int, int | None]] = []  # (first result of a view's block, its ttl)
        at = first
        for table, features in requested:
            shown = table.projection.name_to_use()
            expected = [f"{shown}__{f}" if full_feature_names else f for f in features]
            if list(names[at : at + len(expected)]) != expected:
                logging.getLogger(__name__).warning(
                    "TTL before on-demand transforms skipped: Feast's response layout is not the expected one"
                )
                return
            blocks.append((at, view_ttl_us(table)))
            at += len(expected)
            while at < len(names) and ":" in names[at]:  # a store column such as _ts:<view>, never a feature
                at += 1
        for (start, ttl_us), (_, features) in zip(blocks, requested, strict=True):
            if ttl_us is not None:
                _expire_vectors(response.results[start : start + len(features)], now_us - ttl_us)
        if state is not None:
            state.expired_early = True

    # Reads ---------------------------------------------------------------------------------------------------

    def read_precomputed_vectors(
        self,
        config: RepoConfig,
        feature_service_name: str,
        project: str,
        entity_keys: list[EntityKeyProto],
    ) -> list[bytes | None]:
        """The service's vectors: slices joined after the names header, expired views as null slices.

        None for an entity whose hash holds a view's values but not its slice (written before slices existed):
        Feast then asks for ``feast precompute``. Outside a ``get_online_features`` call (which knows the service
        and the names Feast expects) there is nothing to answer with: all None.
        """
        self.flush_precomputed()
        request = _REQUEST.get()
        if request is None or request.plan.name != feature_service_name:
            return [None] * len(entity_keys)
        plan, now_us = request.plan, request.now_us
        header = plan.header(request.full_feature_names)
        keys = self._keys(config, entity_keys)
        fields = plan.fields
        with self.redis(config).pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            replies = pipe.execute()
        n_views = len(plan.views)
        cache = self._ts_cache
        out: list[bytes | None] = []
        for reply in replies:
            parts = [header]
            for i, view in enumerate(plan.views):
                slice_, stamp = reply[i], reply[n_views + i]
                if stamp is None:
                    parts.append(view.null_segment)
                elif slice_ is None:
                    parts = []
                    break
                elif view.ttl_us is not None and _ts_us(stamp, cache) < now_us - view.ttl_us:
                    parts.append(view.null_segment)
                else:
                    parts.append(slice_)
            out.append(b"".join(parts) if parts else None)
        return out

    async def read_precomputed_vectors_async(
        self,
        config: RepoConfig,
        feature_service_name: str,
        project: str,
        entity_keys: list[EntityKeyProto],
    ) -> list[bytes | None]:
        # In the caller's task, not an executor thread: the request context (and its plan) lives there.
        return self.read_precomputed_vectors(config, feature_service_name, project, entity_keys)

    @contextlib.contextmanager
    def _reading(
        self, config: RepoConfig, features: Any, registry: Any, project: str, full_feature_names: bool
    ) -> Iterator[Callable[[OnlineResponse], OnlineResponse]]:
        """One read's context: the service's plan for :meth:`read_precomputed_vectors` and the read instant while
        Feast reads, and the TTL rule (:func:`expire`) for a per-view response the read did not already expire."""
        from feast import FeatureService

        self.flush_precomputed()
        catalog = self.catalog(registry, project)
        now_us = self.read_instant_us(config)
        # A per-view read (a precompute service with on-demand views included) is expired as Feast fills it, before
        # its transforms (_read_features_per_fv). Expiring afterwards is the fallback should Feast not call that;
        # a vector read leaves no event times (read_precomputed_vectors already swapped expired views for null
        # slices), so expire passes over it.
        state = _ReadState(now_us)
        token = None
        if isinstance(features, FeatureService) and features.precompute_online:
            token = _REQUEST.set(_Request(catalog.plan(features), full_feature_names, now_us))
        read_token = _READ.set(state)

        def finish(response: OnlineResponse) -> OnlineResponse:
            if not state.expired_early:
                expire(response, features, catalog, full_feature_names, now_us)
            return response

        try:
            yield finish
        finally:
            _READ.reset(read_token)
            if token is not None:
                _REQUEST.reset(token)

    def get_online_features(
        self,
        config: RepoConfig,
        features: list[str] | FeatureService,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        """Feast's read, with values older than their view's ttl at the read instant nulled (see the module doc).

        A precompute service is answered by :meth:`fast_read` when it can be, else by Feast's own read."""
        fast = self.fast_read(config, features, entity_rows, registry, project, full_feature_names)
        if fast is not None and not include_feature_view_version_metadata:
            return fast
        with self._reading(config, features, registry, project, full_feature_names) as finish:
            return finish(
                super().get_online_features(
                    config,
                    features,
                    entity_rows,
                    registry,
                    project,
                    full_feature_names,
                    include_feature_view_version_metadata,
                )
            )

    async def get_online_features_async(
        self,
        config: RepoConfig,
        features: list[str] | FeatureService,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        # The fast read in the caller's task: a few HMGETs in one round trip, no worse than the await it replaces.
        fast = self.fast_read(config, features, entity_rows, registry, project, full_feature_names)
        if fast is not None and not include_feature_view_version_metadata:
            return fast
        with self._reading(config, features, registry, project, full_feature_names) as finish:
            return finish(
                await super().get_online_features_async(
                    config,
                    features,
                    entity_rows,
                    registry,
                    project,
                    full_feature_names,
                    include_feature_view_version_metadata,
                )
            )

    def fast_read(
        self,
        config: RepoConfig,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool,
    ) -> OnlineResponse | None:
        """A precompute service's response from one HMGET per entity (:mod:`~ingestion.store.online.fast_read`), or
        None when Feast's read must answer (not such a service, on-demand views, rows not keyed by one string key)."""
        from feast import FeatureService

        from ingestion.store.online.fast_read import read

        if not (isinstance(features, FeatureService) and features.precompute_online):
            return None
        plan = self.catalog(registry, project).fast_plan(features)
        if plan is None:
            return None
        values = _join_key_values(entity_rows, plan.join_key)
        if values is None:
            return None
        self.flush_precomputed()
        keys = self.entity_keys(config, plan.join_key, values)
        client = self.redis(config)
        if len(keys) == 1:
            replies = [client.hmget(keys[0], plan.fields)]
        else:
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, plan.fields)
                replies = pipe.execute()
        cache = self._ts_cache
        return read(
            plan,
            full_feature_names,
            values,
            replies,
            self.read_instant_us(config),
            lambda raw: _ts_us(raw, cache),
        )

    def layout(self, config: RepoConfig, registry: Any, view: str) -> ViewLayout:
        """The Redis layout of ``view`` (fields, vector slices) from ``registry``."""
        return self.catalog(registry, config.project).layout(
            view, config.registry.enable_online_feature_view_versioning
        )


def _join_key_values(entity_rows: Any, join_key: str) -> list[str] | None:
    """The string values of ``join_key``, one per request row, when the rows hold only that key; else None."""
    if isinstance(entity_rows, list):
        if not entity_rows:
            return None
        try:
            values = [row[join_key] for row in entity_rows if len(row) == 1]
        except (KeyError, TypeError):
            return None
        if len(values) != len(entity_rows):
            return None
    elif hasattr(entity_rows, "keys") and list(entity_rows.keys()) == [join_key]:
        values = list(entity_rows[join_key])
    else:
        return None
    if not values or not all(type(v) is str for v in values):
        return None
    return values


def _owners(features: Any, full_feature_names: bool) -> dict[str, str]:
    """Response feature name -> the feature view it comes from."""
    from feast import FeatureService

    from ingestion.store.online.layout import alias

    pairs: list[tuple[str, str, str]] = []
    if isinstance(features, FeatureService):
        for p in features.feature_view_projections:
            pairs += [(p.name, alias(p), f.name) for f in p.features]
    else:
        for ref in features:
            view, _, feature = ref.partition(":")
            view = view.split("@", 1)[0]
            pairs.append((view, view, feature))
    return {(f"{shown}__{f}" if full_feature_names else f): view for view, shown, f in pairs}


def expire(response: OnlineResponse, features: Any, catalog: Catalog, full_feature_names: bool, now_us: int) -> int:
    """Null, in place, every value older than its view's ttl at ``now_us``; returns how many were nulled.

    Feast's per-view read stamps each value with its view's event time, so the rule is the offline join's:
    fresh when ``event_time >= now - ttl``.
    """
    owners = _owners(features, full_feature_names)
    proto = response.proto
    nulled = 0
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        view = owners.get(name)
        ttl_us = catalog.ttl_us(view) if view is not None else None
        if ttl_us is not None:
            nulled += _expire_vectors([vector], now_us - ttl_us)
    return nulled


def _expire_vectors(vectors: Iterable[Any], oldest_us: int) -> int:
    """Null (status ``OUTSIDE_MAX_AGE``), in place, the values of Feast ``FeatureVector`` messages stamped before
    ``oldest_us``; returns how many. An unset stamp (no row) is left alone."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    nulled = 0
    for vector in vectors:
        for i, ts in enumerate(vector.event_timestamps):
            at = ts.seconds * 1_000_000 + ts.nanos // 1000
            if (ts.seconds or ts.nanos) and at < oldest_us:
                vector.values[i].Clear()
                vector.statuses[i] = FieldStatus.OUTSIDE_MAX_AGE
                nulled += 1
    return nulled


def _requested_names(grouped_refs: Any) -> list[tuple[Any, list[str]]]:
    """Each view of a per-view read with a copy of its requested feature names (Feast's Redis read appends its
    ``_ts`` field to the list it is given)."""
    return [(table, list(features or [f.name for f in table.features])) for table, features in grouped_refs]


__all__ = [
    "READ_AT_VARIABLE",
    "TYPE_PATH",
    "EnvRedisOnlineStore",
    "EnvRedisOnlineStoreConfig",
    "expire",
    "feast_redis_fields",
]
