"""The fast online writer: frames of a feature view into Feast's Redis online store, one round trip per frame.

Feast's ``online_write_batch`` (feast/infra/online_stores/redis.py) stores, per entity and project, one hash:

* key: ``serialize_entity_key(EntityKey, v3) + project`` (Feast's own function, cached per entity);
* field per feature: 4-byte little-endian ``mmh3("<view>:<feature>")`` (Feast's ``_mmh3``), value: a serialized
  ``feast.types.Value`` (see :mod:`~ingestion.store.online.encoding`);
* field ``_ts:<view>``: a serialized ``google.protobuf.Timestamp`` of the row's event time.

So stock ``get_online_features`` reads what this writer writes. What differs is the cost: Feast rebuilds every
feature view from the registry and type-checks on each ``push``, and sends one ``Value`` message at a time. Here a
view's layout is resolved once, the values of a column are encoded at once, and a frame goes out in one pipeline.

**Dedup, like Feast, without its two round trips.** Feast reads every ``_ts:<view>`` (one pipeline), compares in
Python, then writes (a second pipeline), and skips a row whose event time is not newer than the stored one. We keep
only the latest row per entity in the frame (:func:`~ingestion.store.online.latest.latest_per_entity`), then send
the compare-and-set to Redis as a Lua script (``EVALSHA``) over a chunk of keys: the script decodes the stored
Timestamp, and writes the hash fields only when the new event time is strictly newer. One round trip per frame, and
no race between the read and the write (a script runs atomically), which Feast's read-then-write has. On a Redis
Cluster the keys of one script call must share a slot, so the writer sends one key per call there.

**No TTL.** Feast's ``key_ttl_seconds`` would expire the whole hash, shared by every view of the symbol (daily bars
included), so this writer never sets one; stale ticks are the reader's concern (``FeatureView.ttl``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ingestion.datasets import EVENT_TS
from ingestion.store.online.encoding import encode_values, entity_key, epoch_us, timestamp_fields
from ingestion.store.online.latest import latest_per_entity

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

# ARGV: ts field name, feature count nf, then per key: seconds, nanos, Timestamp bytes, nf (field, value) pairs.
# The pairs come interleaved from Python so the script hands them to HSET with one unpack(), no Lua loop.
_LUA_SET_IF_NEWER = """
local tsf = ARGV[1]
local nf = tonumber(ARGV[2])
local stride = 3 + 2 * nf
local function varint(s, pos)
  local v, mult = 0, 1
  while true do
    local b = string.byte(s, pos)
    pos = pos + 1
    v = v + (b % 128) * mult
    if b < 128 then return v, pos end
    mult = mult * 128
  end
end
local function decode(s)
  local secs, nanos, pos = 0, 0, 1
  while pos <= #s do
    local tag = string.byte(s, pos)
    local v
    v, pos = varint(s, pos + 1)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  return secs, nanos
end
local written = 0
for k = 1, #KEYS do
  local at = 3 + (k - 1) * stride
  local newer = true
  local old = redis.call('HGET', KEYS[k], tsf)
  if old then
    local secs = tonumber(ARGV[at])
    local nanos = tonumber(ARGV[at + 1])
    local osecs, onanos = decode(old)
    if (osecs > 0 or onanos > 0) and (secs < osecs or (secs == osecs and nanos <= onanos)) then newer = false end
  end
  if newer then
    redis.call('HSET', KEYS[k], tsf, ARGV[at + 2], unpack(ARGV, at + 3, at + 2 + 2 * nf))
    written = written + 1
  end
end
return written
"""


@dataclass(frozen=True)
class ViewLayout:
    """Where one feature view's values live in Redis: hash fields and their Feast value types."""

    name: str
    ts_field: bytes
    join_key: str
    features: tuple[str, ...]
    fields: tuple[bytes, ...]
    value_types: tuple[str, ...]


@dataclass
class Prepared:
    """A frame encoded for Redis: per entity its key, event time and field values (latest row per entity only)."""

    layout: ViewLayout
    keys: list[bytes]
    secs: list[int]
    nanos: list[int]
    ts_bytes: list[bytes]
    values: list[list[bytes]]  # one list per feature, aligned with ``keys``

    def __len__(self) -> int:
        return len(self.keys)

    def hset_mapping(self, i: int) -> dict[bytes, bytes]:
        """The HSET mapping of entity ``i``, as Feast would write it."""
        mapping = {self.layout.ts_field: self.ts_bytes[i]}
        mapping.update({f: col[i] for f, col in zip(self.layout.fields, self.values, strict=True)})
        return mapping


@dataclass
class WriteResult:
    """Counts of one :meth:`OnlineWriter.write`: rows given, entities after in-frame dedup, hashes written."""

    view: str
    rows_in: int
    entities: int
    written: int

    @property
    def skipped_not_newer(self) -> int:
        """Entities whose stored event time was already as new or newer (Feast skips those too)."""
        return self.entities - self.written


