"""Polygon's ``/v3/reference/splits`` and ``/v3/reference/dividends`` over the market's corporate actions.

Records are shaped like the vendor's (the captures in ``shared/vendor/polygon/rest-captures/v3/reference``, plus the
spec's ``id`` and, for dividends, ``currency``): keys in alphabetical order, dates ``YYYY-MM-DD``, whole split ratios
as JSON integers, absent dates omitted. A record is served only once announced by the market's clock
(:attr:`~ingestion.simulators.market.Market.last_day`): splits by their declared date (which the vendor never sends),
dividends by ``declaration_date`` (the ex-date when a bad record has none). The market's ``extra_*_records`` are
served as they are, beside the truth.

Query: the spec's filters (``field``, ``field.gte|gt|lte|lt`` on ticker, dates and cash amount; ``reverse_split``,
``frequency``, ``dividend_type``), ``sort`` (default the ex/execution date), ``order`` (default ``desc``, as the
captures list newest first), ``limit`` (default 10, max 1000) and a position cursor for the next page. Pure functions
of the market and the query: :mod:`ingestion.simulators.polygon_rest` wraps them in routes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingestion.simulators.market import DividendRecord, Market, SplitRecord

MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
_OPS = ("gte", "gt", "lte", "lt")
AFTER = "after"
"""The cursor key holding the position (sort value, id) of the last record served."""


class QueryError(ValueError):
    """A parameter the vendor rejects with 400."""


@dataclass(frozen=True)
class Endpoint:
    """One reference endpoint: its records under the clock, filterable fields, exact-match fields and sorts."""

    records: Callable[[Market, str], list[dict[str, Any]]]
    ranged: tuple[str, ...]
    exact: tuple[str, ...]
    sorts: tuple[str, ...]


def _date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _number(value: float) -> float | int:
    # The captures send whole ratios as integers (``"split_to": 20``).
    return int(value) if float(value).is_integer() else float(value)


def split_json(record: SplitRecord) -> dict[str, Any]:
    """A split as the vendor sends it (no declared date)."""
    return {
        "execution_date": record.execution_date.isoformat(),
        "id": record.id,
        "split_from": _number(record.split_from),
        "split_to": _number(record.split_to),
        "ticker": record.ticker,
    }


def dividend_json(record: DividendRecord) -> dict[str, Any]:
    """A dividend as the vendor sends it (absent dates omitted)."""
    body: dict[str, Any] = {
        "cash_amount": record.cash_amount,
        "currency": record.currency,
        "declaration_date": _date(record.declaration_date),
        "dividend_type": record.dividend_type,
        "ex_dividend_date": record.ex_dividend_date.isoformat(),
        "frequency": record.frequency,
        "id": record.id,
        "pay_date": _date(record.pay_date),
        "record_date": _date(record.record_date),
        "ticker": record.ticker,
    }
    return {k: v for k, v in body.items() if v is not None}


def _symbols(market: Market, ticker: str) -> tuple[str, ...]:
    return (ticker,) if ticker else market.symbols


def _known_splits(market: Market, ticker: str) -> list[dict[str, Any]]:
    clock = market.last_day
    truth = [r for s in _symbols(market, ticker) for r in market.split_records(s)]
    extra = [r for r in market.extra_split_records if not ticker or r.ticker == ticker]
    return [split_json(r) for r in truth + extra if r.declared_date <= clock]


def _known_dividends(market: Market, ticker: str) -> list[dict[str, Any]]:
    clock = market.last_day
    truth = [r for s in _symbols(market, ticker) for r in market.dividend_records(s)]
    extra = [r for r in market.extra_dividend_records if not ticker or r.ticker == ticker]
    return [dividend_json(r) for r in truth + extra if (r.declaration_date or r.ex_dividend_date) <= clock]


SPLITS = Endpoint(_known_splits, ("ticker", "execution_date"), (), ("execution_date", "ticker"))
DIVIDENDS = Endpoint(
    _known_dividends,
    ("ticker", "ex_dividend_date", "record_date", "declaration_date", "pay_date", "cash_amount"),
    ("frequency", "dividend_type"),
    ("ex_dividend_date", "pay_date", "declaration_date", "record_date", "cash_amount", "ticker"),
)


def _coerce(field: str, raw: str) -> Any:
    if field == "cash_amount":
        try:
            return float(raw)
        except ValueError as exc:
            raise QueryError(f"Invalid value for '{field}': {raw!r} is not a number") from exc
    if field.endswith("_date"):
        try:
            return dt.date.fromisoformat(raw).isoformat()
        except ValueError as exc:
            raise QueryError(f"Invalid value for '{field}': {raw!r} is not a date (YYYY-MM-DD)") from exc
    if field == "frequency":
        return int(raw) if raw.lstrip("-").isdigit() else raw
    return raw


def _keep(record: Mapping[str, Any], field: str, op: str, wanted: Any) -> bool:
    value = record.get(field)
    if value is None:
        return False
    if op == "eq":
        return bool(value == wanted)
    return bool({"gte": value >= wanted, "gt": value > wanted, "lte": value <= wanted, "lt": value < wanted}[op])


def _limit(q: Mapping[str, str]) -> int:
    raw = q.get("limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit():
        raise QueryError(f"Invalid value for 'limit': {raw!r} is not an integer")
    return max(1, min(MAX_LIMIT, int(raw)))


def page(
    market: Market, endpoint: Endpoint, q: Mapping[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """One page of ``endpoint``'s records for the query ``q``, and the query of the next page (None at the end)."""
    sort = q.get("sort") or endpoint.sorts[0]
    if sort not in endpoint.sorts:
        raise QueryError(f"Invalid value for 'sort': {sort!r}. Must be one of {', '.join(endpoint.sorts)}")
    order = (q.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise QueryError(f"Invalid value for 'order': {order!r}. Must be asc or desc")
    limit = _limit(q)
    records = endpoint.records(market, q.get("ticker", ""))
    for field in endpoint.ranged + endpoint.exact:
        for op in ("eq", *(_OPS if field in endpoint.ranged else ())):
            raw = q.get(field if op == "eq" else f"{field}.{op}")
            if raw:
                wanted = _coerce(field, raw)
                records = [r for r in records if _keep(r, field, op, wanted)]
    if "reverse_split" in q and endpoint is SPLITS:
        reverse = q["reverse_split"].lower() in ("true", "1")
        records = [r for r in records if (r["split_to"] < r["split_from"]) == reverse]
    records = [r for r in records if r.get(sort) is not None]
    records.sort(key=lambda r: (r[sort], r["id"]), reverse=order == "desc")
    after = q.get(AFTER)
    if after:
        mark_value, _, mark_id = after.rpartition("|")
        mark = (_coerce(sort, mark_value), mark_id)
        records = [r for r in records if ((r[sort], r["id"]) < mark if order == "desc" else (r[sort], r["id"]) > mark)]
    results = records[:limit]
    if len(records) <= limit:
        return results, None
    last = results[-1]
    following = {**q, "sort": sort, "order": order, "limit": str(limit), AFTER: f"{last[sort]}|{last['id']}"}
    return results, following
