"""Pure parsers for Unusual Whales responses: bytes (or decoded JSON) in, a typed frame plus quarantined rows out.

Each ``parse_*`` function takes a response body (``bytes``/``str``, or the already decoded payload) and the endpoint
it came from, and returns a :class:`~ingestion.rejects.ParseResult`:

* ``frame``: one row per good record, snake_case columns in a fixed order, typed: money, prices, ratios and IV as
  ``float64``; counts and sizes as nullable ``Int64``; flags as nullable ``boolean``; instants as
  ``datetime64[us, UTC]``; calendar days (trading day, expiry, filing day) as ``date32[pyarrow]``, because a trading
  day is not an instant and midnight UTC would fall on the previous New York evening. ``ticker`` becomes ``symbol``
  (upper case), the entity key of every dataset.
* ``rejected``: rows that miss a required field or hold a value that will not parse, each with its reason. Good plus
  rejected always equals the rows of the page; one bad row never costs the rest of the page.
* ``drift``: vendor fields this module does not know (tolerated, logged once per endpoint and field at WARNING).

Envelope: ``{"data": [...]}`` with optional extra keys (``"date"`` fills rows that lack their own), ``{"data": {...}}``
(one row), a bare list, and for flow alerts and market tide a bare object (a WebSocket payload is one row). Anything
else (not JSON, a scalar, ``"data"`` neither list nor object, an object that is no row such as a 422 body) raises
:class:`~ingestion.errors.SchemaError` naming the endpoint.

Numbers: the vendor sends money as JSON strings on REST and as numbers on the WebSocket; both are accepted. A value
that is not finite (``"1e309"`` overflows to infinity) is refused, and so is a negative value where the vendor's spec
allows none (its filters say ``Min: 0`` for prices, strikes, premiums, sizes, volumes and ratios): those fields
are of kind ``amount`` (float) or ``count`` (integer); signed ones (net premiums, flows, share changes) stay
``float``/``int``. Everything is ``float64``, none is ``Decimal``: every consumer is a float64 feature, the sums
aggregated here span at most a few thousand rows (relative error near 1e-13, far below a cent on any premium UW
reports), and object columns of ``Decimal`` cannot be vectorised. Counts are converted through ``Decimal`` so a
19-digit id is never rounded, and a non-integral count (``"3.5"``) is refused rather than truncated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa

from ingestion import json_overflow
from ingestion.errors import SchemaError
from ingestion.rejects import ParseResult, Rejected
from ingestion.unusual_whales.timestamps import new_york_date, new_york_day_start, to_date, to_utc, utc_series

log = logging.getLogger(__name__)

VENDOR: Final = "unusual_whales"

FLOW_ALERTS: Final = "/api/option-trades/flow-alerts"
TICKER_FLOW_ALERTS: Final = "/api/stock/{ticker}/flow-alerts"
FLOW_RECENT: Final = "/api/stock/{ticker}/flow-recent"
OPTIONS_VOLUME: Final = "/api/stock/{ticker}/options-volume"
NET_PREM_TICKS: Final = "/api/stock/{ticker}/net-prem-ticks"
OHLC: Final = "/api/stock/{ticker}/ohlc/{candle_size}"
DARK_POOL_RECENT: Final = "/api/darkpool/recent"
DARK_POOL_TICKER: Final = "/api/darkpool/{ticker}"
INSIDER_TRANSACTIONS: Final = "/api/insider/transactions"
ETF_IN_OUTFLOW: Final = "/api/etfs/{ticker}/in-outflow"
MARKET_TIDE: Final = "/api/market/market-tide"

Kind = Literal["str", "symbol", "float", "amount", "int", "count", "bool", "ts", "date"]
Body = bytes | bytearray | memoryview | str | list[Any] | dict[str, Any]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT64_MAX: Final = 2**63 - 1
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Field:
    """One output column. ``aliases`` are other vendor names for it (WebSocket ``rule_name`` for ``alert_rule``).

    A ``derived`` field is not read from the row by name; the record's hook fills it.
    """

    name: str
    kind: Kind
    required: bool = False
    aliases: tuple[str, ...] = ()
    derived: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return () if self.derived else (self.name, *self.aliases)

    @property
    def label(self) -> str:
        return "/".join(self.sources) or self.name


# A hook fills derived fields and checks cross-field rules; it returns the reasons the row is bad (empty when fine).
Hook = Callable[[dict[str, Any], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Record:
    """How one endpoint's rows become a frame."""

    name: str  # the raw record kind, used as ``Rejected.dataset``
    templates: tuple[str, ...]  # most specific first: "/api/darkpool/recent" before "/api/darkpool/{ticker}"
    fields: tuple[Field, ...]
    ignored: frozenset[str] = frozenset()  # vendor fields known and deliberately not kept (not drift)
    consumed: frozenset[str] = frozenset()  # vendor fields read only by the hook
    hook: Hook | None = None
    bare_object: bool = False

    @cached_property
    def known(self) -> frozenset[str]:
        names = {s for f in self.fields for s in f.sources}
        return frozenset(names | self.ignored | self.consumed)

    @cached_property
    def plan(self) -> tuple[tuple[str, tuple[str, ...], Callable[[object], Any]], ...]:
        """(column, vendor names, converter) per field, computed once: the per-row loop is the parser's hot path."""
        return tuple((f.name, f.sources, _CONVERT[f.kind]) for f in self.fields)

    @cached_property
    def identifying(self) -> frozenset[str]:
        """Vendor names of the required fields: a bare object holding none of them is not a row (a 422 body, an ack)."""
        return frozenset(s for f in self.fields if f.required for s in f.sources)

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)