class OnlineWriter:
    """Writes frames of a feature view into Feast's Redis online store, in Feast's bytes.

    ``store`` is an applied ``FeatureStore`` (e.g. from ``feast_repo.open_store``); the Redis client is Feast's own
    (same connection string, cluster or sentinel), unless ``client`` is given.
    """

    def __init__(self, store: FeatureStore, *, client: Any = None, keys_per_call: int = 256) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

        # Feast's own redis store or one configured like it (ours reads REDIS_URL: ingestion.store.feast_online).
        if client is None and not isinstance(store.config.online_store, RedisOnlineStoreConfig):
            raise ValueError(
                f"the fast online writer needs Feast's redis online store, not {store.config.online_store.type!r}"
            )
        self.store = store
        self.config = store.config
        self.project: str = store.config.project
        self.client: Any = client or RedisOnlineStore()._get_client(store.config.online_store)
        cluster = type(self.client).__name__ == "RedisCluster"
        # A script's keys must live in one slot on a cluster; one key per call is always true to that.
        self.keys_per_call = 1 if cluster else max(1, keys_per_call)
        self._script = self.client.register_script(_LUA_SET_IF_NEWER)
        self._layouts: dict[str, ViewLayout] = {}
        self._entity_keys: dict[str, bytes] = {}

    def layout(self, view: str) -> ViewLayout:
        """The Redis layout of a view, resolved from the registry once."""
        if view not in self._layouts:
            self._layouts[view] = self._resolve(self.store.get_feature_view(view))
        return self._layouts[view]

    def _resolve(self, fv: FeatureView) -> ViewLayout:
        from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name

        name = compute_versioned_name(fv, self.config.registry.enable_online_feature_view_versioning)
        join_keys = list(fv.join_keys)
        if len(join_keys) != 1:
            raise ValueError(f"view {fv.name}: the fast writer handles one join key, not {join_keys}")
        features = tuple(f.name for f in fv.features)
        return ViewLayout(
            name=name,
            ts_field=f"_ts:{name}".encode(),
            join_key=join_keys[0],
            features=features,
            fields=tuple(_mmh3(f"{name}:{f}") for f in features),
            value_types=tuple(f.dtype.to_value_type().name for f in fv.features),
        )

    def entity_key(self, join_key: str, value: str) -> bytes:
        """Feast's Redis key of one entity (serialized entity key v3 + project), cached."""
        cached = self._entity_keys.get(value)
        if cached is None:
            version = self.config.entity_key_serialization_version
            cached = entity_key(join_key, value, project=self.project, version=version)
            self._entity_keys[value] = cached
        return cached

    def prepare(self, view: str, frame: pd.DataFrame) -> Prepared:
        """Encode a frame: the latest row per entity (event time, then created time), every field in Feast bytes."""
        layout = self.layout(view)
        missing = [c for c in (layout.join_key, EVENT_TS, *layout.features) if c not in frame.columns]
        if missing:
            raise ValueError(f"frame for view {view} lacks columns {missing}")
        latest = latest_per_entity(frame, layout.join_key)
        secs, nanos, ts_bytes = timestamp_fields(epoch_us(latest[EVENT_TS]))
        keys = [self.entity_key(layout.join_key, str(v)) for v in latest[layout.join_key].tolist()]
        values = [encode_values(t, latest[f]) for f, t in zip(layout.features, layout.value_types, strict=True)]
        return Prepared(layout, keys, secs, nanos, ts_bytes, values)

    def send(self, prepared: Prepared) -> int:
        """Compare-and-set every entity of ``prepared`` in one pipeline; returns how many hashes were written."""
        layout = prepared.layout
        header: list[Any] = [layout.ts_field, len(layout.fields)]
        n, nf = len(prepared), len(layout.fields)
        # One object matrix row per entity: seconds, nanos, Timestamp, then (field, value) pairs. Flattening a
        # block of rows with ravel().tolist() builds a script's ARGV at C speed instead of a Python loop per key.
        grid = np.empty((n, 3 + 2 * nf), dtype=object)
        grid[:, 0] = prepared.secs
        grid[:, 1] = prepared.nanos
        grid[:, 2] = prepared.ts_bytes
        for j, (name, column) in enumerate(zip(layout.fields, prepared.values, strict=True)):
            grid[:, 3 + 2 * j] = name
            grid[:, 4 + 2 * j] = column
        written = 0
        with self.client.pipeline(transaction=False) as pipe:
            for start in range(0, n, self.keys_per_call):
                stop = start + self.keys_per_call
                args = header + grid[start:stop].ravel().tolist()
                self._script(keys=prepared.keys[start:stop], args=args, client=pipe)
            for count in pipe.execute():
                written += int(count)
        return written

    def write(self, view: str, frame: pd.DataFrame) -> WriteResult:
        """Write a frame of one view: latest row per entity, never over a newer stored row."""
        if frame.empty:
            return WriteResult(view, 0, 0, 0)
        prepared = self.prepare(view, frame)
        return WriteResult(view, len(frame), len(prepared), self.send(prepared))

    def close(self) -> None:
        """Close the Redis client (Feast's own, or the one given)."""
        self.client.close()
