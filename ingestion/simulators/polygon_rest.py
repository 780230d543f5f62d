"""The Polygon.io (Massive) REST simulator: the routes the project uses, served from the ground truth.

Routes (names in brackets are the route names :class:`~ingestion.simulators.faults.FaultPlan` rules select on):

* ``[aggs]`` ``/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}``: every timespan. ``second``,
  ``minute`` and ``hour`` bars are built from the minute bars (second bars from the minute's trades, see
  :mod:`ingestion.simulators.polygon_ticks`); ``day`` .. ``year`` from the daily bars. ``t`` is the window start in
  epoch ms UTC; buckets of minute-based timespans are aligned on the epoch, day-based ones on New York calendar
  dates (weeks start on Sunday) and stamped at New York midnight. ``limit`` (default 5000, max 50000) caps the
  **base** aggregates read (minute bars, or daily bars); a page never splits a bucket, and ``next_url`` carries an
  opaque base64 ``cursor`` (the query, never the key) with ``from`` rewritten to epoch ms (``to`` when ``sort=desc``).
* ``[grouped]`` ``/v2/aggs/grouped/locale/us/market/stocks/{date}``: one daily bar per symbol, ``T`` = ticker,
  ``t`` = the **end** of the session (16:00 New York, or the early close) in epoch ms.
* ``[ticker]`` ``/v3/reference/tickers/{ticker}`` (``date=`` point in time): listing facts and market cap; the
  ticker valid that day (FB before 2022-06-09, META after), ``active: false`` and ``delisted_utc`` after a delisting.
* ``[tickers]`` ``/v3/reference/tickers`` and ``[ticker_events]`` ``/vX/reference/tickers/{id}/events``: every ticker
  as of a date (``active``, filters, cursor paging) and a security's ticker changes (see
  :mod:`ingestion.simulators.polygon_tickers`). Aggregates, trades and quotes of a ticker cover only the dates it
  traded under it.
* ``[splits]`` ``/v3/reference/splits`` and ``[dividends]`` ``/v3/reference/dividends``: the market's corporate
  actions known by its clock, filters, sort, order and cursor paging (see
  :mod:`ingestion.simulators.polygon_corporate_actions`).
* ``[news]`` ``/v2/reference/news``: deterministic articles, ``ticker`` / ``published_utc[.gte|.gt|.lte|.lt]`` filters,
  ``order``, ``limit`` (max 1000), cursor paging.
* ``[trades]`` ``/v3/trades/{ticker}`` and ``[quotes]`` ``/v3/quotes/{ticker}``: nanosecond timestamps,
  ``timestamp[.gte|.gt|.lte|.lt]`` (a date or epoch ns), ``order`` (default desc), ``limit`` (default 1000, max 50000),
  cursor paging. Trades are exactly those the WebSocket replays, so both agree with the bars.

Auth is ``Authorization: Bearer <key>`` or ``?apiKey=``; each accepted key has a :class:`Plan` (request rate and
entitlements; a plan's years of history count back from the market's clock, else the server's date). Errors use the
bodies Polygon sends (401 ``API Key was not provided``, 403 ``NOT_AUTHORIZED``, 429).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd

from ingestion import calendar
from ingestion.simulators import polygon_corporate_actions as actions
from ingestion.simulators import polygon_tickers
from ingestion.simulators import polygon_ticks as ticks
from ingestion.simulators.http import Handler, Request, Response, Route, SimClock, SimServer, bearer_or_query_key
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import ETFS, MINUTE_COLUMNS, Market, _seed
from ingestion.simulators.rollup import roll_up, trades_as_bars

NY = calendar.NEW_YORK
MAX_LIMIT = 50_000
DEFAULT_AGG_LIMIT = 5_000
MINUTE_MS = 60_000
TIMESPANS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
_UNIT_MS = {"second": 1_000, "minute": MINUTE_MS, "hour": 60 * MINUTE_MS}

UPGRADE = "Please upgrade your plan at https://polygon.io/pricing"
MSG_NO_KEY = "API Key was not provided"
MSG_BAD_KEY = "Unknown API Key"
MSG_NOT_ENTITLED = f"You are not entitled to this data. {UPGRADE}"
MSG_TIMEFRAME = f"Your plan doesn't include this data timeframe. {UPGRADE}"
MSG_RATE = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. "
    "https://polygon.io/pricing"
)


@dataclass(frozen=True)
class Plan:
    """What a key may do: requests per (simulated) minute, years of history, and tick-level entitlements."""

    name: str
    requests_per_minute: int | None = None
    history_years: int | None = None
    trades_and_quotes: bool = True


FREE = Plan("free", requests_per_minute=5, history_years=2, trades_and_quotes=False)
UNLIMITED = Plan("unlimited")
PLANS: dict[str, Plan] = {p.name: p for p in (FREE, UNLIMITED)}


def request_id() -> str:
    """A fresh 32-hex-digit request id, like Polygon's."""
    return secrets.token_hex(16)