# ---------------------------------------------------------------------------------------------------------- values


def _number_text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{type(value).__name__} {value!r} is not {what}")
    text = str(value).strip()
    if not _NUMBER.match(text):
        raise ValueError(f"{value!r} is not {what}")
    return text


def to_float(value: object) -> float:
    """A JSON number or numeric string as a finite float. Booleans, ``"nan"``, ``"1_000"`` and ``""`` are refused."""
    # Exact type checks: bool is an int subclass and must take the refusing path below.
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value
    if type(value) is int:
        return float(value)
    number = float(_number_text(value, "a number"))
    if not math.isfinite(number):  # "1e309" matches the number pattern and overflows to infinity
        raise ValueError(f"{value!r} is not a finite number")
    return number


def to_int(value: object) -> int:
    """A count or size: an integral JSON number or numeric string (``368``, ``"368"``, ``368.0``) within int64."""
    if type(value) is int:
        if abs(value) > _INT64_MAX:
            raise ValueError(f"{value!r} does not fit in int64")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    text = _number_text(value, "an integer")
    try:
        exact = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"{value!r} is not an integer") from exc
    if exact != exact.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    result = int(exact)
    if abs(result) > _INT64_MAX:
        raise ValueError(f"{value!r} does not fit in int64")
    return result


def to_amount(value: object) -> float:
    """A price, premium, strike, ratio or volume: :func:`to_float`, and never negative."""
    return _non_negative(to_float(value))


def to_count(value: object) -> int:
    """A size, volume or count: :func:`to_int`, and never negative."""
    return _non_negative(to_int(value))


def _non_negative(number: _N) -> _N:
    if number < 0:
        raise ValueError(f"{number!r} is negative")
    return number


