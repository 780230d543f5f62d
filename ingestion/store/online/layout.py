"""The Redis key layout of our online store, owned here rather than borrowed from Feast's private helpers.

Per entity and project, one hash (the layout Feast's Redis store reads, so stock ``online_read`` still works):

* key: ``serialize_entity_key(EntityKey, v3) + project`` (:func:`~ingestion.store.online.encoding.entity_key`);
* field per feature: 4-byte little-endian unsigned ``mmh3("<view>:<feature>")`` (:func:`feature_field`), value: a
  serialized ``feast.types.Value``;
* field ``_ts:<view>``: a serialized ``google.protobuf.Timestamp`` of the row's event time (:func:`ts_field`);
* field ``_vec:<service>:<view>`` (:func:`segment_field`), for every FeatureService with ``precompute_online=True``
  that reads the view: that view's slice of the service's ``PrecomputedFeatureVector``, already in protobuf bytes
  (the service's projected features of the view as ``values`` entries, then the view's ``fv_timestamps`` entry).

Protobuf concatenates repeated fields, so a service's vector is its names header followed by its views' slices in
projection order. A slice is written by the same script call (one atomic step) as the view's values, so a vector
read in one ``HMGET`` of one hash can never be older than the per-view values it mirrors.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mmh3

from ingestion.store.online.encoding import varint

# PrecomputedFeatureVector: feature_names = 1, values = 2, fv_timestamps = 3 (all length-delimited).
# FeatureViewTimestamp: feature_view_name = 1, event_timestamp = 2.
_NAME = b"\x0a"
_VALUE = b"\x12"
_FV_TS = b"\x1a"
_NULL_VALUE = _VALUE + b"\x00"
_LENGTHS = [varint(n) for n in range(128)]
_ENTRY_HEADS = [_VALUE + n for n in _LENGTHS]


def feature_field(view: str, feature: str) -> bytes:
    """The hash field of a feature: 4-byte little-endian unsigned murmur3_32 of ``view:feature``."""
    return int(mmh3.hash(f"{view}:{feature}", signed=False)).to_bytes(4, "little")


def alias(projection: Any) -> str:
    """The name a FeatureViewProjection is read under (its alias, else its view's name)."""
    return str(projection.name_to_use())


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def segment_field(service: str, view: str) -> bytes:
    return f"_vec:{service}:{view}".encode()


def delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, varint length, payload."""
    n = len(payload)
    return tag + (_LENGTHS[n] if n < 128 else varint(n)) + payload


def names_header(names: Iterable[str]) -> bytes:
    """The ``feature_names`` entries of a vector."""
    return b"".join(delimited(_NAME, n.encode()) for n in names)


def view_name_entry(view: str) -> bytes:
    """``FeatureViewTimestamp.feature_view_name`` of a view, the constant head of its ``fv_timestamps`` entry."""
    return delimited(_NAME, view.encode())


def segment(values: Sequence[bytes], name_entry: bytes, ts: bytes | None) -> bytes:
    """A view's slice of a vector: a ``values`` entry per feature, then its ``fv_timestamps`` entry (if any)."""
    body = b"".join(delimited(_VALUE, v) for v in values)
    if ts is None:
        return body
    return body + delimited(_FV_TS, name_entry + delimited(_VALUE, ts))


def _heads(column: Sequence[bytes]) -> list[bytes]:
    """The ``values`` entry head (tag and length) of each value of a column."""
    if max(map(len, column), default=0) < 128:
        return list(map(_ENTRY_HEADS.__getitem__, map(len, column)))
    return [_VALUE + varint(len(v)) for v in column]


def _stamp_entries(head: bytes, ts: Sequence[bytes]) -> list[bytes]:
    """The ``fv_timestamps`` entry of each event Timestamp, for a view whose name entry is ``head``."""
    by_length = {
        n: _FV_TS + varint(len(head) + 1 + len(varint(n)) + n) + head + _VALUE + varint(n) for n in set(map(len, ts))
    }
    return list(map(operator.add, map(by_length.__getitem__, map(len, ts)), ts))


def segment_columns(layout: ViewLayout, values: Sequence[Sequence[bytes]], ts: Sequence[bytes]) -> list[list[bytes]]:
    """Every entity's slice of every vector reading the view, a column per :attr:`ViewLayout.segments` entry.

    Column-wise, as the values are encoded, and without a Python operation per value: each column's entry heads
    are shared constants picked by length, and one C-level join per entity and slice puts heads, values and the
    timestamp entry together. Equal, entity by entity, to :func:`segment`.
    """
    if not layout.segments:
        return []
    wanted = sorted({p for seg in layout.segments for p in seg.positions})
    heads = {p: _heads(values[p]) for p in wanted}
    out = []
    for seg in layout.segments:
        parts = [column for p in seg.positions for column in (heads[p], values[p])]
        parts.append(_stamp_entries(seg.name_entry, ts))
        out.append(list(map(b"".join, zip(*parts, strict=True))))
    return out


def null_segment(n_features: int) -> bytes:
    """The slice of a view with no (or an expired) value: empty ``Value`` messages and no timestamp."""
    return _NULL_VALUE * n_features


@dataclass(frozen=True)
class Segment:
    """One precompute service's slice of a view: its field and which of the view's features it holds."""

    service: str
    field: bytes
    name_entry: bytes
    positions: tuple[int, ...]


@dataclass(frozen=True)
class ViewLayout:
    """Where one feature view's values live in each entity hash, and the vector slices written with them."""

    name: str
    ts_field: bytes
    join_key: str
    features: tuple[str, ...]
    fields: tuple[bytes, ...]
    value_types: tuple[str, ...]
    segments: tuple[Segment, ...] = ()


@dataclass
class Prepared:
    """Rows encoded for the store: per entity its key, event time and field values (the latest row per entity)."""

    layout: ViewLayout
    keys: list[bytes]
    secs: list[int]
    nanos: list[int]
    ts_bytes: list[bytes]
    values: list[list[bytes]]  # one list per feature, aligned with ``keys``

    def __len__(self) -> int:
        return len(self.keys)

    def hset_mapping(self, i: int) -> dict[bytes, bytes]:
        """The per-view fields of entity ``i`` (without vector slices), as Feast would write them."""
        mapping = {self.layout.ts_field: self.ts_bytes[i]}
        mapping.update({f: col[i] for f, col in zip(self.layout.fields, self.values, strict=True)})
        return mapping


@dataclass(frozen=True)
class PlannedView:
    """One view of a precompute service, as the read needs it."""

    view: str
    ttl_us: int | None
    ts_field: bytes
    segment_field: bytes
    null_segment: bytes


@dataclass(frozen=True)
class ServicePlan:
    """How to read a precompute service's vector: one HMGET of ``fields`` per entity, then join the slices."""

    name: str
    views: tuple[PlannedView, ...]
    short_header: bytes
    full_header: bytes
    fields: list[bytes] = field(default_factory=list)

    def header(self, full_feature_names: bool) -> bytes:
        return self.full_header if full_feature_names else self.short_header


__all__ = [
    "PlannedView",
    "Prepared",
    "Segment",
    "ServicePlan",
    "ViewLayout",
    "alias",
    "delimited",
    "feature_field",
    "names_header",
    "null_segment",
    "segment",
    "segment_columns",
    "segment_field",
    "ts_field",
    "view_name_entry",
]