def error_body(status: int, request: Request | None = None, message: str | None = None) -> Response:
    """Polygon's error body for ``status`` (also the :class:`FaultPlan` responder for injected statuses)."""
    rid = request_id()
    if status == 403:
        body = {"status": "NOT_AUTHORIZED", "request_id": rid, "message": message or MSG_NOT_ENTITLED}
        return Response.json(body, 403)
    if status == 404:
        return Response.json({"status": "NOT_FOUND", "request_id": rid, "message": message or "Not found."}, 404)
    default = {401: MSG_NO_KEY, 429: MSG_RATE}.get(status, "Internal server error" if status >= 500 else "Bad request")
    return Response.json({"status": "ERROR", "request_id": rid, "error": message or default}, status)


class PolygonRestServer(SimServer):
    """A :class:`SimServer` with Polygon's routes, keys and plans. ``rate_limited`` counts 429s per key."""

    def __init__(
        self,
        market: Market,
        keys: Mapping[str, Plan | str] | None = None,
        *,
        clock: SimClock | None = None,
        port: int = 0,
    ) -> None:
        self.market = market
        self.keys: dict[str, Plan] = {
            k: (PLANS[p] if isinstance(p, str) else p) for k, p in (keys or {POLYGON_SIM_KEY: UNLIMITED}).items()
        }
        self.rate_limited: Counter[str] = Counter()
        self._accepted: dict[str, deque[float]] = {}
        self._limit_lock = threading.Lock()
        super().__init__(_routes(self), self._authenticate, name="polygon-rest", clock=clock, port=port)

    def plan_of(self, request: Request) -> Plan:
        return self.keys.get(request.api_key or "", UNLIMITED)

    def _authenticate(self, request: Request) -> str | Response:
        key = bearer_or_query_key(request)
        if not key:
            return error_body(401, request, MSG_NO_KEY)
        plan = self.keys.get(key)
        if plan is None:
            return error_body(401, request, MSG_BAD_KEY)
        if plan.requests_per_minute is not None:
            now = request.received_at
            with self._limit_lock:
                window = self._accepted.setdefault(key, deque())
                while window and now - window[0] >= 60.0:
                    window.popleft()
                if len(window) >= plan.requests_per_minute:
                    self.rate_limited[key] += 1
                    return error_body(429, request)
                window.append(now)
        return key

    def today(self) -> dt.date:
        """The simulated date in New York (from the server's clock)."""
        return pd.Timestamp(self.clock.now(), unit="s", tz="UTC").tz_convert(NY).date()  # type: ignore[no-any-return]

    def too_old(self, request: Request, first: dt.date) -> bool:
        """Whether ``first`` lies beyond the plan's history, counted back from the market's clock (else today)."""
        plan = self.plan_of(request)
        if plan.history_years is None:
            return False
        today = self.market.as_of or self.today()
        return first < today.replace(year=today.year - plan.history_years)


def polygon_rest_server(
    market: Market, *, keys: Mapping[str, Plan | str] | None = None, clock: SimClock | None = None, port: int = 0
) -> PolygonRestServer:
    """A Polygon REST simulator over ``market`` (not started: use it as a context manager or call ``start()``).

    ``keys`` maps accepted keys to a :class:`Plan` or a plan name (``"free"``: 5 requests per simulated minute,
    2 years of history, no trades/quotes; ``"unlimited"``); default ``{POLYGON_SIM_KEY: "unlimited"}``.
    """
    return PolygonRestServer(market, keys, clock=clock, port=port)


# -- shared helpers --------------------------------------------------------------------------------------------------


def _base_url(request: Request) -> str:
    # next_url points back at whichever address the client used, as the real API points at its own host.
    return f"http://{request.headers.get('host', '127.0.0.1')}"


