"""The service read without Feast's per-call Python: one HMGET per entity, the response built from the bytes.

Profiling stock ``get_online_features(features=<service>)`` on our store put most of a call in Feast's generic
code, not in Redis: per call it resolves the service's views from the registry, builds ``EntityKey`` protos,
re-parses every vector into ``Value`` messages and copies them into the response (its precomputed fast path), and
``OnlineResponse.to_dict`` then walks every ``Value`` through ``feast_value_type_to_python_type`` (about 1 us a
value: 6 ms for 100 entities of ``daily_model``, more than the Redis round trip).

:meth:`EnvRedisOnlineStore.get_online_features` (the online store protocol's own entry point, which Feast's
provider calls for every ``FeatureStore.get_online_features``) answers a precompute service here instead:

* a :class:`FastPlan` per service and registry version (fields, TTLs, names, types; see the catalog);
* one ``HMGET`` per entity of the service's value fields and its views' ``_ts`` fields: one command on one hash,
  so as atomic as the vector slices (each view's values and time are written in one script call);
* TTL at read as everywhere else (null and ``OUTSIDE_MAX_AGE`` when older than the view's ttl), ``NOT_FOUND`` for
  an entity with no row of a view;
* a :class:`VectorResponse`: a Feast ``OnlineResponse`` whose ``to_dict`` decodes each column from the stored
  bytes by the feature's type (a struct unpack for a double, a byte for a small int; anything unusual goes through
  Feast's own decoder), and whose ``proto`` is Feast's ``GetOnlineFeaturesResponse``, assembled from the same bytes
  and parsed by protobuf once, on first use (the feature server serializes it; ``to_dict`` alone never needs it).

Nothing is cached across calls but the plan and entity keys (a pure function of the symbol): every call reads Redis.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from feast.online_response import OnlineResponse

from ingestion.store.online.encoding import varint
from ingestion.store.online.layout import delimited as _delimited
from ingestion.store.online.origin import unranked

if TYPE_CHECKING:
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
    from feast.value_type import ValueType

# FieldStatus values (feast/serving/ServingService.proto).
PRESENT = 1
NOT_FOUND = 3
OUTSIDE_MAX_AGE = 4

# GetOnlineFeaturesResponse wire tags: metadata = 1, results = 2; FeatureVector: values = 1, statuses = 2 (packed),
# event_timestamps = 3; metadata.feature_names = 1, FeatureList.val = 1.
_T1 = b"\x0a"
_T2 = b"\x12"
_T3 = b"\x1a"
_VALUE_HEADS = [_T1 + varint(n) for n in range(128)]  # tag and length of a ``values`` entry of n bytes
_EMPTY_TS = b"\x1a\x00"

Decoder = Callable[[Sequence[bytes | None]], list[Any]]


def _generic(value_type: ValueType | None) -> Callable[[bytes], Any]:
    """Feast's own decoder of one serialized ``Value`` (types without a fast decoder, odd encodings)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    def decode(raw: bytes) -> Any:
        return feast_value_type_to_python_type(Value.FromString(raw), value_type)

    return decode


def _varint_int(raw: bytes, tag: int) -> int | None:
    """The int of a ``Value`` holding a varint field ``tag`` (two's complement), None if it holds anything else."""
    if raw[0] != tag:
        return None
    n, shift = 0, 0
    for b in raw[1:]:
        n |= (b & 0x7F) << shift
        shift += 7
    return n - (1 << 64) if n >= 1 << 63 else n


