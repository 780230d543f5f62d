"""A fast online writer: the exact Redis bytes of Feast's Redis online store, a whole frame per round trip.

Feast's ``online_write_batch`` (feast/infra/online_stores/redis.py) stores, per entity and project, one hash:

* key: ``serialize_entity_key(EntityKey, v3) + project`` (we call Feast's own function, cached per symbol);
* field per feature: 4-byte little-endian ``mmh3("<view>:<feature>")`` (Feast's ``_mmh3``), value: a serialized
  ``feast.types.Value``; a null or NaN is the empty message ``b""``, exactly what ``python_values_to_proto_values``
  gives;
* field ``_ts:<view>``: a serialized ``google.protobuf.Timestamp`` of the row's event time (microsecond precision,
  as Feast's ``Timestamp.FromDatetime`` of a Python datetime).

So stock ``get_online_features`` reads what this writer writes. What differs is the cost: Feast rebuilds every
feature view from the registry and type-checks on each ``push`` and sends one ``Value`` message at a time through
protobuf. Here the values of a column are encoded at once (NumPy for floats; the protobuf wire format is a tag byte
and a fixed 8-byte double, or a varint), and a frame goes out in one pipeline.

**Dedup, like Feast, without its two round trips.** Feast reads every ``_ts:<view>`` (one pipeline), compares in
Python, then writes (a second pipeline), and skips a row whose event time is not newer than the stored one. We keep
only the latest row per entity in the frame (by ``event_timestamp``, then ``created_timestamp``), then send the
compare-and-set to Redis as a Lua script (``EVALSHA``) over a chunk of keys: the script decodes the stored
Timestamp, and writes the hash fields only when the new event time is strictly newer. One round trip per frame, and
no race between the read and the write (a script runs atomically), which Feast's read-then-write has. On a Redis
Cluster the keys of one script call must share a slot, so the writer sends one key per call there.

**No TTL.** Feast's ``key_ttl_seconds`` would expire the whole hash, shared by every view of the symbol (daily bars
included), so this writer never sets one; stale ticks are the reader's concern (``FeatureView.ttl``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion.datasets import CREATED_TS, EVENT_TS, Dataset, get

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from ingestion.config import Settings

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

# Protobuf wire tags of feast.types.Value's oneof fields: (field number << 3) | wire type.
_TAG_STRING = 0x12  # string_val = 2, length-delimited
_TAG_INT32 = 0x18  # int32_val = 3, varint
_TAG_INT64 = 0x20  # int64_val = 4, varint
_TAG_DOUBLE = 0x29  # double_val = 5, fixed64
_TAG_FLOAT = 0x35  # float_val = 6, fixed32
_TAG_BOOL = 0x38  # bool_val = 7, varint
_TAG_UNIX_TS = 0x40  # unix_timestamp_val = 8, varint (seconds)
_NULL = b""


def varint(value: int) -> bytes:
    """Protobuf varint of an int64 (negative values as their 64-bit two's complement, 10 bytes)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fixed(tag: int, dtype: str, values: pd.Series) -> list[bytes]:
    numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    packed = np.empty(len(numbers), dtype=np.dtype([("t", "u1"), ("v", dtype)]))
    packed["t"] = tag
    packed["v"] = numbers
    raw = packed.tobytes()
    size = packed.dtype.itemsize
    encoded = [raw[i : i + size] for i in range(0, len(raw), size)]
    for i in np.flatnonzero(np.isnan(numbers)):
        encoded[i] = _NULL
    return encoded


def varints(values: np.ndarray) -> list[bytes]:
    """Protobuf varints of an int64 array at once: 7-bit groups with NumPy, then one slice per value."""
    unsigned = values.astype(np.int64).view(np.uint64)
    shifts = np.arange(0, 70, 7, dtype=np.uint64)
    groups = ((unsigned[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    # A value needs as many groups as its highest non-zero group, and at least one.
    nonzero = groups != 0
    lengths = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    more = np.arange(10)[None, :] < (lengths[:, None] - 1)
    groups |= (more * 0x80).astype(np.uint8)
    raw = groups.tobytes()
    return [raw[i * 10 : i * 10 + n] for i, n in enumerate(lengths.tolist())]


def _tagged_varints(tag: int, values: pd.Series) -> list[bytes]:
    """``tag`` + varint per value; nulls (NaN, None, pd.NA) become the empty message."""
    mask = values.isna().to_numpy()
    numbers = values.to_numpy(dtype="float64", na_value=0) if mask.any() else values.to_numpy()
    head = bytes([tag])
    out = [head + v for v in varints(np.asarray(numbers).astype(np.int64))]
    for i in np.flatnonzero(mask):
        out[i] = _NULL
    return out


def _nullable(values: pd.Series) -> list[Any]:
    """Python values with every pandas/NumPy null (None, NaN, NaT, pd.NA) as None."""
    mask = values.isna().to_numpy()
    out: list[Any] = values.astype(object).tolist()
    for i in np.flatnonzero(mask):
        out[i] = None
    return out


def encode_values(value_type_name: str, values: pd.Series) -> list[bytes]:
    """Serialized ``feast.types.Value`` messages of a column, byte for byte what Feast's type map produces.

    ``value_type_name`` is a ``feast.ValueType`` name (DOUBLE, FLOAT, INT64, INT32, BOOL, STRING, UNIX_TIMESTAMP).
    Nulls and NaN become the empty message, as in Feast.
    """
    if value_type_name == "DOUBLE":
        return _fixed(_TAG_DOUBLE, "<f8", values)
    if value_type_name == "FLOAT":
        return _fixed(_TAG_FLOAT, "<f4", values)
    if value_type_name in ("INT64", "INT32"):
        return _tagged_varints(_TAG_INT64 if value_type_name == "INT64" else _TAG_INT32, values)
    if value_type_name == "BOOL":
        return [_NULL if v is None else (b"8\x01" if v else b"8\x00") for v in _nullable(values)]
    if value_type_name == "STRING":
        out = []
        for v in _nullable(values):
            if v is None:
                out.append(_NULL)
            else:
                data = str(v).encode()
                out.append(bytes([_TAG_STRING]) + varint(len(data)) + data)
        return out
    if value_type_name == "UNIX_TIMESTAMP":
        stamps = pd.Series(pd.to_datetime(values, utc=True))
        seconds = pd.Series(pd.DatetimeIndex(stamps).as_unit("s").asi8, dtype="int64").where(stamps.notna().to_numpy())
        return _tagged_varints(_TAG_UNIX_TS, seconds)
    raise TypeError(f"the fast online writer does not encode Feast type {value_type_name}; use Feast's push")


def timestamp_fields(event_us: np.ndarray) -> tuple[list[int], list[int], list[bytes]]:
    """Seconds, nanos and serialized ``google.protobuf.Timestamp`` for epoch-microsecond event times."""
    secs_arr = event_us // 1_000_000
    nanos_arr = (event_us % 1_000_000) * 1000
    secs, nanos = secs_arr.tolist(), nanos_arr.tolist()
    encoded = [
        # Proto3 omits zero-valued fields, as Timestamp.SerializeToString does.
        (b"\x08" + a if s else b"") + (b"\x10" + b if n else b"")
        for s, n, a, b in zip(secs, nanos, varints(secs_arr), varints(nanos_arr), strict=True)
    ]
    return secs, nanos, encoded


def _epoch_us(values: pd.Series) -> np.ndarray:
    """Epoch microseconds (UTC) of a timestamp column; naive values are taken as UTC."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        # Only convert when needed: to_datetime on a tz-aware column walks it as Python objects to decide caching.
        values = pd.to_datetime(values, utc=True)
    return np.asarray(pd.DatetimeIndex(values).as_unit("us").asi8)


def latest_per_entity(frame: pd.DataFrame, join_key: str) -> pd.DataFrame:
    """One row per entity: the newest ``event_timestamp``, then ``created_timestamp``, then the last given.

    NumPy lexsort on integer times: pandas' sort of tz-aware columns iterates Python objects and costs more than
    the whole Redis write.
    """
    if len(frame) == 0:
        return frame
    created = _epoch_us(frame[CREATED_TS]) if CREATED_TS in frame.columns else np.zeros(len(frame), np.int64)
    codes = pd.factorize(frame[join_key])[0]
    order = np.lexsort((np.arange(len(frame)), created, _epoch_us(frame[EVENT_TS])))
    # Walk the sorted order backwards: the first time an entity shows up there is its latest row.
    backwards = order[::-1]
    _, first = np.unique(codes[backwards], return_index=True)
    return frame.iloc[np.sort(backwards[first])]


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
        from feast.infra.online_stores.redis import RedisOnlineStore

        if client is None and store.config.online_store.type not in (
            "redis",
            "feast.infra.online_stores.redis.RedisOnlineStore",
        ):
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
            from feast.infra.key_encoding_utils import serialize_entity_key
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
            version = self.config.entity_key_serialization_version
            cached = serialize_entity_key(proto, entity_key_serialization_version=version) + self.project.encode()
            self._entity_keys[value] = cached
        return cached

    def prepare(self, view: str, frame: pd.DataFrame) -> Prepared:
        """Encode a frame: the latest row per entity (event time, then created time), every field in Feast bytes."""
        layout = self.layout(view)
        missing = [c for c in (layout.join_key, EVENT_TS, *layout.features) if c not in frame.columns]
        if missing:
            raise ValueError(f"frame for view {view} lacks columns {missing}")
        latest = latest_per_entity(frame, layout.join_key)
        event_us = _epoch_us(latest[EVENT_TS])
        secs, nanos, ts_bytes = timestamp_fields(event_us)
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
        self.client.close()


def latest_rows(
    data_dir: Path, dataset: Dataset | str, *, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The latest stored row per symbol (newest event time, then created time) read with DuckDB over the part files.

    ``start``/``end`` bound ``event_timestamp`` (UTC, both inclusive, as ``feast materialize``).
    """
    import duckdb

    from ingestion.store.offline import empty_frame, part_files

    ds = get(dataset) if isinstance(dataset, str) else dataset
    files = [str(p) for p in part_files(data_dir, ds)]
    if not files:
        return empty_frame(ds)
    where, params = [], [files]
    if start is not None:
        where.append(f"{EVENT_TS} >= ?")
        params.append(
            pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
        )
    if end is not None:
        where.append(f"{EVENT_TS} <= ?")
        params.append(pd.Timestamp(end).tz_convert("UTC") if pd.Timestamp(end).tzinfo else pd.Timestamp(end, tz="UTC"))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    query = (
        f"SELECT * FROM read_parquet(?, hive_partitioning = false) {clause} "  # noqa: S608 (names are ours)
        f"QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY {EVENT_TS} DESC, {CREATED_TS} DESC) = 1"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        table: pa.Table = con.sql(query, params=params).to_arrow_table()
    frame: pd.DataFrame = table.to_pandas()
    return frame


@dataclass
class MaterializeResult:
    """What :func:`materialize_latest` did, with its wall time in seconds."""

    dataset: str
    keys: int
    written: int
    seconds: float

    @property
    def keys_per_second(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else float("inf")


def materialize_latest(
    store_or_settings: FeatureStore | Settings,
    dataset: Dataset | str,
    data_dir: Path | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    writer: OnlineWriter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> MaterializeResult:
    """Load the latest offline row per symbol of ``dataset`` into the online store (what ``feast materialize`` does).

    ``store_or_settings`` is an applied ``FeatureStore`` or ``Settings`` (then the store is opened on its Redis and
    ``data_dir`` defaults to its data dir).
    """
    from feast import FeatureStore

    from ingestion.store.feast_repo import open_store

    if isinstance(store_or_settings, FeatureStore):
        store = store_or_settings
        if data_dir is None:
            raise ValueError("materialize_latest needs data_dir when given a FeatureStore")
    else:
        if not store_or_settings.redis_url:
            raise ValueError("materialize_latest needs REDIS_URL in the settings")
        store = open_store(store_or_settings, store_or_settings.redis_url)
        data_dir = data_dir or store_or_settings.data_dir
    ds = get(dataset) if isinstance(dataset, str) else dataset
    began = clock()
    rows = latest_rows(data_dir, ds, start=start, end=end)
    online = writer or OnlineWriter(store)
    result = online.write(ds.name, rows)
    return MaterializeResult(ds.name, result.entities, result.written, clock() - began)


__all__ = [
    "MaterializeResult",
    "OnlineWriter",
    "Prepared",
    "ViewLayout",
    "WriteResult",
    "encode_values",
    "latest_per_entity",
    "latest_rows",
    "materialize_latest",
    "timestamp_fields",
    "varint",
    "varints",
]
