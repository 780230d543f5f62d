"""Polygon's ticker list and ticker events over the market's reference truth (renamed and delisted tickers).

* ``/v3/reference/tickers``: every ticker as of ``date`` (default: the market's clock, never past it), shaped like the
  capture (``shared/vendor/polygon/rest-captures/v3/reference/tickers.json``; an inactive ticker also carries
  ``delisted_utc``). ``active`` (default true) keeps the tickers trading that day, ``active=false`` those that no
  longer did (a delisted security, an old name after its change). Filters: ``ticker`` and ``ticker.gte|gt|lte|lt``,
  ``type``, ``market``, ``exchange``, ``cik``, ``search``; ``sort`` (default ``ticker``), ``order`` (default
  ``asc``), ``limit`` (default 100, max 1000) and a cursor for the next page.
* ``/vX/reference/tickers/{id}/events``: the ``ticker_change`` timeline of the security behind ``id``, a ticker it
  **currently** trades under (an old name is not found, as the spec says) or its composite FIGI, shaped like the
  capture (``rest-captures/vX/reference/tickers/META/events&types=ticker_change.json``), newest first; events after the
  clock are not known yet.

Pure functions of the market and the query; :mod:`ingestion.simulators.polygon_rest` wraps them in routes and gives
the identity fields of a security (name, figi, cik, ...) through ``describe``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ingestion.simulators.market import Market
from ingestion.simulators.reference_truth import TickerView

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "QueryError", "events_results", "head_fields", "list_page", "ticker_view"]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
OFFSET = "offset"
"""The cursor key holding how many rows earlier pages served."""
_SORTS = frozenset(
    {"ticker", "name", "market", "locale", "primary_exchange", "type", "currency_name", "cik", "composite_figi",
     "share_class_figi", "last_updated_utc", "delisted_utc"}
)  # fmt: skip

Describe = Callable[[str], dict[str, Any]]
"""``describe(security)``: the identity fields of a security (``name, type, primary_exchange, cik, composite_figi,
share_class_figi, list_date``)."""


class QueryError(ValueError):
    """A parameter the vendor rejects with 400."""


def ticker_view(market: Market, ticker: str, day: dt.date) -> TickerView | None:
    """What the vendor says about ``ticker`` on ``day``, or None when it knows no such ticker then."""
    security = market.reference.traded_window(ticker)[0]
    if not market.has_symbol(security):
        return None
    return market.reference.view(ticker, day)


def _day(raw: str | None, market: Market) -> dt.date:
    if not raw:
        return market.last_day
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise QueryError(f"Could not parse the date parameter {raw!r}. Use YYYY-MM-DD") from exc
    return min(day, market.last_day)  # the clock: nothing after it is known


def head_fields(view: TickerView, name: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a ticker's list row and its details share, in the vendor's order."""
    return {
        "ticker": view.ticker,
        "name": name,
        "market": "stocks",
        "locale": "us",
        "primary_exchange": facts["primary_exchange"],
        "type": facts["type"],
        "active": view.active,
        "currency_name": "usd",
        "cik": facts["cik"],
        "composite_figi": facts["composite_figi"],
        "share_class_figi": facts["share_class_figi"],
    }


def _record(view: TickerView, day: dt.date, describe: Describe) -> dict[str, Any]:
    facts = describe(view.security)
    record = head_fields(view, view.name or facts["name"], facts)
    if view.delisted_utc is not None:
        record["delisted_utc"] = view.delisted_utc
    record["last_updated_utc"] = f"{day.isoformat()}T00:00:00Z"
    return record


def _views_on(market: Market, day: dt.date, describe: Describe) -> list[TickerView]:
    reference = market.reference
    candidates = {reference.ticker_on(s, day) for s in market.symbols}
    candidates |= {t for t in reference.old_tickers if market.has_symbol(reference.traded_window(t)[0])}
    candidates |= set(reference.delisted_securities)
    views = [v for t in candidates if (v := ticker_view(market, t, day)) is not None]
    # A security listed after the day is not a ticker yet.
    return [v for v in views if (v.listed or _listed(describe, v.security)) <= day]


def _listed(describe: Describe, security: str) -> dt.date:
    return dt.date.fromisoformat(describe(security)["list_date"])


def _keep(record: dict[str, Any], q: Mapping[str, str]) -> bool:
    ticker = record["ticker"]
    bounds = {"gte": ticker.__ge__, "gt": ticker.__gt__, "lte": ticker.__le__, "lt": ticker.__lt__}
    for op, test in bounds.items():
        raw = q.get(f"ticker.{op}")
        if raw and not test(raw):
            return False
    for name, key in (("ticker", "ticker"), ("type", "type"), ("market", "market"), ("exchange", "primary_exchange"),
                      ("cik", "cik")):  # fmt: skip
        raw = q.get(name)
        if raw and record[key] != raw:
            return False
    search = (q.get("search") or "").lower()
    return not search or search in ticker.lower() or search in record["name"].lower()


def list_page(
    market: Market, q: Mapping[str, str], describe: Describe
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """One page of ``/v3/reference/tickers`` and the query of the next page (None on the last)."""
    day = _day(q.get("date"), market)
    active = (q.get("active") or "true").lower() not in ("false", "0", "no")
    sort = q.get("sort") or "ticker"
    if sort not in _SORTS:
        raise QueryError(f"Invalid value for 'sort': {sort!r}")
    order = (q.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise QueryError(f"Invalid value for 'order': {order!r}: use asc or desc")
    try:
        limit = max(1, min(MAX_LIMIT, int(q.get("limit") or DEFAULT_LIMIT)))
        offset = max(0, int(q.get(OFFSET) or 0))
    except ValueError as exc:
        raise QueryError(f"Invalid value for 'limit': {q.get('limit')!r} is not an integer") from exc
    records = [_record(v, day, describe) for v in _views_on(market, day, describe) if v.active == active]
    records = [r for r in records if _keep(r, q)]
    records.sort(key=lambda r: (str(r.get(sort) or ""), r["ticker"]), reverse=order == "desc")
    page = records[offset : offset + limit]
    if offset + limit >= len(records):
        return page, None
    return page, {**q, "limit": str(limit), "sort": sort, "order": order, OFFSET: str(offset + limit)}


def events_results(market: Market, ident: str, types: str | None, describe: Describe) -> dict[str, Any] | None:
    """The ``results`` of ``/vX/reference/tickers/{ident}/events``, or None when no security answers to ``ident``."""
    day = market.last_day
    reference = market.reference
    securities = [*market.symbols, *reference.delisted_securities]
    if ident.upper().startswith("BBG"):
        security = next((s for s in securities if describe(s)["composite_figi"] == ident), None)
    else:
        # A ticker names the security it trades under now: an old name (FB after the change) is not found.
        view = ticker_view(market, ident, day)
        current = view is not None and reference.ticker_on(view.security, day) == ident
        security = view.security if view is not None and current else None
    if security is None:
        return None
    facts = describe(security)
    wanted = {t.strip() for t in (types or "").split(",") if t.strip()}
    events = reference.events(security, day)
    if not events:  # never renamed: its one ticker since its listing
        events = [(security, _listed(describe, security))]
    name = reference.view(reference.ticker_on(security, day), day)
    return {
        "name": (name.name if name is not None and name.name else None) or facts["name"],
        "composite_figi": facts["composite_figi"],
        "cik": facts["cik"],
        "events": [
            {"ticker_change": {"ticker": ticker}, "type": "ticker_change", "date": date.isoformat()}
            for ticker, date in events
            if not wanted or "ticker_change" in wanted
        ],
    }