def decoder(value_type: ValueType | None) -> Decoder:
    """A column decoder equal, value by value, to Feast's ``feast_value_type_to_python_type``."""
    from feast.value_type import ValueType

    slow = _generic(value_type)
    name = value_type.name if value_type is not None else ""
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        tag, size, unpack = (
            (0x29, 9, struct.Struct("<xd").unpack) if name == "DOUBLE" else (0x35, 5, struct.Struct("<xf").unpack)
        )

        mark = bytes([tag])
        formats: dict[int, struct.Struct] = {}

        def floats(col: Sequence[bytes | None]) -> list[Any]:
            # A column with no null is one unpack at C speed, once every entry is checked to be tag + number.
            if None not in col and set(map(len, col)) == {size}:  # type: ignore[arg-type]
                joined = b"".join(col)  # type: ignore[arg-type]
                n = len(col)
                if joined[::size] == mark * n:
                    fmt = formats.get(n)
                    if fmt is None:
                        fmt = struct.Struct("<" + ("x" + ("d" if size == 9 else "f")) * n)
                        if len(formats) < 256:
                            formats[n] = fmt
                    return list(fmt.unpack(joined))
            return [None if not v else unpack(v)[0] if len(v) == size and v[0] == tag else slow(v) for v in col]

        return floats
    if value_type in (ValueType.INT64, ValueType.INT32):
        tag = 0x20 if name == "INT64" else 0x18

        def ints(col: Sequence[bytes | None]) -> list[Any]:
            out: list[Any] = []
            for v in col:
                if not v:
                    out.append(None)
                elif len(v) == 2 and v[0] == tag and v[1] < 0x80:
                    out.append(v[1])
                else:
                    got = _varint_int(v, tag)
                    out.append(slow(v) if got is None else got)
            return out

        return ints
    if value_type == ValueType.BOOL:
        table: dict[bytes, Any] = {b"\x38\x01": True, b"\x38\x00": False}

        def bools(col: Sequence[bytes | None]) -> list[Any]:
            return [None if not v else table[v] if v in table else slow(v) for v in col]

        return bools

    def generic(col: Sequence[bytes | None]) -> list[Any]:
        return [slow(v) if v else None for v in col]

    return generic


@dataclass(frozen=True)
class FastView:
    """One view of a fast plan: where its features sit in the HMGET reply, and its ttl."""

    first: int
    count: int
    ttl_us: int | None


@dataclass(frozen=True)
class FastPlan:
    """How to answer a precompute service from one HMGET per entity (resolved once per registry version)."""

    service: str
    join_key: str
    views: tuple[FastView, ...]
    fields: list[bytes]  # the features' fields in response order, then one _ts field per view
    short_names: tuple[str, ...]
    full_names: tuple[str, ...]
    decoders: tuple[Decoder, ...]
    feature_types: dict[str, ValueType]  # as Feast's own: bare and view-prefixed names
    view_of_feature: tuple[int, ...]  # feature position -> view position

    def names(self, full_feature_names: bool) -> tuple[str, ...]:
        return self.full_names if full_feature_names else self.short_names


def _entity_value(value: str) -> bytes:
    """The serialized ``Value(string_val=value)`` of an entity column entry."""
    return _delimited(_T2, value.encode())


@dataclass
class _Read:
    """One read's result, column-wise: what both ``to_dict`` and the proto are made from."""

    plan: FastPlan
    names: tuple[str, ...]
    entity_values: list[str]
    columns: list[tuple[bytes | None, ...]]
    statuses: list[bytes]  # per view: one status byte per entity
    stamps: list[list[bytes]]  # per view: the serialized event Timestamp per entity (b"" when none)