def encode_cursor(params: Mapping[str, Any]) -> str:
    """An opaque cursor: the query (never the key), URL-safe base64 without padding, as Polygon's look."""
    clean = {k: str(v) for k, v in params.items() if k.lower() not in ("apikey", "cursor")}
    return base64.urlsafe_b64encode(urlencode(clean).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    return dict(parse_qsl(base64.urlsafe_b64decode(padded.encode()).decode(), keep_blank_values=True))


def _query(request: Request) -> dict[str, str]:
    """The effective query: the cursor's parameters when one is given, else the request's own (last values)."""
    cursor = request.arg("cursor")
    if cursor:
        return decode_cursor(cursor)
    return {k: v[-1] for k, v in request.query.items() if k.lower() != "apikey"}


class BadRequest(Exception):
    """A request parameter Polygon would reject with 400."""


def _int_arg(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"Invalid value for '{name}': {raw!r} is not an integer") from exc
    return max(lo, min(hi, value))


def _bool_arg(q: Mapping[str, str], name: str, default: bool) -> bool:
    raw = q.get(name)
    return default if raw is None else raw.lower() not in ("false", "0", "no")


RouteFn = Callable[["PolygonRestServer", Request, dict[str, str]], Response]


def _handler(fn: RouteFn, server: PolygonRestServer) -> Handler:
    """Bind a route function to its server and turn :class:`BadRequest` into Polygon's 400 body."""

    def handle(request: Request, params: dict[str, str]) -> Response:
        try:
            return fn(server, request, params)
        except BadRequest as exc:
            return error_body(400, request, str(exc))

    return handle


def _routes(server: PolygonRestServer) -> list[Route]:
    return [
        Route(
            "aggs",
            r"/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<multiplier>[^/]+)/(?P<timespan>[^/]+)/(?P<start>[^/]+)/(?P<end>[^/]+)",
            _handler(_aggs, server),
        ),
        Route("grouped", r"/v2/aggs/grouped/locale/us/market/stocks/(?P<date>[^/]+)", _handler(_grouped, server)),
        Route("ticker", r"/v3/reference/tickers/(?P<ticker>[^/]+)", _handler(_ticker_details, server)),
        Route("tickers", r"/v3/reference/tickers", _handler(_tickers, server)),
        Route("ticker_events", r"/vX/reference/tickers/(?P<id>[^/]+)/events", _handler(_ticker_events, server)),
        Route("splits", r"/v3/reference/splits", _handler(_splits, server)),
        Route("dividends", r"/v3/reference/dividends", _handler(_dividends, server)),
        Route("news", r"/v2/reference/news", _handler(_news, server)),
        Route("trades", r"/v3/trades/(?P<ticker>[^/]+)", _handler(_trades, server)),
        Route("quotes", r"/v3/quotes/(?P<ticker>[^/]+)", _handler(_quotes, server)),
    ]


def _ny_midnight_ms(day: dt.date) -> int:
    return int(pd.Timestamp(day).tz_localize(NY).value // 1_000_000)


def _ms_to_ny_date(ms: int) -> dt.date:
    return pd.Timestamp(ms, unit="ms", tz="UTC").tz_convert(NY).date()  # type: ignore[no-any-return]


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bound_ms(raw: str, name: str, end: bool) -> int:
    """``from``/``to`` as epoch ms: a date means New York midnight (``to``: the last ms of that day)."""
    if _DATE.fullmatch(raw):
        day = dt.date.fromisoformat(raw)
        return _ny_midnight_ms(day + dt.timedelta(days=1)) - 1 if end else _ny_midnight_ms(day)
    if raw.isdigit():
        return int(raw)
    raise BadRequest(f"Could not parse the time parameter: '{name}'. Use YYYY-MM-DD or Unix MS Timestamps")


# -- aggregates ------------------------------------------------------------------------------------------------------

_BAR_COLUMNS = ("v", "vw", "o", "c", "h", "l", "t", "n")


def _aggs(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    q = _query(request)
    ticker, timespan = p["ticker"], p["timespan"]
    if timespan not in TIMESPANS:
        raise BadRequest(f"Invalid timespan '{timespan}'. Must be one of {', '.join(TIMESPANS)}")
    if not p["multiplier"].isdigit() or int(p["multiplier"]) < 1:
        raise BadRequest("multiplier must be a positive integer")
    multiplier = int(p["multiplier"])
    lo, hi = _bound_ms(p["start"], "from", end=False), _bound_ms(p["end"], "to", end=True)
    adjusted = _bool_arg(q, "adjusted", True)
    desc = q.get("sort", "asc").lower() == "desc"
    limit = _int_arg(q, "limit", DEFAULT_AGG_LIMIT, 1, MAX_LIMIT)
    if server.too_old(request, _ms_to_ny_date(lo)):
        return error_body(403, request, MSG_TIMEFRAME)

    security, lo, hi = _as_traded(server.market, ticker, lo, hi)
    base = _base_aggregates(server.market, security, timespan, lo, hi, adjusted, desc, limit + multiplier + 1)
    if desc:
        base = base.iloc[::-1].reset_index(drop=True)
    buckets = bucket_starts(base, timespan, multiplier)
    take = min(limit, len(base))
    more = len(base) > take
    if more and buckets[take] == buckets[take - 1]:
        # Never split a bucket across pages: end this page before the unfinished bucket, unless it is the only one.
        cut = int(np.argmax(buckets == buckets[take - 1]))
        take = cut if cut > 0 else int(np.flatnonzero(buckets == buckets[take - 1])[-1]) + 1
        more = len(base) > take
    page = base.iloc[:take]
    bars = aggregate(page, buckets[:take])
    if desc:
        bars = bars.iloc[::-1]
    body: dict[str, Any] = {
        "ticker": ticker,
        "queryCount": int(take),
        "resultsCount": len(bars),
        "adjusted": adjusted,
    }
    if len(bars):
        body["results"] = bar_records(bars)
    body["status"] = "OK"
    body["request_id"] = request_id()
    if len(bars):
        body["count"] = len(bars)
    if more:
        cursor = encode_cursor({"adjusted": str(adjusted).lower(), "limit": limit, "sort": "desc" if desc else "asc"})
        if desc:
            start, end = p["start"], str(int(buckets[take - 1]) - 1)
        else:
            start, end = str(int(buckets[take])), p["end"]
        path = f"/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}"
        body["next_url"] = f"{_base_url(request)}{path}?cursor={cursor}"
    return Response.json(body)


def _as_traded(market: Market, ticker: str, lo: int, hi: int, per_ms: int = 1) -> tuple[str, int, int]:
    """The security behind ``ticker`` and ``[lo, hi]`` (epoch ms, or ns with ``per_ms=1_000_000``) cut to the dates
    it traded under that ticker: FB's bars and trades end the day before META's begin (see
    :mod:`ingestion.simulators.reference_truth`)."""
    security, first, last = market.reference.traded_window(ticker)
    if first is not None:
        lo = max(lo, _ny_midnight_ms(first) * per_ms)
    if last is not None:
        hi = min(hi, _ny_midnight_ms(last + dt.timedelta(days=1)) * per_ms - 1)
    return security, lo, hi


def _base_aggregates(
    market: Market, ticker: str, timespan: str, lo: int, hi: int, adjusted: bool, desc: bool, need: int
) -> pd.DataFrame:
    """The base aggregates of a range in ascending time: second bars, minute bars or daily bars.

    ``need`` bounds the (costly) second bars built from trades: enough to fill a page and finish its last bucket.
    """
    if timespan in ("minute", "hour"):
        return market.minute_bars_range(ticker, lo, hi, adjusted)
    if timespan == "second":
        return _second_bars(market, ticker, lo, hi, adjusted, desc, need)
    daily = market.daily_bars(ticker, _ms_to_ny_date(lo), _ms_to_ny_date(hi), adjusted)
    keep = (daily["window_start_ms"] >= lo) & (daily["window_start_ms"] <= hi)
    return daily[keep].reset_index(drop=True)


def _second_bars(market: Market, ticker: str, lo: int, hi: int, adjusted: bool, desc: bool, need: int) -> pd.DataFrame:
    """Second bars from the trades of each minute (raw trades, split-adjusted when asked), ascending."""
    frames: list[pd.DataFrame] = []
    count = 0
    for bar in ticks.iter_minutes(market, ticker, lo * 1_000_000, hi * 1_000_000 + 999_999, desc):
        minute = ticks.minute_ticks(market, ticker, bar)
        t_ms = minute.trade_sip_ns // 1_000_000
        keep = (t_ms >= lo) & (t_ms <= hi)
        if not keep.any():
            continue
        price, size = minute.price[keep].astype(float), minute.size[keep].astype(float)
        if adjusted:
            factor = float(market.split_factor(ticker, pd.Series([bar["day"]]))[0])
            price, size = np.round(price / factor, 4), size * factor
        frame = roll_up(trades_as_bars(price, size), t_ms[keep] // 1000 * 1000)
        frame = frame.rename_axis("window_start_ms").reset_index()
        frames.append(frame)
        count += len(frame)
        if count >= need:
            break
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in MINUTE_COLUMNS})
    if desc:
        frames.reverse()
    return pd.concat(frames, ignore_index=True)


def bucket_starts(base: pd.DataFrame, timespan: str, multiplier: int) -> np.ndarray:
    """Window start (epoch ms UTC) of the bucket each base aggregate falls in.

    Minute-based timespans are aligned on the epoch; day-based ones on New York dates (week = Sunday start, month,
    quarter and year = first day) and stamped at New York midnight.
    """
    t = base["window_start_ms"].to_numpy(dtype=np.int64)
    if timespan in _UNIT_MS:
        width = _UNIT_MS[timespan] * multiplier
        return np.asarray((t // width) * width, dtype=np.int64)
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64)
    days = pd.to_datetime(t, unit="ms", utc=True).tz_convert(NY).tz_localize(None).normalize()
    ordinal = (days - pd.Timestamp("1970-01-04")).days.to_numpy()  # 1970-01-04 is a Sunday
    if timespan == "day":
        start = pd.Timestamp("1970-01-04") + pd.to_timedelta(ordinal // multiplier * multiplier, unit="D")
    elif timespan == "week":
        start = pd.Timestamp("1970-01-04") + pd.to_timedelta(ordinal // (7 * multiplier) * 7 * multiplier, unit="D")
    else:
        months = {"month": 1, "quarter": 3, "year": 12}[timespan] * multiplier
        index = (days.year.to_numpy() - 1970) * 12 + days.month.to_numpy() - 1
        first = index // months * months
        start = pd.to_datetime({"year": 1970 + first // 12, "month": first % 12 + 1, "day": 1})
    stamps = pd.DatetimeIndex(start).tz_localize(NY).tz_convert("UTC")
    return np.asarray(stamps.asi8 // 1_000_000, dtype=np.int64)


def aggregate(base: pd.DataFrame, buckets: np.ndarray) -> pd.DataFrame:
    """Roll base aggregates (ascending) into one bar per bucket: OHLC, summed volume and count, volume-weighted vw."""
    if len(base) == 0:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in _BAR_COLUMNS})
    bars = roll_up(base, buckets)
    out = pd.DataFrame(
        {
            "v": bars["volume"].to_numpy(dtype=float),
            "vw": bars["vwap"].to_numpy(),
            "o": bars["open"].to_numpy(),
            "c": bars["close"].to_numpy(),
            "h": bars["high"].to_numpy(),
            "l": bars["low"].to_numpy(),
            "n": bars["transactions"].to_numpy(dtype=np.int64),
            "t": bars.index.to_numpy(dtype=np.int64),
        }
    )
    return out


def bar_records(bars: pd.DataFrame) -> list[dict[str, Any]]:
    """Bars as Polygon's JSON objects: ``v`` a double, ``t`` and ``n`` integers, prices doubles."""
    columns = {
        "v": bars["v"].astype(float).tolist(),
        "vw": bars["vw"].astype(float).tolist(),
        "o": bars["o"].astype(float).tolist(),
        "c": bars["c"].astype(float).tolist(),
        "h": bars["h"].astype(float).tolist(),
        "l": bars["l"].astype(float).tolist(),
        "t": bars["t"].astype(np.int64).tolist(),
        "n": bars["n"].astype(np.int64).tolist(),
    }
    return [dict(zip(_BAR_COLUMNS, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _grouped(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    q = _query(request)
    if not _DATE.fullmatch(p["date"]):
        raise BadRequest("Could not parse the date parameter. Use YYYY-MM-DD")
    day = dt.date.fromisoformat(p["date"])
    adjusted = _bool_arg(q, "adjusted", True)
    if server.too_old(request, day):
        return error_body(403, request, MSG_TIMEFRAME)
    rows: list[dict[str, Any]] = []
    if day in server.market.sessions(day, day):
        close_ms = int(calendar.session_close(day).value // 1_000_000)
        reference = server.market.reference
        for symbol in (*server.market.symbols, *reference.delisted_securities):
            if server.market.is_synthetic(symbol):
                continue  # all synthetic tickers at once below, from the universe's arrays
            daily = server.market.daily_bars(symbol, day, day, adjusted)
            if daily.empty:
                continue
            bar = bar_records(aggregate(daily, np.array([close_ms])))[0]
            rows.append({"T": reference.ticker_on(symbol, day), **bar})  # as traded that day: FB before META
        universe = server.market.universe
        if universe is not None:
            rows.extend(universe.grouped_rows(day, close_ms))  # no splits: adjusted or not, the same bars
    body: dict[str, Any] = {"queryCount": len(rows), "resultsCount": len(rows), "adjusted": adjusted}
    if rows:
        body["results"] = rows
    body.update({"status": "OK", "request_id": request_id()})
    if rows:
        body["count"] = len(rows)
    return Response.json(body)


# -- reference -------------------------------------------------------------------------------------------------------

_NAMES = {
    "AAPL": ("Apple Inc.", "3571", "ELECTRONIC COMPUTERS", "1980-12-12", "CUPERTINO", "CA"),
    "MSFT": ("Microsoft Corp", "7372", "SERVICES-PREPACKAGED SOFTWARE", "1986-03-13", "REDMOND", "WA"),
    "NVDA": ("Nvidia Corp", "3674", "SEMICONDUCTORS & RELATED DEVICES", "1999-01-22", "SANTA CLARA", "CA"),
    "AMZN": ("Amazon.Com Inc", "5961", "RETAIL-CATALOG & MAIL-ORDER HOUSES", "1997-05-15", "SEATTLE", "WA"),
    "META": ("Meta Platforms, Inc. Class A Common Stock", "7370", "SERVICES-COMPUTER PROGRAMMING", "2012-05-18",
             "MENLO PARK", "CA"),
    "GOOGL": ("Alphabet Inc. Class A Common Stock", "7370", "SERVICES-COMPUTER PROGRAMMING", "2004-08-19",
              "MOUNTAIN VIEW", "CA"),
    "TSLA": ("Tesla, Inc. Common Stock", "3711", "MOTOR VEHICLES & PASSENGER CAR BODIES", "2010-06-29", "AUSTIN", "TX"),
    "AMD": ("Advanced Micro Devices", "3674", "SEMICONDUCTORS & RELATED DEVICES", "1972-09-27", "SANTA CLARA", "CA"),
    "JPM": ("JPMorgan Chase & Co.", "6021", "NATIONAL COMMERCIAL BANKS", "1969-03-05", "NEW YORK", "NY"),
    "NFLX": ("Netflix, Inc.", "7841", "SERVICES-VIDEO TAPE RENTAL", "2002-05-23", "LOS GATOS", "CA"),
    "SPY": ("SPDR S&P 500 ETF Trust", "", "", "1993-01-29", "", ""),
    "QQQ": ("Invesco QQQ Trust, Series 1", "", "", "1999-03-10", "", ""),
    "IWM": ("iShares Russell 2000 ETF", "", "", "2000-05-26", "", ""),
    "XLF": ("Financial Select Sector SPDR Fund", "", "", "1998-12-22", "", ""),
}  # fmt: skip


def _digits(seed: int, *parts: object, n: int) -> str:
    return hashlib.blake2b(f"{seed}:{':'.join(map(str, parts))}".encode(), digest_size=16).hexdigest().upper()[:n]


def _last_close(market: Market, symbol: str, day: dt.date) -> float | None:
    daily = market.daily_bars(symbol, day - dt.timedelta(days=10), day, adjusted=False)
    return None if daily.empty else float(daily["close"].iloc[-1])


def _security_names(market: Market, security: str) -> tuple[str, str, str, str, str, str]:
    """``(name, sic_code, sic_description, list_date, city, state)`` of a security (a delisted one's from the
    market's reference data)."""
    gone = market.reference.delisting_of(security)
    if gone is not None:
        return gone.name, gone.sic_code, gone.sic_description, gone.listed.isoformat(), gone.city, gone.state
    return _NAMES.get(security, (f"{security} Inc.", "", "", "2000-01-03", "", ""))


def security_fields(market: Market, security: str) -> dict[str, Any]:
    """The identity fields of a security, the same under each of its tickers (a renamed one keeps its FIGIs)."""
    name, _, _, listed, _, _ = _security_names(market, security)
    return {
        "name": name,
        "type": "ETF" if security in ETFS else "CS",
        "primary_exchange": ticks.primary_exchange(security),
        "cik": f"{int(_digits(market.seed, security, 'cik', n=6), 16) % 10**10:010d}",
        "composite_figi": f"BBG{_digits(market.seed, security, 'figi', n=9)}",
        "share_class_figi": f"BBG{_digits(market.seed, security, 'class', n=9)}",
        "list_date": listed,
    }


def _ticker_details(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    market, ticker = server.market, p["ticker"]
    as_of = request.arg("date")
    day = dt.date.fromisoformat(as_of) if as_of and _DATE.fullmatch(as_of) else market.last_day
    # The ticker as of `day`: a renamed security answers under its old name before the change and not under its new
    # one; an old or delisted ticker after its last day is inactive (see reference_truth).
    view = polygon_tickers.ticker_view(market, ticker, day)
    if view is None:
        return error_body(404, request, "Ticker not found.")
    symbol = view.security  # generated values (shares, close, figi) belong to the security, not to the ticker
    name, sic, sic_desc, listed, city, state = _security_names(market, symbol)
    name, listed = view.name or name, view.listed.isoformat() if view.listed is not None else listed
    rng = np.random.default_rng(_seed(market.seed, symbol, "reference"))
    # Shares outstanding as of `day`: today's count divided by the ratios of later splits, so that market cap
    # (raw close x shares) does not jump on a split.
    today_shares = int(rng.integers(300_000_000, 6_000_000_000))
    shares = today_shares // int(market.split_factor(symbol, pd.Series([day]), known=False)[0])
    close = _last_close(market, symbol, day)
    etf = symbol in ETFS
    results = polygon_tickers.head_fields(view, name, security_fields(market, symbol))
    if close is not None:
        results["market_cap"] = round(close * shares, 2)
    if not etf:
        results.update(
            {
                "phone_number": f"(555) {rng.integers(100, 999)}-{rng.integers(1000, 9999)}",
                "address": {
                    "address1": f"{rng.integers(1, 999)} MARKET STREET",
                    "city": city,
                    "state": state,
                    "postal_code": f"{rng.integers(10000, 99999)}",
                },
            }
        )
    results["description"] = f"{name} is a simulated listing of the loopback market (seed {market.seed})."
    if not etf:
        results.update({"sic_code": sic, "sic_description": sic_desc})
    results.update({"ticker_root": ticker, "homepage_url": f"https://www.{symbol.lower()}.example"})
    if not etf:
        results["total_employees"] = int(rng.integers(5_000, 200_000))
    results.update(
        {
            "list_date": listed,
            "branding": {
                "logo_url": f"https://api.polygon.io/v1/reference/company-branding/{symbol}/images/logo.svg",
                "icon_url": f"https://api.polygon.io/v1/reference/company-branding/{symbol}/images/icon.png",
            },
            "share_class_shares_outstanding": shares,
            "weighted_shares_outstanding": shares,
            "round_lot": 100,
        }
    )
    if view.delisted_utc is not None:
        results["delisted_utc"] = view.delisted_utc
    return Response.json({"request_id": request_id(), "results": results, "status": "OK"})


# -- ticker list and ticker events (renamed and delisted tickers: polygon_tickers, reference_truth) ------------------


def _tickers(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    q = _query(request)
    try:
        results, following = polygon_tickers.list_page(
            server.market, q, lambda security: security_fields(server.market, security)
        )
    except polygon_tickers.QueryError as exc:
        raise BadRequest(str(exc)) from exc
    body: dict[str, Any] = {"results": results, "status": "OK", "request_id": request_id(), "count": len(results)}
    if following is not None:
        body["next_url"] = f"{_base_url(request)}{request.path}?cursor={encode_cursor(following)}"
    return Response.json(body)


def _ticker_events(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    market = server.market
    results = polygon_tickers.events_results(
        market, p["id"], request.arg("types"), lambda security: security_fields(market, security)
    )
    if results is None:
        return error_body(404, request, "Ticker not found.")
    return Response.json({"results": results, "status": "OK", "request_id": request_id()})


# -- corporate actions ----------------------------------------------------------------------------------------------


def _reference_page(server: PolygonRestServer, request: Request, endpoint: actions.Endpoint) -> Response:
    q = _query(request)
    try:
        results, following = actions.page(server.market, endpoint, q)
    except actions.QueryError as exc:
        raise BadRequest(str(exc)) from exc
    body: dict[str, Any] = {"results": results, "status": "OK", "request_id": request_id()}
    if following is not None:
        body["next_url"] = f"{_base_url(request)}{request.path}?cursor={encode_cursor(following)}"
    return Response.json(body)


def _splits(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    return _reference_page(server, request, actions.SPLITS)


def _dividends(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    return _reference_page(server, request, actions.DIVIDENDS)


# -- news ------------------------------------------------------------------------------------------------------------

_PUBLISHERS = (
    ("MarketWatch", "https://www.marketwatch.com/", "marketwatch"),
    ("Investing.com", "https://www.investing.com/", "investing"),
    ("The Motley Fool", "https://www.fool.com/", "motleyfool"),
    ("Benzinga", "https://www.benzinga.com/", "benzinga"),
)
_HEADLINES = (
    "{s} shares move as traders weigh guidance",
    "Analysts revisit {s} price targets after the session",
    "What the options market says about {s}",
    "{s} in focus as sector rotation continues",
)
_SENTIMENTS = ("positive", "neutral", "negative")


@lru_cache(maxsize=8192)
def _articles_on(seed: int, symbols: tuple[str, ...], day: dt.date) -> tuple[dict[str, Any], ...]:
    """Every simulated article published on a UTC calendar day, sorted by (published ms, id)."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    for symbol in symbols:
        rng = np.random.default_rng(_seed(seed, symbol, day.isoformat(), "news"))
        for j in range(int(rng.integers(0, 3))):
            second = int(rng.integers(6 * 3600, 22 * 3600))
            published = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(seconds=second)
            article_id = hashlib.blake2b(f"{seed}:{symbol}:{day}:{j}".encode(), digest_size=32).hexdigest()
            others = [s for s in symbols if s != symbol]
            tickers = [symbol] + ([others[int(rng.integers(len(others)))]] if others and rng.random() < 0.4 else [])
            name, home, slug = _PUBLISHERS[int(rng.integers(len(_PUBLISHERS)))]
            sentiment = _SENTIMENTS[int(rng.integers(3))]
            record = {
                "id": article_id,
                "publisher": {
                    "name": name,
                    "homepage_url": home,
                    "logo_url": f"https://s3.polygon.io/public/assets/news/logos/{slug}.svg",
                    "favicon_url": f"https://s3.polygon.io/public/assets/news/favicons/{slug}.ico",
                },
                "title": _HEADLINES[int(rng.integers(len(_HEADLINES)))].format(s=symbol),
                "author": name,
                "published_utc": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "article_url": f"{home}news/{article_id[:16]}",
                "tickers": tickers,
                "amp_url": f"{home}amp/news/{article_id[:16]}",
                "image_url": f"{home}images/{article_id[:8]}.jpg",
                "description": f"Simulated coverage of {symbol} on {day.isoformat()}.",
                "keywords": ["markets", symbol],
                "insights": [
                    {"ticker": t, "sentiment": sentiment, "sentiment_reasoning": f"Simulated {sentiment} view."}
                    for t in tickers
                ],
            }
            out.append((int(published.timestamp() * 1000), article_id, record))
    out.sort(key=lambda x: (x[0], x[1]))
    return tuple(r for _, _, r in out)


def _instant_ms(raw: str, end_of_day: bool) -> int:
    if _DATE.fullmatch(raw):
        day = pd.Timestamp(raw, tz="UTC")
        return int(day.value // 1_000_000) + (86_400_000 - 1 if end_of_day else 0)
    try:
        stamp = pd.Timestamp(raw)
    except ValueError as exc:
        raise BadRequest(f"Could not parse published_utc value {raw!r}") from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value // 1_000_000)


def _news(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    q = _query(request)
    market = server.market
    limit = _int_arg(q, "limit", 10, 1, 1000)
    desc = q.get("order", "desc").lower() in ("desc", "descending")
    ticker = q.get("ticker")
    lo = _day_start_ms(market.start)
    hi = _day_start_ms(market.last_day) + 86_400_000 - 1
    for op, raw in ((k.split(".", 1)[-1] if "." in k else "eq", v) for k, v in q.items() if k.startswith("published")):
        if op in ("gte", "eq"):
            lo = max(lo, _instant_ms(raw, False))
        if op == "gt":
            lo = max(lo, _instant_ms(raw, True) + 1)
        if op in ("lte", "eq"):
            hi = min(hi, _instant_ms(raw, True))
        if op == "lt":
            hi = min(hi, _instant_ms(raw, False) - 1)
    after = q.get("after")
    position = (int(after.split(":", 1)[0]), after.split(":", 1)[1]) if after else None
    results: list[dict[str, Any]] = []
    more = False
    if ticker is None or market.has_symbol(ticker):
        days = pd.date_range(_utc_date(lo), _utc_date(hi), freq="D")
        ordered = days[::-1] if desc else days
        for stamp in ordered:
            articles = _articles_on(market.seed, market.symbols, stamp.date())
            for article in reversed(articles) if desc else articles:
                ms = int(pd.Timestamp(article["published_utc"]).value // 1_000_000)
                if not lo <= ms <= hi or (ticker is not None and ticker not in article["tickers"]):
                    continue
                key = (ms, article["id"])
                if position is not None and (key >= position if desc else key <= position):
                    continue
                if len(results) == limit:
                    more = True
                    break
                results.append(article)
            if more:
                break
    body: dict[str, Any] = {"results": results, "status": "OK", "request_id": request_id(), "count": len(results)}
    if more:
        last = results[-1]
        mark = f"{int(pd.Timestamp(last['published_utc']).value // 1_000_000)}:{last['id']}"
        body["next_url"] = f"{_base_url(request)}/v2/reference/news?cursor={encode_cursor({**q, 'after': mark})}"
    return Response.json(body)


def _day_start_ms(day: dt.date) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def _utc_date(ms: int) -> dt.date:
    return pd.Timestamp(ms, unit="ms", tz="UTC").date()  # type: ignore[no-any-return]


# -- trades and quotes -----------------------------------------------------------------------------------------------


def _ns_bound(raw: str, op: str) -> int:
    """A ``timestamp`` filter value in epoch ns: a date is New York midnight (``lte``: the day's last ns)."""
    if _DATE.fullmatch(raw):
        start = _ny_midnight_ms(dt.date.fromisoformat(raw)) * 1_000_000
        if op == "lte":
            return _ny_midnight_ms(dt.date.fromisoformat(raw) + dt.timedelta(days=1)) * 1_000_000 - 1
        return start
    if raw.isdigit():
        return int(raw)
    raise BadRequest(f"Could not parse the timestamp value {raw!r}. Use YYYY-MM-DD or a nanosecond timestamp")


def _tick_window(market: Market, q: Mapping[str, str]) -> tuple[int, int]:
    lo = _ny_midnight_ms(market.start) * 1_000_000
    hi = _ny_midnight_ms(market.last_day + dt.timedelta(days=1)) * 1_000_000 - 1
    exact = q.get("timestamp")
    if exact:
        if _DATE.fullmatch(exact):
            lo, hi = max(lo, _ns_bound(exact, "gte")), min(hi, _ns_bound(exact, "lte"))
        else:
            lo = hi = _ns_bound(exact, "gte")
    for op in ("gte", "gt", "lte", "lt"):
        raw = q.get(f"timestamp.{op}")
        if not raw:
            continue
        if op == "gte":
            lo = max(lo, _ns_bound(raw, op))
        elif op == "gt":
            lo = max(lo, _ns_bound(raw, "lte" if _DATE.fullmatch(raw) else op) + 1)
        elif op == "lte":
            hi = min(hi, _ns_bound(raw, op))
        else:
            hi = min(hi, _ns_bound(raw, op) - 1)
    return lo, hi


def _tick_page(
    server: PolygonRestServer,
    request: Request,
    ticker: str,
    record: Callable[[ticks.MinuteTicks, int], dict[str, Any]],
    stamp: Callable[[ticks.MinuteTicks], np.ndarray],
) -> Response:
    if not server.plan_of(request).trades_and_quotes:
        return error_body(403, request, MSG_NOT_ENTITLED)
    q = _query(request)
    market = server.market
    limit = _int_arg(q, "limit", 1000, 1, MAX_LIMIT)
    desc = q.get("order", "desc").lower() == "desc"
    security, lo, hi = _as_traded(market, ticker, *_tick_window(market, q), per_ms=1_000_000)
    results: list[dict[str, Any]] = []
    more = False
    if market.has_symbol(security) and lo <= hi:
        for bar in ticks.iter_minutes(market, security, lo, hi, desc):
            minute = ticks.minute_ticks(market, security, bar)
            times = stamp(minute)
            order: Iterable[int] = range(len(times) - 1, -1, -1) if desc else range(len(times))
            for k in order:
                if not lo <= times[k] <= hi:
                    continue
                if len(results) == limit:
                    more = True
                    break
                results.append(record(minute, k))
            if more:
                break
    body: dict[str, Any] = {"results": results, "status": "OK", "request_id": request_id()}
    if more:
        last = results[-1]["sip_timestamp"]
        nxt = {k: v for k, v in q.items() if not k.startswith("timestamp")}
        nxt.update({"limit": str(limit), "order": "desc" if desc else "asc", "sort": "timestamp"})
        nxt["timestamp.gte" if desc else "timestamp.lte"] = str(lo if desc else hi)
        nxt["timestamp.lt" if desc else "timestamp.gt"] = str(last)
        body["next_url"] = f"{_base_url(request)}{request.path}?cursor={encode_cursor(nxt)}"
    return Response.json(body)


def _trades(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    return _tick_page(server, request, p["ticker"], ticks.trade_record, lambda m: m.trade_sip_ns)


def _quotes(server: PolygonRestServer, request: Request, p: dict[str, str]) -> Response:
    return _tick_page(server, request, p["ticker"], ticks.quote_record, lambda m: m.quote_sip_ns)