def to_bool(value: object) -> bool:
    """A JSON boolean, or the strings ``"true"``/``"false"`` (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{value!r} is not a boolean")


def _to_str(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{type(value).__name__} {value!r} is not a string")
    return str(value)


def _to_symbol(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a ticker")
    return value.strip().upper()


_CONVERT: Final[dict[Kind, Callable[[object], Any]]] = {
    "str": _to_str,
    "symbol": _to_symbol,
    "float": to_float,
    "amount": to_amount,
    "int": to_int,
    "count": to_count,
    "bool": to_bool,
    "ts": to_utc,
    "date": to_date,
}


def _series(kind: Kind, values: list[Any], name: str) -> pd.Series:
    if kind == "ts":
        return utc_series(values, name)
    if kind == "date":
        return pd.Series(values, dtype=pd.ArrowDtype(pa.date32()), name=name)
    dtype = {
        "str": "string",
        "symbol": "string",
        "float": "float64",
        "amount": "float64",
        "int": "Int64",
        "count": "Int64",
        "bool": "boolean",
    }[kind]
    return pd.Series(values, dtype=dtype, name=name)


# -------------------------------------------------------------------------------------------------------- envelope


def _where(endpoint: str) -> str:
    # Only the path: a query string is no use in a quarantine record and a URL is where secrets leak.
    return urlsplit(endpoint).path or endpoint


def _schema_error(message: str, endpoint: str) -> SchemaError:
    return SchemaError(message, vendor=VENDOR, endpoint=_where(endpoint))


def _unwrap(body: Body, record: Record, endpoint: str) -> tuple[list[Any], dict[str, Any]]:
    """The rows of a response and the envelope's other keys."""
    payload: object = body
    if isinstance(body, bytes | bytearray | memoryview | str):
        try:
            # A number beyond float64 decodes as inf, so that its row is quarantined and the rest of the page kept.
            payload = json_overflow.loads(body)
        except json_overflow.JSONError as exc:
            raise _schema_error(f"response is not JSON ({exc})", endpoint) from None
    if isinstance(payload, list):
        return payload, {}
    if isinstance(payload, dict):
        if "data" in payload:
            data = payload["data"]
            extras = {k: v for k, v in payload.items() if k != "data"}
            if isinstance(data, list):
                return data, extras
            if isinstance(data, dict):
                return [data], extras
            raise _schema_error(f"'data' is {type(data).__name__}, expected a list or an object", endpoint)
        if record.bare_object and payload.keys() & record.identifying:
            return [payload], {}
        keys = ", ".join(sorted(map(str, payload))[:10])
        raise _schema_error(f"expected an object with 'data', got one with keys [{keys}]", endpoint)
    raise _schema_error(f"expected a JSON object or list, got {type(payload).__name__}", endpoint)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    # re.split alternates literal, name, literal, ...
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{pattern}/?$")


def _path_params(record: Record, endpoint: str) -> tuple[str, dict[str, str]]:
    """The template the endpoint matches (the first one when none does) and its path parameters."""
    path = _where(endpoint)
    for template in record.templates:
        m = _template_regex(template).match(path)
        if m:
            return template, m.groupdict()
    return record.templates[0], {}


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
# A vendor bug that puts values in keys would otherwise grow the set and the log without bound.
_MAX_WARNED: Final = 1000


def _log_drift(template: str, fields: set[str]) -> None:
    """One WARNING per endpoint template and unknown field for the life of the process (the first 1000 pairs)."""
    with _warned_lock:
        room = max(_MAX_WARNED - len(_warned), 0)
        new = sorted(f for f in fields if (template, f) not in _warned)[:room]
        _warned.update((template, f) for f in new)
    for f in new:
        log.warning("schema drift: %s %s sends unknown field %r (tolerated, not stored)", VENDOR, template, f)


# ------------------------------------------------------------------------------------------------------------ rows


