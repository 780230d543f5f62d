"""Polygon ticker lists and ticker events (renames) to typed values: pure functions, each bad row refused with a reason.

* ``/v3/reference/tickers``: one page of tickers as of a date (:func:`parse_tickers`): a frame in
  :data:`TICKER_LIST_COLUMNS`, ``delisted_utc`` and ``last_updated_utc`` as UTC timestamps. A row missing a field the
  spec requires (``ticker, name, market, locale``), with a wrong JSON type, an empty or malformed ticker, or a time that
  does not parse is refused, the rest of the page kept.
* ``/vX/reference/tickers/{id}/events``: a security's ticker changes (:func:`parse_ticker_events`). The capture
  names an event's kind ``type`` where the spec says ``event_type``; either is read. A ``ticker_change`` without a
  ``YYYY-MM-DD`` date or a ticker is refused; other event kinds are ignored (the vendor may add kinds).

A page that is not the documented envelope raises :class:`~ingestion.errors.SchemaError` (never an empty answer).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from ingestion.polygon import envelope, rows
from ingestion.rejects import ParseResult, Rejected

__all__ = [
    "EVENTS_DATASET",
    "TICKERS",
    "TICKER_LIST_COLUMNS",
    "TickerChange",
    "TickerEvents",
    "parse_ticker_events",
    "parse_tickers",
]

_S = pa.string()
TICKER = re.compile(r"^[A-Z][A-Z0-9.\-:]{0,19}$")
"""A plausible exchange ticker (``BRK.B``, ``X:BTCUSD`` for the other markets)."""
EVENTS_DATASET = "polygon_ticker_events"

TICKERS = rows.RowSpec(
    "polygon_tickers",
    (
        ("ticker", _S),
        ("name", _S),
        ("market", _S),
        ("locale", _S),
        ("primary_exchange", _S),
        ("type", _S),
        ("active", pa.bool_()),
        ("currency_name", _S),
        ("cik", _S),
        ("composite_figi", _S),
        ("share_class_figi", _S),
        ("last_updated_utc", _S),
        ("delisted_utc", _S),
    ),
    frozenset({"ticker", "name", "market", "locale"}),
    frozenset({"currency_symbol", "base_currency_symbol", "base_currency_name"}),  # fx and crypto rows
)
TICKER_LIST_COLUMNS: tuple[str, ...] = tuple(n for n, _ in TICKERS.fields)
_TIMES = ("last_updated_utc", "delisted_utc")


@dataclass(frozen=True)
class TickerChange:
    """From ``date`` on, the security traded as ``ticker`` (its first ticker's date is its listing)."""

    ticker: str
    date: dt.date


@dataclass(frozen=True)
class TickerEvents:
    """A security's ticker timeline, oldest first, and what was refused on the way."""

    name: str | None
    composite_figi: str | None
    cik: str | None
    changes: tuple[TickerChange, ...]
    rejected: list[Rejected] = field(default_factory=list)
    drift: set[str] = field(default_factory=set)

    @property
    def current(self) -> str | None:
        """The ticker of the latest change: the security's name now."""
        return self.changes[-1].ticker if self.changes else None


def parse_tickers(body: bytes | str, *, endpoint: str) -> ParseResult:
    """One page of ``/v3/reference/tickers`` as a frame in :data:`TICKER_LIST_COLUMNS` (module docstring)."""
    doc = envelope.decode(body, endpoint)
    page = rows.exact(doc, TICKERS, endpoint)
    source = f"{envelope.VENDOR} {endpoint}"
    rejected = list(page.rejected)
    kept: list[dict[str, Any]] = []
    for raw in page.payloads or []:
        problem = _ticker_row_problem(raw)
        if problem is None:
            kept.append(raw)
        else:
            rejected.append(Rejected(TICKERS.dataset, source, problem, raw))
    table = pa.Table.from_pylist([{c: r.get(c) for c in TICKER_LIST_COLUMNS} for r in kept], schema=_schema())
    frame = table.to_pandas()
    for name in _TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    return ParseResult(frame=frame, rejected=rejected, drift=page.drift)


def _schema() -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in TICKERS.fields])


def _ticker_row_problem(raw: dict[str, Any]) -> str | None:
    if not TICKER.match(raw["ticker"]):
        return f"ticker {raw['ticker']!r:.30} is not a ticker symbol"
    for name in _TIMES:
        value = raw.get(name)
        if value is not None and _instant(value) is None:
            return f"{name} {value!r:.40} is not an ISO-8601 time"
    return None


def _instant(value: str) -> pd.Timestamp | None:
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        return None
    return None if stamp is pd.NaT or stamp.tzinfo is None else stamp


def parse_ticker_events(body: bytes | str, *, endpoint: str) -> TickerEvents:
    """``/vX/reference/tickers/{id}/events`` as a :class:`TickerEvents` (module docstring)."""
    doc = envelope.decode(body, endpoint)
    result = doc.get("results")
    if not isinstance(result, dict):
        kind = "missing" if result is None else f"a JSON {type(result).__name__}"
        raise envelope.schema_error(f"results is {kind}, expected an object", endpoint)
    events = result.get("events") or []
    if not isinstance(events, list):
        raise envelope.schema_error(f"results.events is a JSON {type(events).__name__}, expected an array", endpoint)
    source = f"{envelope.VENDOR} {endpoint}"
    rejected: list[Rejected] = []
    changes: dict[tuple[str, dt.date], TickerChange] = {}
    for raw in events:
        built = _change(raw)
        if isinstance(built, str):
            rejected.append(Rejected(EVENTS_DATASET, source, built, raw))
        elif built is not None:
            changes[(built.ticker, built.date)] = built
    drift = {k for k in doc if k not in envelope.ENVELOPE_KEYS}
    drift |= {f"results.{k}" for k in result if k not in ("name", "composite_figi", "cik", "events")}
    ordered = tuple(sorted(changes.values(), key=lambda c: (c.date, c.ticker)))
    return TickerEvents(
        name=_text(result.get("name")),
        composite_figi=_text(result.get("composite_figi")),
        cik=_text(result.get("cik")),
        changes=ordered,
        rejected=rejected,
        drift=drift,
    )


def _change(raw: Any) -> TickerChange | str | None:
    """A ticker change, the reason it is refused, or None for an event of another kind."""
    if not isinstance(raw, dict):
        return f"event is a JSON {type(raw).__name__}, expected an object"
    kind = raw.get("type", raw.get("event_type"))
    if not isinstance(kind, str):
        return "event has no type"
    if kind != "ticker_change":
        return None
    date = raw.get("date")
    day = _date(date) if isinstance(date, str) else None
    if day is None:
        return f"date {date!r:.40} is not a YYYY-MM-DD date"
    body = raw.get("ticker_change")
    ticker = body.get("ticker") if isinstance(body, dict) else None
    if not isinstance(ticker, str) or not TICKER.match(ticker.strip().upper()):
        return f"ticker_change.ticker {ticker!r:.30} is not a ticker symbol"
    return TickerChange(ticker.strip().upper(), day)


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