def read(
    plan: FastPlan,
    full_feature_names: bool,
    values: list[str],
    replies: list[list[bytes | None]],
    now_us: int,
    ts_us: Callable[[bytes], int],
) -> VectorResponse:
    """The response of ``values`` (the join key per request row) from their HMGET ``replies``."""
    n_features = len(plan.fields) - len(plan.views)
    statuses = [bytearray() for _ in plan.views]
    stamps: list[list[bytes]] = [[] for _ in plan.views]
    for reply in replies:
        for i, view in enumerate(plan.views):
            stamp = reply[n_features + i]
            if stamp is None:
                status, stamp = NOT_FOUND, b""
            elif view.ttl_us is not None and ts_us(stamp) < now_us - view.ttl_us:
                status = OUTSIDE_MAX_AGE
            else:
                status = PRESENT
            if status != PRESENT:
                reply[view.first : view.first + view.count] = [None] * view.count
            statuses[i].append(status)
            stamps[i].append(stamp)
    # One C-level transpose: a tuple per field, entity by entity (the _ts fields at the end are dropped).
    columns: list[tuple[bytes | None, ...]] = list(zip(*replies, strict=True))[:n_features]
    state = _Read(plan, plan.names(full_feature_names), values, columns, [bytes(s) for s in statuses], stamps)
    return VectorResponse(state)


class VectorResponse(OnlineResponse):
    """Feast's ``OnlineResponse`` of a fast read: ``to_dict`` from the bytes, ``proto`` built on first use.

    Once the proto exists (someone read or changed it) every conversion goes through Feast's own code on it, so a
    change to ``proto`` is always seen.
    """

    def __init__(self, state: _Read) -> None:  # Feast's __init__ would build the proto at once
        self._state = state
        self._proto: GetOnlineFeaturesResponse | None = None
        self._feature_types = state.plan.feature_types

    @property
    def proto(self) -> GetOnlineFeaturesResponse:
        if self._proto is None:
            self._proto = _proto(self._state)
        return self._proto

    @proto.setter
    def proto(self, value: GetOnlineFeaturesResponse) -> None:
        self._proto = value

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, Any]:
        if self._proto is not None or include_event_timestamps:
            return super().to_dict(include_event_timestamps)
        state = self._state
        out: dict[str, Any] = {state.plan.join_key: list(state.entity_values)}
        for name, decode, column in zip(state.names, state.plan.decoders, state.columns, strict=True):
            out[name] = decode(column)
        return out


def _values_field(column: Sequence[bytes | None]) -> bytes:
    """A FeatureVector's ``values`` entries: each value after a shared head constant picked by its length."""
    present = [v or b"" for v in column]
    if max(map(len, present), default=0) >= 128:
        return b"".join(_delimited(_T1, v) for v in present)
    heads = map(_VALUE_HEADS.__getitem__, map(len, present))
    return b"".join(chain.from_iterable(zip(heads, present, strict=True)))


def _proto(state: _Read) -> GetOnlineFeaturesResponse:
    """Feast's response message, serialized by hand from the stored bytes and parsed once."""
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

    n = len(state.entity_values)
    names = b"".join(_delimited(_T1, name.encode()) for name in (state.plan.join_key, *state.names))
    parts = [_delimited(_T1, _delimited(_T1, names))]
    # The entity column: its values, PRESENT, and empty event times (as Feast's own response has them).
    entity = b"".join(_delimited(_T1, _entity_value(v)) for v in state.entity_values)
    parts.append(_delimited(_T2, entity + _delimited(_T2, bytes([PRESENT]) * n) + _EMPTY_TS * n))
    # Stored times of minute bars carry their origin's rank below the microsecond: never handed to a reader.
    seen: dict[bytes, bytes] = {}
    view_stamps = [
        b"".join(_delimited(_T3, unranked(s, seen)) if s else _EMPTY_TS for s in stamps) for stamps in state.stamps
    ]
    view_statuses = [_delimited(_T2, s) if n else b"" for s in state.statuses]
    for column, view in zip(state.columns, state.plan.view_of_feature, strict=True):
        parts.append(_delimited(_T2, _values_field(column) + view_statuses[view] + view_stamps[view]))
    message: GetOnlineFeaturesResponse = GetOnlineFeaturesResponse.FromString(b"".join(parts))
    return message


__all__ = [
    "NOT_FOUND",
    "OUTSIDE_MAX_AGE",
    "PRESENT",
    "FastPlan",
    "FastView",
    "VectorResponse",
    "decoder",
    "read",
]
