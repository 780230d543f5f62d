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
and the registry lookups are its own.

**TTL at read.** ``FeatureView.ttl`` does not filter Feast's online reads, so an online value outlives the window
the offline join allows and a model serves what it never trained on. :meth:`EnvRedisOnlineStore.get_online_features`
nulls (status ``OUTSIDE_MAX_AGE``) every value whose event time is older than its view's ttl at the read instant,
by the offline join's rule: fresh when ``event_timestamp >= read instant - ttl``, to the microsecond. The read
instant is the wall clock, or ``read_at`` / ``$FEAST_ONLINE_READ_AT`` (an ISO instant) to replay a past day.

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from pydantic import Field, StrictStr, model_validator

from ingestion.config import DEFAULT_REDIS_URL, settings
from ingestion.store.online.cas import SET_IF_NEWER, SET_SLICES_IF_CURRENT
from ingestion.store.online.catalog import Catalog
from ingestion.store.online.layout import Prepared, ServicePlan, ViewLayout, segment_field, ts_field
from ingestion.store.redis_conn import connect, connect_feast, feast_online_store, parse_redis_url

if TYPE_CHECKING:
    from feast import FeatureService, FeatureView, RepoConfig
    from feast.online_response import OnlineResponse
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

READ_AT_VARIABLE = "FEAST_ONLINE_READ_AT"
SLICE_BATCH = 512
KEY_MEMO = 200_000
PIPELINE_KEYS = 4096

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


def _execute(pipe: Any) -> list[Any]:
    with pipe:
        replies: list[Any] = pipe.execute()
    return replies


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
        self._key_memo: dict[tuple[str, str], bytes] = {}
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
    def _keys(config: RepoConfig, entity_keys: Sequence[EntityKeyProto]) -> list[bytes]:
        from feast.infra.key_encoding_utils import serialize_entity_key

        project = config.project.encode()
        version = config.entity_key_serialization_version
        return [serialize_entity_key(k, entity_key_serialization_version=version) + project for k in entity_keys]

    # Writes --------------------------------------------------------------------------------------------------

    def write_prepared(self, config: RepoConfig, prepared: Prepared, *, keys_per_call: int = 256) -> int:
        """Compare-and-set every entity of ``prepared`` (values and vector slices) in one pipeline; returns how many
        hashes were written."""
        import numpy as np

        from ingestion.store.online.layout import segment_columns

        layout = prepared.layout
        client = self.redis(config)
        cluster = type(client).__name__ == "RedisCluster"
        if cluster:
            keys_per_call = 1  # a script's keys must share a slot on a cluster; one key always does
        fields = [*layout.fields, *(seg.field for seg in layout.segments)]
        columns = [*prepared.values, *segment_columns(layout, prepared.values, prepared.ts_bytes)]
        header: list[Any] = [layout.ts_field, len(fields), *fields]
        n, nf = len(prepared), len(fields)
        # One object matrix row per entity: seconds, nanos, Timestamp, then the field values. Flattening a block of
        # rows with ravel().tolist() builds a script's ARGV at C speed instead of a Python loop per key.
        grid = np.empty((n, 3 + nf), dtype=object)
        grid[:, 0] = prepared.secs
        grid[:, 1] = prepared.nanos
        grid[:, 2] = prepared.ts_bytes
        for j, column in enumerate(columns):
            grid[:, 3 + j] = column
        script = self.script(config, SET_IF_NEWER)
        if cluster:
            # redis-py refuses scripts in a cluster pipeline: one call per key, each routed to its key's node.
            return sum(int(script(keys=[key], args=header + grid[i].tolist())) for i, key in enumerate(prepared.keys))
        # Pipelines of PIPELINE_KEYS keys, each sent from a worker thread while the next is packed: Redis runs the
        # scripts of one while Python builds the next (the socket wait releases the GIL), instead of after it.
        step = max(keys_per_call, PIPELINE_KEYS // keys_per_call * keys_per_call)
        sent: list[Future[list[Any]]] = []
        with ThreadPoolExecutor(max_workers=1) as sender:
            for first in range(0, n, step):
                pipe = client.pipeline(transaction=False)
                for start in range(first, min(first + step, n), keys_per_call):
                    stop = start + keys_per_call
                    args = header + grid[start:stop].ravel().tolist()
                    script(keys=prepared.keys[start:stop], args=args, client=pipe)
                sent.append(sender.submit(_execute, pipe))
            return sum(int(count) for done in sent for count in done.result())

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
        """One read's context: the service's plan for :meth:`read_precomputed_vectors` while Feast reads, and the
        TTL rule (:func:`expire`) to apply to a per-view response afterwards."""
        from feast import FeatureService

        self.flush_precomputed()
        catalog = self.catalog(registry, project)
        now_us = self.read_instant_us(config)
        # A per-view read stamps every value with its view's event time: expire by it afterwards. That includes a
        # precompute service with on-demand views, which Feast reads per view; a vector read leaves no event times
        # (read_precomputed_vectors already swapped expired views for null slices), so expire passes over it.
        token = None
        if isinstance(features, FeatureService) and features.precompute_online:
            token = _REQUEST.set(_Request(catalog.plan(features), full_feature_names, now_us))
        try:
            yield lambda response: _expired(response, features, catalog, full_feature_names, now_us)
        finally:
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
        keys = self._entity_keys(config, plan.join_key, values)
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

    def _entity_keys(self, config: RepoConfig, join_key: str, values: list[str]) -> list[bytes]:
        """Hash keys of string entity values (memoized: a key is a pure function of the value)."""
        memo = self._key_memo
        out = []
        for value in values:
            key = memo.get((join_key, value))
            if key is None:
                key = self.entity_key(config, join_key, value)
                if len(memo) < KEY_MEMO:
                    memo[(join_key, value)] = key
            out.append(key)
        return out

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


def _expired(
    response: OnlineResponse, features: Any, catalog: Catalog, full_feature_names: bool, now_us: int
) -> OnlineResponse:
    expire(response, features, catalog, full_feature_names, now_us)
    return response


def expire(response: OnlineResponse, features: Any, catalog: Catalog, full_feature_names: bool, now_us: int) -> int:
    """Null, in place, every value older than its view's ttl at ``now_us``; returns how many were nulled.

    Feast's per-view read stamps each value with its view's event time, so the rule is the offline join's:
    fresh when ``event_time >= now - ttl``.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    owners = _owners(features, full_feature_names)
    proto = response.proto
    nulled = 0
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        view = owners.get(name)
        ttl_us = catalog.ttl_us(view) if view is not None else None
        if ttl_us is None:
            continue
        oldest = now_us - ttl_us
        for i, ts in enumerate(vector.event_timestamps):
            at = ts.seconds * 1_000_000 + ts.nanos // 1000
            if (ts.seconds or ts.nanos) and at < oldest:
                vector.values[i].Clear()
                vector.statuses[i] = FieldStatus.OUTSIDE_MAX_AGE
                nulled += 1
    return nulled


__all__ = [
    "READ_AT_VARIABLE",
    "TYPE_PATH",
    "EnvRedisOnlineStore",
    "EnvRedisOnlineStoreConfig",
    "expire",
    "feast_redis_fields",
]