def _convert(record: Record, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    errors: list[str] = []
    for name, sources, convert in record.plan:
        value = None
        source = name
        for s in sources:
            value = row.get(s)
            if value is not None:
                source = s
                break
        if value is None:
            out[name] = None
            continue
        try:
            out[name] = convert(value)
        except (ValueError, OverflowError) as exc:
            out[name] = None
            errors.append(f"field {source!r}: {exc}")
    return out, errors


def _parse(record: Record, body: Body, endpoint: str, ticker: str | None) -> ParseResult:
    rows, envelope = _unwrap(body, record, endpoint)
    template, params = _path_params(record, endpoint)
    default_symbol = (ticker or params.get("ticker") or "").strip().upper() or None
    source = f"{VENDOR} {_where(endpoint)}"
    good: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    drift = {f"envelope.{k}" for k in envelope if k != "date"}
    for raw in rows:
        if not isinstance(raw, dict):
            rejected.append(Rejected(record.name, source, f"row is a {type(raw).__name__}, not an object", raw))
            continue
        drift |= {str(k) for k in raw.keys() - record.known}
        row: Mapping[str, Any] = raw
        if envelope.get("date") is not None and raw.get("date") is None and record.has("date"):
            row = {**raw, "date": envelope["date"]}
        out, errors = _convert(record, row)
        if record.has("symbol") and out["symbol"] is None:
            out["symbol"] = default_symbol
        if record.hook is not None:
            errors += record.hook(out, row)
        missing = [f.label for f in record.fields if f.required and out[f.name] is None]
        if missing:
            errors.insert(0, f"missing required field(s): {', '.join(missing)}")
        if errors:
            rejected.append(Rejected(record.name, source, "; ".join(errors), raw))
        else:
            good.append(out)
    if drift:
        _log_drift(template, drift)
    frame = pd.DataFrame({f.name: _series(f.kind, [r[f.name] for r in good], f.name) for f in record.fields})
    return ParseResult(frame=frame, rejected=rejected, drift=drift)


# ------------------------------------------------------------------------------------------------------ flow alerts

# OCC option symbol: root, YYMMDD expiry, C/P, strike x 1000 in eight digits ("MSFT231222C00375000").
_OCC = re.compile(r"^(?P<root>[A-Z0-9.]{1,6}?)(?P<expiry>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")

_ID_PARTS: Final = ("option_chain", "alert_rule", "created_at", "start_time", "end_time", "total_size", "total_premium")


def _surrogate_id(out: Mapping[str, Any]) -> str:
    """A stable id for an alert the vendor sent without one (the spec's example has none): a hash of what defines it."""
    text = "|".join(str(out.get(k)) for k in _ID_PARTS)
    return "uw-sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]


def _flow_alert_hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if out["type"] is not None:
        out["type"] = str(out["type"]).strip().lower()
        if out["type"] not in ("call", "put"):
            errors.append(f"field 'type': {row.get('type')!r} is neither call nor put")
    chain = out["option_chain"]
    if chain is not None:
        m = _OCC.match(chain.strip().upper())
        if m is None:
            errors.append(f"field 'option_chain': {chain!r} is not an OCC option symbol")
        else:
            errors += _check_contract(out, m)
    # WebSocket alerts carry no created_at: they are pushed as the last trade executes, so executed_at (then end_time)
    # is when the alert became visible there.
    if out["created_at"] is None:
        out["created_at"] = out["executed_at"] if out["executed_at"] is not None else out["end_time"]
    if out["id"] is None and not errors:
        out["id"] = _surrogate_id(out)
    return errors


def _check_contract(out: dict[str, Any], m: re.Match[str]) -> list[str]:
    """Fill type, expiry and strike from the OCC symbol, and refuse a row whose own fields contradict it."""
    errors: list[str] = []
    kind = "call" if m["cp"] == "C" else "put"
    strike = int(m["strike"]) / 1000
    yymmdd = m["expiry"]
    try:
        expiry = dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return [f"field 'option_chain': {out['option_chain']!r} has no valid expiry date"]
    for name, implied in (("type", kind), ("expiry", expiry), ("strike", strike)):
        if out[name] is None:
            out[name] = implied
        elif out[name] != implied:
            errors.append(f"field {name!r}: {out[name]!r} contradicts option_chain {out['option_chain']!r}")
    return errors


def _floats(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, "float") for n in names)


def _ints(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, "int") for n in names)


def _amounts(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, "amount") for n in names)


def _counts(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, "count") for n in names)


def _bools(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, "bool") for n in names)


_SYMBOL = Field("symbol", "symbol", aliases=("ticker",))

FLOW_ALERT_RECORD: Final = Record(
    name="uw_flow_alerts",
    templates=(FLOW_ALERTS, TICKER_FLOW_ALERTS),
    fields=(
        Field("id", "str"),
        Field("symbol", "symbol", required=True, aliases=("ticker",)),
        Field("option_chain", "str", required=True),
        Field("type", "str", required=True),
        Field("strike", "amount"),
        Field("expiry", "date"),
        Field("alert_rule", "str", aliases=("rule_name",)),
        Field("rule_id", "str"),
        Field("created_at", "ts", required=True),
        Field("start_time", "ts"),
        Field("end_time", "ts"),
        Field("executed_at", "ts"),
        Field("total_premium", "amount", required=True),
        *_amounts("total_ask_side_prem", "total_bid_side_prem", "price", "underlying_price", "bid", "ask"),
        *_amounts("volume_oi_ratio", "iv_start", "iv_end", "marketcap"),
        *_counts("volume", "open_interest", "total_size", "trade_count", "expiry_count"),
        *_counts("ask_vol", "bid_vol", "mid_vol", "no_side_vol", "multi_vol", "stock_multi_vol"),
        *_bools("has_sweep", "has_floor", "has_multileg", "has_singleleg", "all_opening_trades"),
        Field("issue_type", "str"),
    ),
    # Lists of trade ids and exchanges do not fit a row of a daily feature; url is always "".
    ignored=frozenset(
        # Company context from the live feed (sector, earnings dates): known, not features of a flow alert.
        {"trade_ids", "exchanges", "upstream_condition_details", "url", "sector", "er_time", "next_earnings_date"}
    ),
    hook=_flow_alert_hook,
    bare_object=True,
)


