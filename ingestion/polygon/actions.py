"""Polygon corporate-action pages (``/v3/reference/splits``, ``/v3/reference/dividends``) to ``corporate_actions`` rows.

Pure functions from one page's bytes to a :class:`~ingestion.rejects.ParseResult` in the columns of
:data:`ingestion.datasets.CORPORATE_ACTIONS` (less ``created_timestamp``, which the writer sets). Every row is checked
on its own here; a row that cannot be a corporate action is refused with its reason, the rest of the page parses:

* a missing or mistyped required field (splits: ``ticker, execution_date, split_from, split_to``; dividends:
  ``ticker, ex_dividend_date, cash_amount``);
* a date that is not ``YYYY-MM-DD``;
* a split ratio that is not a finite number above zero (``split_from`` or ``split_to`` zero, negative, NaN or inf),
  or a cash amount that is not;
* an ex-date that is not an NYSE session (a weekend or holiday): no bar can start a new basis on a day without
  trading, so the vendor's date is wrong and applying it would adjust the wrong bar.

Checks across rows (the same action twice, under one id or two) need the actions already stored, so they are
:mod:`ingestion.jobs.corporate_actions`'s.

Knowledge time (``event_timestamp``, :func:`known_at`): the end of the declaration date (the next New York midnight)
when the vendor gives one, otherwise 04:00 New York on the ex-date, and never later than that 04:00. Polygon's splits
carry no declaration date, so a split is known at its ex-date's pre-market: before the first bar it affects ends (the
first extended-hours minute, and the daily bar at the close). A dividend declared weeks ahead is known from the night
of its declaration.

The vendor's ``id`` identifies a row; the splits captures predate it, so a row without one gets an id made of its
kind, ticker, ex-date and amounts (stable across fetches, so a re-fetch still de-duplicates).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa

from ingestion import calendar
from ingestion.datasets import CORPORATE_ACTIONS, CREATED_TS, EVENT_TS
from ingestion.polygon import envelope, rows
from ingestion.rejects import ParseResult, Rejected

__all__ = ["ACTION_COLUMNS", "DIVIDENDS", "SPLITS", "known_at", "parse_dividends", "parse_splits"]

_S, _F, _I = pa.string(), pa.float64(), pa.int64()
PRE_MARKET = dt.time(4, 0)
"""New York time an undeclared action is known on its ex-date: the start of extended hours."""

ACTION_COLUMNS: tuple[str, ...] = tuple(c for c in CORPORATE_ACTIONS.column_names if c != CREATED_TS)

SPLITS = rows.RowSpec(
    CORPORATE_ACTIONS.name,
    (("id", _S), ("ticker", _S), ("execution_date", _S), ("split_from", _F), ("split_to", _F)),
    frozenset({"ticker", "execution_date", "split_from", "split_to"}),
)
DIVIDENDS = rows.RowSpec(
    CORPORATE_ACTIONS.name,
    (
        ("id", _S),
        ("ticker", _S),
        ("ex_dividend_date", _S),
        ("cash_amount", _F),
        ("currency", _S),
        ("declaration_date", _S),
        ("record_date", _S),
        ("pay_date", _S),
        ("frequency", _I),
        ("dividend_type", _S),
    ),
    frozenset({"ticker", "ex_dividend_date", "cash_amount"}),
)


def known_at(ex_date: dt.date, declaration_date: dt.date | None) -> pd.Timestamp:
    """When an action became known (UTC): see the module docstring."""
    pre_market = pd.Timestamp(dt.datetime.combine(ex_date, PRE_MARKET)).tz_localize(calendar.NEW_YORK)
    if declaration_date is None:
        return pre_market.tz_convert("UTC")
    end_of_day = pd.Timestamp(declaration_date + dt.timedelta(days=1)).tz_localize(calendar.NEW_YORK)
    return min(end_of_day, pre_market).tz_convert("UTC")


def parse_splits(body: bytes | str, *, endpoint: str) -> ParseResult:
    """Parse one page of ``/v3/reference/splits`` into ``corporate_actions`` rows of kind ``split``."""
    return _parse(body, SPLITS, endpoint, _split_row)


def parse_dividends(body: bytes | str, *, endpoint: str) -> ParseResult:
    """Parse one page of ``/v3/reference/dividends`` into ``corporate_actions`` rows of kind ``dividend``."""
    return _parse(body, DIVIDENDS, endpoint, _dividend_row)


Row = dict[str, Any]


def _parse(body: bytes | str, spec: rows.RowSpec, endpoint: str, build: Callable[[Row], Row | str]) -> ParseResult:
    doc = envelope.decode(body, endpoint)
    page = rows.exact(doc, spec, endpoint)
    source = f"{envelope.VENDOR} {endpoint}"
    rejected = list(page.rejected)
    kept: list[Row] = []
    for raw in page.payloads or []:
        built = build(raw)
        if isinstance(built, str):
            rejected.append(Rejected(spec.dataset, source, built, raw))
        else:
            kept.append(built)
    return ParseResult(frame=_frame(kept), rejected=rejected, drift=page.drift)


def _split_row(raw: Row) -> Row | str:
    ex = _date(raw["execution_date"])
    if ex is None:
        return f"execution_date {raw['execution_date']!r:.40} is not a YYYY-MM-DD date"
    split_from, split_to = float(raw["split_from"]), float(raw["split_to"])
    if not (_positive(split_from) and _positive(split_to)):
        return f"split ratio {raw['split_to']!r:.20}:{raw['split_from']!r:.20} must be finite and above zero"
    problem = _session_problem(ex)
    if problem:
        return f"execution_date {problem}"
    ticker = raw["ticker"].strip().upper()
    action_id = raw.get("id") or f"split:{ticker}:{ex}:{split_from:g}:{split_to:g}"
    return {
        "symbol": ticker,
        EVENT_TS: known_at(ex, None),
        "action_id": action_id,
        "kind": "split",
        "ex_date": ex,
        "split_from": split_from,
        "split_to": split_to,
        "ratio": split_to / split_from,
    }


def _dividend_row(raw: Row) -> Row | str:
    dates: dict[str, dt.date | None] = {}
    for name in ("ex_dividend_date", "declaration_date", "record_date", "pay_date"):
        value = raw.get(name)
        dates[name] = None if value is None else _date(value)
        if value is not None and dates[name] is None:
            return f"{name} {value!r:.40} is not a YYYY-MM-DD date"
    ex = dates["ex_dividend_date"]
    assert ex is not None  # required, and checked above
    cash = float(raw["cash_amount"])
    if not _positive(cash):
        return f"cash_amount {raw['cash_amount']!r:.20} must be finite and above zero"
    problem = _session_problem(ex)
    if problem:
        return f"ex_dividend_date {problem}"
    ticker = raw["ticker"].strip().upper()
    kind = raw.get("dividend_type")
    return {
        "symbol": ticker,
        EVENT_TS: known_at(ex, dates["declaration_date"]),
        "action_id": raw.get("id") or f"dividend:{ticker}:{ex}:{cash:g}:{kind or ''}",
        "kind": "dividend",
        "ex_date": ex,
        "declaration_date": dates["declaration_date"],
        "cash_amount": cash,
        "currency": raw.get("currency"),
        "dividend_type": kind,
        "frequency": raw.get("frequency"),
        "record_date": dates["record_date"],
        "pay_date": dates["pay_date"],
    }


def _frame(kept: list[Row]) -> pd.DataFrame:
    schema = pa.schema([CORPORATE_ACTIONS.arrow_schema().field(c) for c in ACTION_COLUMNS])
    table = pa.Table.from_pylist([{c: row.get(c) for c in ACTION_COLUMNS} for row in kept], schema=schema)
    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get, use_threads=False)
    frame[EVENT_TS] = frame[EVENT_TS].astype("datetime64[us, UTC]")
    return frame


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _session_problem(day: dt.date) -> str | None:
    """Why ``day`` cannot be an ex-date, or None. Outside the session calendar's years only weekends are known."""
    if day.weekday() >= 5:
        return f"{day} is a {day:%A}, not an NYSE session"
    try:
        holiday = not calendar.is_session(day)
    except Exception:  # exchange_calendars' DateOutOfBounds: before 2000 or past the calendar's window
        holiday = False
    return f"{day} is an NYSE holiday, not a session" if holiday else None
