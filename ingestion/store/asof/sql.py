"""The SQL of the ASOF offline store: one ``ASOF LEFT JOIN`` per feature view, built from plain values.

Point-in-time rule, per view: a feature row is visible to an entity row iff its keys match and
``feature.event_timestamp <= entity.event_timestamp``; of the visible rows the newest event time wins, and among equal
event times the newest ``created_timestamp``. The winner's values are returned only when
``feature.event_timestamp >= entity.event_timestamp - ttl``; otherwise the features are null and the row is kept.

The created-timestamp tie-break rides inside the ASOF inequality: both sides compare a struct
``{t: event time, c: created time}`` (lexicographic), and the entity side carries ``c = +infinity``. The ASOF join
then picks the greatest ``(t, c)`` at or below ``(entity ts, +inf)``: the newest event time, and of equal event times
the newest write. That costs nothing next to a plain ASOF join, where de-duplicating first (a window or a GROUP BY
over every feature row) doubled the time in measurements. A view whose dataset orders its origins
(:mod:`ingestion.store.precedence`, ``ohlcv_minute``) compares ``{t, r: origin rank, c}`` instead (the entity side
``r = +max``): of equal event times the highest origin wins, then the newest write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

ENTITY_RELATION = "__asof_entity"
"""Name under which the prepared entity table is registered on the DuckDB connection."""
ROW_ID = "__asof_row"
"""Entity row number (0-based, the entity frame's order); the job puts rows back in this order and drops it."""
ENTITY_TS = "__asof_ts"
"""The entity frame's event timestamp as ``timestamp[us, UTC]``, the precision of the stored feature rows."""
_KEY = "__asof_key"
_RANKED_KEY = "__asof_ranked_key"
_MAX_RANK = 2**31 - 1
_TS = "__asof_feature_ts"


def ident(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def ts_literal(value: datetime) -> str:
    """A TIMESTAMPTZ literal for an aware datetime (naive ones are taken as UTC)."""
    text = value.isoformat() if value.tzinfo else value.isoformat() + "+00:00"
    return f"CAST({literal(text)} AS TIMESTAMPTZ)"


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class FeatureColumn:
    """A requested feature: its column in the source, its name in the result and its Arrow type."""

    source: str
    output: str
    dtype: pa.DataType


@dataclass(frozen=True)
class ViewPlan:
    """What one feature view contributes to a retrieval, in the source's column names.

    ``relation`` is a SQL table expression (``read_parquet(...)`` or a registered empty table); ``join_keys`` pairs
    each key column of the source with the entity frame column it is joined to. ``ttl`` None or zero: unbounded.
    """

    name: str
    relation: str
    join_keys: tuple[tuple[str, str], ...]
    timestamp_field: str
    created_timestamp_column: str | None
    features: tuple[FeatureColumn, ...]
    ttl: timedelta | None
    cast_timestamps: bool = False
    precedence: str | None = None
    """SQL rank of a row's origin (:meth:`ingestion.store.precedence.Precedence.sql`): among rows of equal event time
    the highest rank wins, then the newest ``created_timestamp``. None: the created time alone."""
    """True when the files' time columns are not ``TIMESTAMPTZ`` (naive, or nanoseconds written by pandas: pitfall
    2). They are then cast, nanoseconds truncated to microseconds; the common case keeps bare columns so that the
    time bounds can skip row groups."""


def _tz(view: ViewPlan, column: str) -> str:
    return f"CAST({ident(column)} AS TIMESTAMPTZ)" if view.cast_timestamps else ident(column)


def _feature_cte(index: int, view: ViewPlan, lo: datetime | None, hi: datetime | None) -> str:
    ts = _tz(view, view.timestamp_field)
    cols = [f"{ident(src)} AS {ident(f'__k{i}')}" for i, (src, _) in enumerate(view.join_keys)]
    cols.append(f"{ts} AS {ident(_TS)}")
    cols += [f"{ident(f.source)} AS {ident(f'__f{j}')}" for j, f in enumerate(view.features)]
    if view.created_timestamp_column or view.precedence:
        written = _tz(view, view.created_timestamp_column) if view.created_timestamp_column else "NULL"
        created = f"coalesce({written}, CAST('-infinity' AS TIMESTAMPTZ))"
        rank = f"'r': CAST({view.precedence} AS INTEGER), " if view.precedence else ""
        cols.append(f"CASE WHEN {ts} IS NOT NULL THEN {{'t': {ts}, {rank}'c': {created}}} END AS {ident(_KEY)}")
    where = [f"{ts} IS NOT NULL"]
    # Rows after the last entity row or older than the first one minus the ttl cannot be visible to any entity row;
    # the bounds let DuckDB skip row groups by their statistics.
    if hi is not None:
        where.append(f"{ts} <= {ts_literal(hi)}")
    if lo is not None and view.ttl:
        where.append(f"{ts} >= {ts_literal(lo - view.ttl)}")
    # S608: every name in these queries goes through ident() and every value through literal().
    return f"{ident(f'__v{index}')} AS (SELECT {', '.join(cols)} FROM {view.relation} WHERE {' AND '.join(where)})"  # noqa: S608


def _join(index: int, view: ViewPlan) -> str:
    alias = ident(f"__v{index}")
    conds = [f"e.{ident(entity_col)} = {alias}.{ident(f'__k{i}')}" for i, (_, entity_col) in enumerate(view.join_keys)]
    if view.precedence:
        conds.append(f"e.{ident(_RANKED_KEY)} >= {alias}.{ident(_KEY)}")
    elif view.created_timestamp_column:
        conds.append(f"e.{ident(_KEY)} >= {alias}.{ident(_KEY)}")
    else:
        conds.append(f"e.{ident(ENTITY_TS)} >= {alias}.{ident(_TS)}")
    return f"ASOF LEFT JOIN {alias} ON {' AND '.join(conds)}"


def _selected(index: int, view: ViewPlan) -> list[str]:
    alias = ident(f"__v{index}")
    out = []
    for j, f in enumerate(view.features):
        value = f"{alias}.{ident(f'__f{j}')}"
        if view.ttl:
            fresh = f"{alias}.{ident(_TS)} >= e.{ident(ENTITY_TS)} - to_microseconds({_micros(view.ttl)})"
            value = f"CASE WHEN {fresh} THEN {value} END"
        out.append(f"{value} AS {ident(f.output)}")
    return out


def historical_query(entity_columns: list[str], views: list[ViewPlan], lo: datetime | None, hi: datetime | None) -> str:
    """The point-in-time query over the registered entity relation: entity columns, each view's features, row id.

    ``entity_columns`` are returned as given; the last column is ``ROW_ID``, the entity row's position, by which the
    job restores the entity frame's order. ``lo``/``hi`` are the entity frame's smallest and largest event timestamps
    (None for an empty frame).
    """
    any_created = any(v.created_timestamp_column and not v.precedence for v in views)
    any_ranked = any(v.precedence for v in views)
    entity_key = (
        f", CASE WHEN {ident(ENTITY_TS)} IS NOT NULL THEN "
        f"{{'t': {ident(ENTITY_TS)}, 'c': CAST('infinity' AS TIMESTAMPTZ)}} END AS {ident(_KEY)}"
        if any_created
        else ""
    )
    if any_ranked:
        entity_key += (
            f", CASE WHEN {ident(ENTITY_TS)} IS NOT NULL THEN {{'t': {ident(ENTITY_TS)}, 'r': {_MAX_RANK}, "
            f"'c': CAST('infinity' AS TIMESTAMPTZ)}} END AS {ident(_RANKED_KEY)}"
        )
    ctes = [f"e AS (SELECT *{entity_key} FROM {ident(ENTITY_RELATION)})"]  # noqa: S608
    ctes += [_feature_cte(i, v, lo, hi) for i, v in enumerate(views)]
    select = [f"e.{ident(c)}" for c in entity_columns]
    for i, v in enumerate(views):
        select += _selected(i, v)
    joins = "\n".join(_join(i, v) for i, v in enumerate(views))
    # The row id comes back instead of an ORDER BY: putting rows back in place from it afterwards (an O(n) take,
    # job.restore_order) costs far less than DuckDB sorting the wide result (about 3 s of 25 at 1M x 10M).
    select.append(f"e.{ident(ROW_ID)}")
    return f"WITH {', '.join(ctes)}\nSELECT {', '.join(select)}\nFROM e\n{joins}"


def pull_query(
    relation: str,
    columns: list[str],
    timestamp_field: str,
    start: datetime | None,
    end: datetime | None,
    latest_by: list[str] | None = None,
    created_timestamp_column: str | None = None,
    precedence: str | None = None,
    ties_by: list[str] | None = None,
) -> str:
    """Rows of a source within ``[start, end]``; with ``latest_by``, only the newest row per key (materialize).

    The newest row is the greatest ``(event time, origin rank, created time)``, the same order as the point-in-time
    join (``precedence`` as in :class:`ViewPlan`). Without ``latest_by``, ``precedence`` and ``ties_by`` leave out
    every row that a row of the same ``ties_by`` keys and event time outranks: no reader serves it, and a caller
    that picks the newest row by ``(event time, created time)`` alone (Feast's materialization) then picks what the
    join serves.
    """
    # Cast: a naive or nanosecond column cannot be compared with a TIMESTAMPTZ bound (feast-notes pitfall 2).
    ts = f"CAST({ident(timestamp_field)} AS TIMESTAMPTZ)"
    where = [f"{ts} IS NOT NULL"]
    if start is not None:
        where.append(f"{ts} >= {ts_literal(start)}")
    if end is not None:
        where.append(f"{ts} <= {ts_literal(end)}")
    query = f"SELECT {', '.join(ident(c) for c in columns)} FROM {relation} WHERE {' AND '.join(where)}"  # noqa: S608
    if latest_by:
        order = [f"{ts} DESC"]
        if precedence:
            order.append(f"{precedence} DESC")
        if created_timestamp_column:
            order.append(f"{ident(created_timestamp_column)} DESC NULLS LAST")
        partition = ", ".join(ident(k) for k in latest_by)
        query += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
    elif precedence and ties_by:
        partition = ", ".join([*(ident(k) for k in ties_by), ts])
        query += f" QUALIFY {precedence} = max({precedence}) OVER (PARTITION BY {partition})"
    return query


__all__ = [
    "ENTITY_RELATION",
    "ENTITY_TS",
    "ROW_ID",
    "FeatureColumn",
    "ViewPlan",
    "historical_query",
    "ident",
    "literal",
    "pull_query",
    "ts_literal",
]
