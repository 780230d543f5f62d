"""Rows of a Polygon list page as Arrow columns: a fast path for clean pages and an exact path for the rest.

The fast path hands the whole page to Arrow's JSON reader with the row type given up front, so decoding and the
move to columns happen in C++ with no Python object per row. It only ever *accepts* a page: anything unusual (bad
JSON, an error status, a wrong type, a missing required field) sends the page to the exact path instead.

The exact path decodes with orjson and checks every row in Python, so each refused row keeps its raw payload and a
reason. Both paths end in the same :class:`Rows`, and the parsers apply the same vectorised value checks to either,
so a page gives the same frame whichever path read it (the tests hold them to that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.json as pa_json

from ingestion.polygon import envelope
from ingestion.rejects import ParseResult, Rejected

# Top-level string fields the fast path reads besides the rows (a parser checks ``ticker`` against its request).
ENVELOPE_FIELDS = ("status", "request_id", "next_url", "ticker")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class RowSpec:
    """The typed fields of one row kind. ``known`` lists documented fields that are not drift even if unused."""

    dataset: str
    fields: tuple[tuple[str, pa.DataType], ...]
    required: frozenset[str]
    known: frozenset[str] = frozenset()

    @property
    def struct(self) -> pa.StructType:
        return pa.struct([pa.field(name, dtype) for name, dtype in self.fields])

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.fields) | self.known


@dataclass
class Rows:
    """Typed rows of a page as a struct array, the raw payloads behind them (exact path only), and what was refused."""

    values: pa.StructArray
    payloads: Sequence[Any] | None
    rejected: list[Rejected]
    drift: set[str]
    envelope: dict[str, Any]  # the page's top-level fields (the fast path keeps only ENVELOPE_FIELDS)

    def column(self, name: str) -> pa.Array:
        return self.values.field(name)


def fast(body: bytes, spec: RowSpec) -> Rows | None:
    """Read a clean page entirely in Arrow, or return None when the page needs the exact path."""
    if not body.lstrip().startswith(b"{"):
        # A page is always an object. Arrow's JSON reader also crashes the whole process (SIGSEGV, pyarrow 26) on a
        # body that is only `null`, so anything else goes to the exact path, which refuses it with a SchemaError.
        return None
    schema = pa.schema([*((name, pa.string()) for name in ENVELOPE_FIELDS), ("results", pa.list_(spec.struct))])
    options = pa_json.ParseOptions(explicit_schema=schema, newlines_in_values=True, unexpected_field_behavior="infer")
    # One block for the whole page: Arrow would otherwise refuse an object that straddles two blocks.
    read = pa_json.ReadOptions(use_threads=False, block_size=max(len(body) + 1, 1 << 16))
    try:
        table = pa_json.read_json(pa.BufferReader(body), read_options=read, parse_options=options)
    except pa.ArrowException:  # any refusal by Arrow means "not a clean page": the exact path explains it
        return None
    if table.num_rows != 1:
        return None
    head = {name: table.column(name)[0].as_py() for name in ENVELOPE_FIELDS}
    if head["status"] not in envelope.OK_STATUSES:
        return None
    try:
        results = table.column("results").combine_chunks()
    except pa.ArrowException:  # e.g. an inferred field named "" whose chunks Arrow cannot join (ArrowIndexError)
        return None
    if results.null_count:
        values = pa.array([], type=spec.struct)
    else:
        values = results.flatten()
        if any(values.field(name).null_count for name in spec.required):
            return None
    drift = {f.name for f in table.schema if f.name not in envelope.ENVELOPE_KEYS}
    drift |= {f"results.{f.name}" for f in values.type if f.name not in spec.names}
    return Rows(values=values, payloads=None, rejected=[], drift=drift, envelope=head)


def exact(doc: dict[str, Any], spec: RowSpec, endpoint: str) -> Rows:
    """Check every row of a decoded page; a row with a missing or mistyped field becomes a :class:`Rejected`."""
    raw = envelope.results_list(doc, endpoint)
    source = f"{envelope.VENDOR} {endpoint}"
    good: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for row in raw:
        reason = row_problem(row, spec)
        if reason is None:
            good.append(row)
        else:
            rejected.append(Rejected(spec.dataset, source, reason, row))
        if isinstance(row, dict):
            seen.update(row)
    drift = {k for k in doc if k not in envelope.ENVELOPE_KEYS}
    drift |= {f"results.{k}" for k in seen if k not in spec.names}
    values = pa.array(good, type=spec.struct) if good else pa.array([], type=spec.struct)
    return Rows(values=values, payloads=good, rejected=rejected, drift=drift, envelope=doc)


def row_problem(row: Any, spec: RowSpec) -> str | None:
    """Why a raw row cannot be typed (missing required field, wrong JSON type), or None when it can."""
    if not isinstance(row, dict):
        return f"row is a JSON {type(row).__name__}, expected an object"
    for name, dtype in spec.fields:
        value = row.get(name)
        if value is None:
            if name in spec.required:
                return f"missing required field {name!r}"
            continue
        expected = _type_problem(value, dtype)
        if expected:
            return f"field {name!r} is {_json_type(value)} {value!r:.40}, expected {expected}"
    return None


def split(
    rows: Rows, bad: npt.NDArray[np.bool_], reasons: npt.NDArray[np.object_], spec: RowSpec, endpoint: str
) -> Rows | None:
    """Move rows flagged by a value check into ``rejected``; None when the page came from the fast path and must
    be re-read exactly (only the exact path keeps raw payloads to quarantine)."""
    if not bad.any():
        return rows
    if rows.payloads is None:
        return None
    source = f"{envelope.VENDOR} {endpoint}"
    idx = np.flatnonzero(bad)
    extra = [Rejected(spec.dataset, source, str(reasons[i]), rows.payloads[i]) for i in idx.tolist()]
    keep = np.flatnonzero(~bad)
    payloads = [rows.payloads[i] for i in keep.tolist()]
    values = rows.values.take(pa.array(keep, type=pa.int64()))
    return Rows(
        values=values, payloads=payloads, rejected=rows.rejected + extra, drift=rows.drift, envelope=rows.envelope
    )


def _type_problem(value: Any, dtype: pa.DataType) -> str | None:
    kind = type(value)
    if pa.types.is_floating(dtype):
        return None if kind is float or kind is int else "a number"
    if pa.types.is_integer(dtype):
        return None if kind is int and _INT64_MIN <= value <= _INT64_MAX else "an integer"
    if pa.types.is_boolean(dtype):
        return None if kind is bool else "a boolean"
    if pa.types.is_string(dtype):
        return None if kind is str else "a string"
    if pa.types.is_list(dtype):
        if kind is not list:
            return "an array"
        inner = dtype.value_type
        return next((f"an array of {p}" for v in value if v is not None and (p := _type_problem(v, inner))), None)
    raise TypeError(f"no JSON check for Arrow type {dtype}")


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def read_page(
    body: bytes | str, spec: RowSpec, endpoint: str, finish: Callable[[Rows], ParseResult | None]
) -> ParseResult:
    """Run ``finish`` on the fast path's rows, or on the exact path's when the page is not clean.

    ``finish`` returns None to ask for the exact path (a value check failed on fast-path rows, which carry no raw
    payloads to quarantine). On the exact path it must not return None.
    """
    data = body.encode() if isinstance(body, str) else body
    quick = fast(data, spec)
    if quick is not None:
        result = finish(quick)
        if result is not None:
            return result
    doc = envelope.decode(data, endpoint)
    result = finish(exact(doc, spec, endpoint))
    if result is None:  # pragma: no cover - split() never defers on exact rows
        raise RuntimeError("exact path deferred")
    return result