def parse_flow_alerts(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Flow alerts from ``/api/option-trades/flow-alerts`` or ``/api/stock/{ticker}/flow-alerts`` (REST), or
    ``flow-alerts`` WebSocket payloads.

    ``id`` is the vendor's alert id, or a ``uw-sha1:`` surrogate when the vendor sent none. ``type``, ``expiry`` and
    ``strike`` come from the row or, when absent (WebSocket), from the OCC ``option_chain``; a contradiction rejects
    the row. ``created_at`` falls back to ``executed_at``/``end_time`` (epoch ms) on WebSocket payloads.
    """
    return _parse(FLOW_ALERT_RECORD, body, endpoint, ticker)


# ----------------------------------------------------------------------------------------- per-ticker options flow


def _any_known_hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
    if all(v is None for k, v in out.items() if k != "symbol"):
        return ["row has none of the known flow-recent fields"]
    return []


_SIDES: Final = ("call", "put")

FLOW_RECENT_RECORD: Final = Record(
    name="uw_flow_recent",
    templates=(FLOW_RECENT,),
    # The live shape of this endpoint is known to differ from its spec, so nothing is required: a row is kept when it
    # has any known field, and the rest of it is reported as drift rather than refused.
    fields=(
        _SYMBOL,
        Field("date", "date"),
        Field("expiry", "date"),
        *(
            f
            for side in _SIDES
            for f in (
                *_amounts(f"{side}_premium", f"{side}_premium_ask_side", f"{side}_premium_bid_side"),
                *_amounts(f"{side}_otm_premium"),
                *_counts(f"{side}_volume", f"{side}_volume_ask_side", f"{side}_volume_bid_side", f"{side}_trades"),
                *_counts(f"{side}_otm_volume", f"{side}_otm_trades"),
            )
        ),
    ),
    hook=_any_known_hook,
)


def parse_flow_recent(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Recent flow per expiry from ``/api/stock/{ticker}/flow-recent``, parsed defensively (no required field)."""
    return _parse(FLOW_RECENT_RECORD, body, endpoint, ticker)


OPTIONS_VOLUME_RECORD: Final = Record(
    name="uw_options_volume",
    templates=(OPTIONS_VOLUME,),
    fields=(
        _SYMBOL,
        Field("date", "date", required=True),
        *_amounts("bullish_premium", "bearish_premium", "call_premium", "put_premium"),
        *_floats("net_call_premium", "net_put_premium"),
        *_counts("call_volume", "put_volume", "call_volume_ask_side", "call_volume_bid_side"),
        *_counts("put_volume_ask_side", "put_volume_bid_side", "call_open_interest", "put_open_interest"),
        *_amounts("avg_3_day_call_volume", "avg_3_day_put_volume", "avg_7_day_call_volume", "avg_7_day_put_volume"),
        *_amounts("avg_30_day_call_volume", "avg_30_day_put_volume"),
    ),
)


def parse_options_volume(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Daily options volume and premium from ``/api/stock/{ticker}/options-volume`` (symbol from the path)."""
    return _parse(OPTIONS_VOLUME_RECORD, body, endpoint, ticker)


def _date_from(ts_field: str) -> Hook:
    """A hook that fills a missing ``date`` with the New York date of an instant field."""

    def hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
        if out["date"] is None and out[ts_field] is not None:
            out["date"] = new_york_date(out[ts_field])
        return []

    return hook


NET_PREM_TICKS_RECORD: Final = Record(
    name="uw_net_prem_ticks",
    templates=(NET_PREM_TICKS,),
    fields=(
        _SYMBOL,
        Field("tape_time", "ts", required=True),
        Field("date", "date"),
        *_floats("net_call_premium", "net_put_premium", "net_delta"),
        *_ints("net_call_volume", "net_put_volume"),
        *_counts("call_volume", "put_volume"),
        *_counts("call_volume_ask_side", "call_volume_bid_side", "put_volume_ask_side", "put_volume_bid_side"),
    ),
    hook=_date_from("tape_time"),
)


def parse_net_prem_ticks(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Per-minute net premium ticks from ``/api/stock/{ticker}/net-prem-ticks`` (``tape_time`` = the tick's minute)."""
    return _parse(NET_PREM_TICKS_RECORD, body, endpoint, ticker)


# ------------------------------------------------------------------------------------------------------------ OHLC


def _ohlc_hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if out["start_time"] is None and out["date"] is None:
        errors.append("candle has neither start_time nor date")
    if out["date"] is None and out["start_time"] is not None:
        out["date"] = new_york_date(out["start_time"])
    prices = [out[k] for k in ("open", "high", "low", "close")]
    if None not in prices and not (out["low"] <= min(out["open"], out["close"]) <= max(prices) <= out["high"]):
        errors.append(f"inconsistent candle: open/high/low/close = {prices}")
    return errors


OHLC_RECORD: Final = Record(
    name="uw_ohlc",
    templates=(OHLC,),
    fields=(
        _SYMBOL,
        # 1d and 1w candles have no start/end time, only a date (Monday of the ISO week for 1w).
        Field("start_time", "ts"),
        Field("end_time", "ts"),
        Field("date", "date"),
        Field("open", "amount", required=True),
        Field("high", "amount", required=True),
        Field("low", "amount", required=True),
        Field("close", "amount", required=True),
        Field("volume", "count"),
        Field("total_volume", "count"),
        Field("market_time", "str"),
    ),
    hook=_ohlc_hook,
)


def parse_ohlc(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Candles from ``/api/stock/{ticker}/ohlc/{candle_size}``; ``market_time`` is r/pr/po (regular/pre/post)."""
    return _parse(OHLC_RECORD, body, endpoint, ticker)


# ------------------------------------------------------------------------------------------------------- dark pool


def _dark_pool_hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if out["size"] is not None and out["size"] <= 0:
        errors.append(f"field 'size': {out['size']} is not positive")
    if out["price"] is not None and out["price"] <= 0:
        errors.append(f"field 'price': {out['price']} is not positive")
    # The off_lit_trades WebSocket channel sends no premium; a print's notional is its price times its size.
    if out["premium"] is None and not errors and out["price"] is not None and out["size"] is not None:
        out["premium"] = out["price"] * out["size"]
    return errors


DARK_POOL_RECORD: Final = Record(
    name="uw_dark_pool",
    templates=(DARK_POOL_RECENT, DARK_POOL_TICKER),
    fields=(
        Field("symbol", "symbol", required=True, aliases=("ticker",)),
        Field("executed_at", "ts", required=True),
        Field("price", "float", required=True),
        Field("size", "int", required=True),
        Field("premium", "amount"),
        Field("canceled", "bool"),
        Field("volume", "count"),
        *_amounts("nbbo_bid", "nbbo_ask"),
        *_counts("nbbo_bid_quantity", "nbbo_ask_quantity"),
        Field("trf_executed_at", "ts"),
        # Not a reliable key (captures show 0 for every print), kept for tracing only.
        Field("tracking_id", "int"),
        *(Field(n, "str") for n in ("market_center", "trade_settlement", "trade_code", "sale_cond_codes")),
        Field("ext_hour_sold_codes", "str"),
    ),
    hook=_dark_pool_hook,
)


def parse_dark_pool(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Dark-pool prints from ``/api/darkpool/recent`` or ``/api/darkpool/{ticker}``.

    ``canceled`` marks a print later corrected; it is kept here (aggregates drop it). ``premium`` (USD) is
    ``price * size`` when the vendor omits it.
    """
    return _parse(DARK_POOL_RECORD, body, endpoint, ticker)


# -------------------------------------------------------------------------------------------------------- insiders


def _insider_hook(out: dict[str, Any], row: Mapping[str, Any]) -> list[str]:
    raw = row.get("filing_date")
    if raw is not None:
        try:
            out["filing_date"] = to_date(raw)
        except ValueError:
            try:
                out["filed_at"] = to_utc(raw)
            except ValueError as exc:
                return [f"field 'filing_date': {exc}"]
            out["filing_date"] = new_york_date(out["filed_at"])
        else:
            # Only the day is given, and EDGAR publishes Section 16 filings dated that day until 22:00 New York, so
            # the filing is surely public at the end of its New York day and perhaps not a minute earlier.
            out["filed_at"] = new_york_day_start(out["filing_date"] + dt.timedelta(days=1))
    amount = out["amount"]
    if amount is not None:
        out["is_disposal"] = amount < 0
        out["value"] = amount * out["price"] if out["price"] is not None else None
    return []


INSIDER_RECORD: Final = Record(
    name="uw_insider_transactions",
    templates=(INSIDER_TRANSACTIONS,),
    fields=(
        Field("id", "str"),
        Field("symbol", "symbol", required=True, aliases=("ticker",)),
        Field("filing_date", "date", required=True, derived=True),
        Field("filed_at", "ts", required=True, derived=True),
        Field("transaction_date", "date"),
        Field("amount", "int", required=True),
        Field("price", "amount"),
        Field("value", "float", derived=True),
        Field("is_disposal", "bool", derived=True),
        Field("transactions", "count"),
        *(Field(n, "str") for n in ("transaction_code", "formtype", "owner_name", "officer_title")),
        *_bools("is_director", "is_officer", "is_ten_percent_owner", "is_10b5_1", "is_s_p_500"),
        Field("reporter_is_public_company", "bool"),
        *_counts("shares_owned_before", "shares_owned_after"),
        *_amounts("stock_price", "marketcap", "price_excercisable"),
        Field("next_earnings_date", "date"),
        # Free-form or rarely filled on Form 4; kept as text so an odd value never costs the row.
        *(Field(n, "str") for n in ("sector", "security_title", "natureofownership", "director_indirect")),
        *(Field(n, "str") for n in ("security_ad_code", "date_excercisable", "expiration_date")),
    ),
    ignored=frozenset({"ids"}),
    consumed=frozenset({"filing_date"}),
    hook=_insider_hook,
)


def parse_insider_transactions(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Insider transactions from ``/api/insider/transactions``.

    ``amount`` is shares, negative for a disposal; ``value`` = ``amount * price`` (signed USD, null without a price).
    ``filed_at`` is when the filing became public (UTC): the vendor's filing instant when it sends one, else the end
    of the New York ``filing_date``. ``transaction_date`` (when the insider traded) is earlier and never public then.
    """
    return _parse(INSIDER_RECORD, body, endpoint, ticker)


# ----------------------------------------------------------------------------------------------------- ETF flows


ETF_IN_OUTFLOW_RECORD: Final = Record(
    name="uw_etf_in_outflow",
    templates=(ETF_IN_OUTFLOW,),
    fields=(
        _SYMBOL,
        Field("date", "date", required=True),
        Field("change", "int", required=True),
        Field("change_prem", "float", required=True),
        Field("close", "amount", required=True),
        Field("volume", "count", required=True),
        Field("is_fomc", "bool"),
    ),
)


def parse_etf_in_outflow(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Daily ETF creations/redemptions from ``/api/etfs/{ticker}/in-outflow``: ``change`` in shares, ``change_prem``
    in USD. Rows without the spec's fields (e.g. ``inflow``/``outflow``/``net_flow``) are rejected, not guessed at."""
    return _parse(ETF_IN_OUTFLOW_RECORD, body, endpoint, ticker)


# ---------------------------------------------------------------------------------------------------- market tide


MARKET_TIDE_RECORD: Final = Record(
    name="uw_market_tide",
    templates=(MARKET_TIDE,),
    fields=(
        Field("timestamp", "ts", required=True),
        Field("date", "date"),
        Field("net_call_premium", "float", required=True),
        Field("net_put_premium", "float", required=True),
        Field("net_volume", "int", required=True),
        *_floats("otm_net_call_premium", "otm_net_put_premium"),
        Field("otm_net_volume", "int"),
    ),
    hook=_date_from("timestamp"),
    bare_object=True,
)


def parse_market_tide(body: Body, *, endpoint: str, ticker: str | None = None) -> ParseResult:
    """Market-wide net premium ticks from ``/api/market/market-tide`` (or a ``market_tide`` WebSocket payload).

    ``timestamp`` is the tick's minute (REST sends New York wall time with its offset), converted to UTC.
    """
    return _parse(MARKET_TIDE_RECORD, body, endpoint, ticker)


def columns(record: Record) -> Sequence[str]:
    """The frame columns a record's parser produces, in order."""
    return [f.name for f in record.fields]
