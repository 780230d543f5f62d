"""The Unusual Whales REST simulator: the vendor's routes over :class:`UWTruth`, on a loopback :class:`SimServer`.

What it reproduces (``../shared/vendor/README.md``, ``openapi.yaml``, the spec examples and captures):

* ``Authorization: Bearer <token>``; a token maps to a :class:`UWPlan` (per-minute and daily budgets, optional
  history window). Bad or missing token: 401. ``UW-CLIENT-API-ID: 100001`` is asked for by the vendor's guide:
  requests without it are served and counted in ``server.missing_client_id``.
* Quota headers on every response: ``x-uw-daily-req-count``, ``x-uw-token-req-limit`` (the daily budget),
  ``x-uw-minute-req-counter``, ``x-uw-req-per-minute-remaining`` and ``x-uw-req-per-minute-reset`` (milliseconds
  until a slot of the rolling minute frees up). The minute is *rolling* (a client that keeps any 60 s under the limit
  is never refused); the day resets at 20:00 New York. A request refused with 429 is not counted. Both budgets run
  on the server's :class:`SimClock`.
* ``{"data": [...]}`` envelope (flow-recent adds ``"date"``), money/prices/IV as JSON strings, counts and sizes as
  ints, the vendor's mixed timestamp formats, 422 ``{"msg","path","query","url"}`` for bad input, 403 outside the
  plan's history window, ``data: []`` for holidays and unknown tickers.
* Only what is public at the simulated ``now``: an alert after its ``created_at``, a tick or candle after its
  minute ends, a day's totals (options-volume, flow-recent, ETF flow) after the session close, a filing after
  ``filed_at``.

Timestamp style: ``server.style = "live"`` (default) formats the fields for which an unverified live capture exists
as that capture does (flow ``created_at`` ``2025-10-22T20:27:01.354429Z``, dark-pool ``executed_at``
``2025-10-22T21:24:30Z``, tide ``2025-10-22T09:30:00-04:00``); ``"spec"`` formats them as the spec examples do
(``2023-12-12 16:35:52.168490+00:00``, ``2023-02-16 00:59:44+00:00``, ``2023-09-08 09:30:00-04:00``). Fields
without a capture always follow the spec. A client must parse both.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

import pandas as pd

from ingestion import calendar
from ingestion.simulators.http import Request, Response, Route, SimClock, SimServer
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.simulators.market import Market
from ingestion.simulators.rollup import roll_up
from ingestion.simulators.uw_truth import (
    RULES,
    SIDE_FIELDS,
    DarkPoolPrint,
    FlowAlert,
    InsiderRow,
    UWTruth,
    side_premium,
    side_volume,
)

Style = Literal["live", "spec"]
CLIENT_API_ID = "100001"
DAY_RESET_HOUR_NY = 20  # the daily request count resets at 20:00 New York
ALERT_LOOKBACK_DAYS = 60  # flow alerts without newer_than search this far back (a simulator bound)
CANDLE_MINUTES = {"1m": 1, "5m": 5, "10m": 10, "15m": 15, "30m": 30, "1h": 60, "4h": 240}
_TICKER = re.compile(r"[A-Z][A-Z.\-]{0,9}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class UWPlan:
    """A token's plan: requests per rolling minute, per day (reset 20:00 New York), days of history (None = all)."""

    name: str = "basic"
    per_minute: int = 120
    per_day: int = 15_000
    history_days: int | None = None


DEFAULT_PLAN = UWPlan()


@dataclass(frozen=True)
class QuotaState:
    """A token's counters right after a request was admitted (or refused)."""

    daily_count: int
    daily_limit: int
    minute_count: int
    minute_remaining: int
    minute_reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "x-uw-daily-req-count": str(self.daily_count),
            "x-uw-token-req-limit": str(self.daily_limit),
            "x-uw-minute-req-counter": str(self.minute_count),
            "x-uw-req-per-minute-remaining": str(self.minute_remaining),
            "x-uw-req-per-minute-reset": str(self.minute_reset_ms),
        }


def quota_day(now: float) -> dt.date:
    """The quota day of an instant (epoch seconds): the New York date of ``now + 4 h``, so it rolls at 20:00."""
    ny = pd.Timestamp(now, unit="s", tz="UTC").tz_convert(calendar.NEW_YORK)
    return (ny + pd.Timedelta(hours=24 - DAY_RESET_HOUR_NY)).date()  # type: ignore[no-any-return]


class QuotaBook:
    """Per-token request budgets: a rolling 60 s window and a daily count. Thread-safe."""

    def __init__(self, plans: Mapping[str, UWPlan]) -> None:
        self.plans = dict(plans)
        self._lock = threading.Lock()
        self._minute: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[dt.date, int]] = {}

    def _state(self, token: str, now: float) -> QuotaState:
        plan = self.plans[token]
        window = self._minute.setdefault(token, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        day, count = self._daily.get(token, (quota_day(now), 0))
        if day != quota_day(now):
            count = 0
        reset_ms = round((window[0] + 60.0 - now) * 1000) if window else 60_000
        return QuotaState(count, plan.per_day, len(window), max(0, plan.per_minute - len(window)), max(0, reset_ms))

    def admit(self, token: str, now: float) -> tuple[bool, QuotaState]:
        """Count a request if both budgets allow it; returns whether it was admitted and the counters after."""
        with self._lock:
            plan = self.plans[token]
            state = self._state(token, now)
            if state.minute_count >= plan.per_minute or state.daily_count >= plan.per_day:
                return False, state
            self._minute[token].append(now)
            self._daily[token] = (quota_day(now), state.daily_count + 1)
            return True, self._state(token, now)


class _Invalid(Exception):
    """Bad input: becomes a 422 with the vendor's body."""


class _Forbidden(Exception):
    """Outside the plan's history window: 403."""


# -- formatting --------------------------------------------------------------------------------------------------


def num(value: float | int | Decimal, places: int | None = None) -> str:
    """A number as UW writes it: a string, trailing zeros trimmed (``4.05``, ``2.8``, ``375``)."""
    d = Decimal(str(round(value, places) if places is not None else value))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def fixed(value: float | int, places: int) -> str:
    """A number as a string with exactly ``places`` decimals (``"660338.0000"``, ``"2234.00"``)."""
    return f"{value:.{places}f}"


def ts_utc_space(seconds: float, micro: bool = False) -> str:
    """``2023-12-12 16:35:52.168490+00:00`` (or without microseconds)."""
    t = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f+00:00" if micro else "%Y-%m-%d %H:%M:%S+00:00")


def ts_utc_z(seconds: float, micro: bool = False) -> str:
    """``2025-10-22T20:27:01.354429Z`` (or without microseconds)."""
    t = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def ts_new_york(seconds: float, sep: str = " ") -> str:
    """``2023-09-08 09:30:00-04:00``: New York wall time with its offset."""
    t = pd.Timestamp(seconds, unit="s", tz="UTC").tz_convert(calendar.NEW_YORK)
    return t.isoformat(sep=sep)  # type: ignore[no-any-return]


def _us_to_s(us: int) -> float:
    return us / 1_000_000


# -- the application -------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    request: Request
    params: dict[str, str]
    now: float
    plan: UWPlan

    def arg(self, name: str) -> str | None:
        return self.request.arg(name)


class UWServer(SimServer):
    """A :class:`SimServer` serving the Unusual Whales routes. ``truth`` is the full ground truth."""

    def __init__(
        self, truth: UWTruth, quota: QuotaBook, *, clock: SimClock | None = None, port: int = 0, style: Style = "live"
    ) -> None:
        self.truth = truth
        self.quota = quota
        self.style: Style = style
        self.missing_client_id: Counter[str] = Counter()
        self.listing_delays: dict[str, float] = {}
        """Alert id -> seconds after its ``created_at`` before the flow-alerts list shows it (a vendor that publishes
        an alert late: a poll that covered its ``created_at`` did not see it). Changeable while running."""
        self._local = threading.local()
        super().__init__(_routes(self), self._authenticate, name="unusual-whales", clock=clock, port=port)
        self.response_hooks.append(self._add_quota_headers)

    def _authenticate(self, request: Request) -> str | Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if token not in self.quota.plans:
            return Response.json({"msg": "Unauthorized: a valid API token is required (Authorization: Bearer)"}, 401)
        if request.headers.get("uw-client-api-id") != CLIENT_API_ID:
            self.missing_client_id[token] += 1
        admitted, state = self.quota.admit(token, request.received_at)
        self._local.state = state
        if not admitted:
            which = "daily" if state.daily_count >= state.daily_limit else "per-minute"
            body = {"msg": f"Too many requests: the {which} request limit of your plan is reached"}
            return Response.json(body, 429, state.headers())
        return token

    def _add_quota_headers(self, request: Request, route: Route, response: Response) -> Response:
        state: QuotaState | None = getattr(self._local, "state", None)
        if state is not None:
            response.headers.update(state.headers())
        return response

    def plan_of(self, request: Request) -> UWPlan:
        return self.quota.plans.get(request.api_key or "", DEFAULT_PLAN)


def uw_server(
    market: Market,
    *,
    tokens: Mapping[str, UWPlan] | Iterable[str] | None = None,
    clock: SimClock | None = None,
    port: int = 0,
) -> UWServer:
    """The Unusual Whales simulator over ``market`` (not started: use it as a context manager or call ``start``).

    ``tokens`` maps accepted tokens to plans (an iterable of tokens gets :data:`DEFAULT_PLAN` each); by default only
    :data:`~ingestion.simulators.keys.UW_SIM_TOKEN` is accepted. ``server.truth`` is the :class:`UWTruth`.
    """
    if tokens is None:
        plans: dict[str, UWPlan] = {UW_SIM_TOKEN: DEFAULT_PLAN}
    elif isinstance(tokens, Mapping):
        plans = dict(tokens)
    else:
        plans = dict.fromkeys(tokens, DEFAULT_PLAN)
    return UWServer(UWTruth.of(market), QuotaBook(plans), clock=clock, port=port)


def uw_error(status: int, request: Request) -> Response:
    """An error status worded as the vendor words it, for ``FaultPlan(error_response=uw_error)``.

    5xx is plain text (the spec's "Something went wrong"), 422 the documented ``{"msg","path","query","url"}``,
    anything else a JSON ``{"msg": ...}``.
    """
    if status >= 500:
        return Response.text("Something went wrong", status)
    if status == 422:
        return Response.json(_error_body(request, "Invalid input"), status)
    return Response.json({"msg": f"Request failed with status {status}"}, status)


# -- routing and input ---------------------------------------------------------------------------------------------

Payload = dict[str, Any]


def _routes(server: UWServer) -> list[Route]:
    app = _App(server)
    table: list[tuple[str, str, Callable[[_Ctx], Payload]]] = [
        ("flow-alerts", r"/api/option-trades/flow-alerts", app.flow_alerts),
        ("flow-recent", r"/api/stock/(?P<ticker>[^/]+)/flow-recent", app.flow_recent),
        ("options-volume", r"/api/stock/(?P<ticker>[^/]+)/options-volume", app.options_volume),
        ("net-prem-ticks", r"/api/stock/(?P<ticker>[^/]+)/net-prem-ticks", app.net_prem_ticks),
        ("ohlc", r"/api/stock/(?P<ticker>[^/]+)/ohlc/(?P<candle_size>[^/]+)", app.ohlc),
        ("darkpool-recent", r"/api/darkpool/recent", app.darkpool_recent),
        ("darkpool-ticker", r"/api/darkpool/(?P<ticker>[^/]+)", app.darkpool_ticker),
        ("insider-transactions", r"/api/insider/transactions", app.insider_transactions),
        ("etf-in-outflow", r"/api/etfs/(?P<ticker>[^/]+)/in-outflow", app.etf_in_outflow),
        ("market-tide", r"/api/market/market-tide", app.market_tide),
    ]
    routes = [Route(name, pattern, _handler(server, fn)) for name, pattern, fn in table]
    # A matched catch-all, so an unknown path's 404 also passes through the quota-header hook.
    routes.append(Route("not-found", r".*", lambda request, _params: Response.json({"msg": "Not Found"}, 404)))
    return routes


def _handler(server: UWServer, fn: Callable[[_Ctx], Payload]) -> Callable[[Request, dict[str, str]], Response]:
    def handle(request: Request, params: dict[str, str]) -> Response:
        ctx = _Ctx(request, params, request.received_at, server.plan_of(request))
        try:
            return Response.json(fn(ctx))
        except _Invalid as exc:
            return Response.json(_error_body(request, str(exc)), 422)
        except _Forbidden as exc:
            return Response.json({"msg": str(exc)}, 403)

    return handle


def _error_body(request: Request, msg: str) -> Payload:
    query = urlencode([(k, v) for k, vs in request.query.items() for v in vs])
    host = request.headers.get("host", "localhost")
    return {
        "msg": msg,
        "path": request.path,
        "query": query,
        "url": f"{host}{request.path}{'?' + query if query else ''}",
    }


def _bad_query(name: str, value: str, example: str) -> _Invalid:
    return _Invalid(f"Invalid query input(s): {name}={value} (valid example: {name}={example})")


def _ticker(ctx: _Ctx) -> str:
    raw = ctx.params["ticker"]
    if not _TICKER.fullmatch(raw.upper()):
        raise _Invalid(f"Invalid path input: {raw} (valid example: AAPL)")
    return raw.upper()


def _int(ctx: _Ctx, name: str, default: int | None, lo: int | None = None, hi: int | None = None) -> int | None:
    raw = ctx.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_query(name, raw, str(lo if lo is not None else 10)) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _bad_query(name, raw, str(min(hi or 10, 10)))
    return value


def _limit(ctx: _Ctx, default: int, hi: int) -> int:
    value = _int(ctx, "limit", default, 1, hi)
    assert value is not None
    return value


def _float(ctx: _Ctx, name: str) -> float | None:
    raw = ctx.arg(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad_query(name, raw, "12500") from None
    if value < 0:
        raise _bad_query(name, raw, "12500")
    return value


def _bool(ctx: _Ctx, name: str) -> bool | None:
    raw = ctx.arg(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _bad_query(name, raw, "true")


def _choice(ctx: _Ctx, name: str, options: Iterable[str], default: str) -> str:
    raw = ctx.arg(name)
    options = tuple(options)
    if raw is None or raw == "":
        return default
    if raw not in options:
        raise _bad_query(name, raw, options[0])
    return raw


def _new_york_today(now: float) -> dt.date:
    return calendar.new_york_date(pd.Timestamp(now, unit="s", tz="UTC"))


def _date(ctx: _Ctx, name: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` parameter: 422 when malformed or in the future (New York), 403 before the plan's history."""
    raw = ctx.arg(name)
    if raw is None or raw == "":
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        value = dt.date.fromisoformat(raw)
    except ValueError:
        raise _bad_query(name, raw, "2024-01-18") from None
    if value > _new_york_today(ctx.now):
        raise _Invalid(f"Invalid query input(s): {name}={raw} (date must be the current or a past date)")
    _check_history(ctx, value)
    return value


def _check_history(ctx: _Ctx, day: dt.date) -> None:
    if ctx.plan.history_days is None:
        return
    if (_new_york_today(ctx.now) - day).days > ctx.plan.history_days:
        raise _Forbidden(f"Your plan covers the last {ctx.plan.history_days} days only: {day} is outside it")


def _instant(ctx: _Ctx, name: str) -> float | None:
    """``newer_than``/``older_than``: unix seconds or milliseconds, or an ISO date/RFC 3339 time -> epoch seconds."""
    raw = ctx.arg(name)
    if raw is None or raw == "":
        return None
    try:
        number = float(raw)
        value = number / 1000 if number > 1e11 else number  # beyond year 5138 in seconds: it is milliseconds
    except ValueError:
        try:
            stamp = pd.Timestamp(raw)
        except ValueError:
            raise _bad_query(name, raw, "1715083417") from None
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        value = stamp.value / 1e9
    _check_history(ctx, _new_york_today(value))
    return value


def _tickers(ctx: _Ctx, universe: Iterable[str]) -> list[str]:
    """``ticker_symbol``: comma list; a leading ``-`` excludes the listed tickers instead."""
    raw = ctx.arg("ticker_symbol")
    universe = list(universe)
    if not raw:
        return universe
    exclude = raw.startswith("-")
    listed = {t.strip().upper() for t in raw.lstrip("-").split(",") if t.strip()}
    for t in listed:
        if not _TICKER.fullmatch(t):
            raise _bad_query("ticker_symbol", raw, "AAPL,INTC")
    return [t for t in universe if t not in listed] if exclude else [t for t in universe if t in listed]


def _current_session(truth: UWTruth, now: float) -> dt.date | None:
    """The session in progress or last held at ``now`` (its data so far is public)."""
    today = min(_new_york_today(now), truth.market.last_day)
    if truth.is_session(today) and now >= calendar.session_open(today).value / 1e9:
        return today
    prev = calendar.previous_session(today).date()
    return prev if prev >= truth.market.start else None


def _last_closed_session(truth: UWTruth, now: float) -> dt.date | None:
    """The last session whose close is at or before ``now`` (whole-day totals are public from then)."""
    day = _current_session(truth, now)
    if day is not None and now < calendar.session_close(day).value / 1e9:
        prev = calendar.previous_session(day).date()
        return prev if prev >= truth.market.start else None
    return day


def _closed(day: dt.date, now: float) -> bool:
    return bool(now >= calendar.session_close(day).value / 1e9)


class _App:
    """Route bodies. Each returns the JSON payload or raises :class:`_Invalid` / :class:`_Forbidden`."""

    def __init__(self, server: UWServer) -> None:
        self.server = server
        self.truth = server.truth

    # -- flow alerts ---------------------------------------------------------------------------------------------

    def flow_alerts(self, ctx: _Ctx) -> Payload:
        limit = _limit(ctx, 100, 200)
        symbols = _tickers(ctx, self.truth.symbols)
        keep = _alert_filter(ctx)
        newer, older = _instant(ctx, "newer_than"), _instant(ctx, "older_than")
        upper = min(ctx.now, older) if older is not None else ctx.now
        lower = newer if newer is not None else upper - ALERT_LOOKBACK_DAYS * 86_400
        lo_us, hi_us = round(lower * 1e6), round(upper * 1e6)
        first, last = _new_york_today(lower), _new_york_today(upper)
        out: list[FlowAlert] = []
        delays, now_us = dict(self.server.listing_delays), round(ctx.now * 1e6)
        for day in reversed(self.truth.market.sessions(first, last)):
            day_alerts = [
                a
                for s in symbols
                for a in self.truth.flow_alerts(s, day)
                if lo_us <= a.created_at_us <= hi_us
                and keep(a)
                and a.created_at_us + round(delays.get(a.id, 0.0) * 1e6) <= now_us
            ]
            out.extend(sorted(day_alerts, key=lambda a: (a.created_at_us, a.id), reverse=True))
            if len(out) >= limit:
                break
        return {"data": [self.alert_json(a) for a in out[:limit]]}

    def alert_json(self, a: FlowAlert) -> Payload:
        created = _us_to_s(a.created_at_us)
        return {
            "alert_rule": a.alert_rule,
            "all_opening_trades": a.all_opening_trades,
            "ask": num(a.ask_cents / 100, 2),
            "bid": num(a.bid_cents / 100, 2),
            "created_at": ts_utc_z(created, True) if self.server.style == "live" else ts_utc_space(created, True),
            "end_time": a.end_time_ms,
            "er_time": None,
            "expiry": a.expiry.isoformat(),
            "expiry_count": 2 if a.has_multileg else 1,
            "has_floor": a.has_floor,
            "has_multileg": a.has_multileg,
            "has_singleleg": not a.has_multileg,
            "has_sweep": a.has_sweep,
            "id": a.id,
            "issue_type": a.issue_type,
            "iv_end": repr(a.iv_end),
            "iv_start": repr(a.iv_start),
            "marketcap": str(a.marketcap),
            "next_earnings_date": None,
            "open_interest": a.open_interest,
            "option_chain": a.option_chain,
            "price": num(a.price_cents / 100, 2),
            "rule_id": a.rule_id,
            "sector": a.sector,
            "start_time": a.start_time_ms,
            "strike": num(a.strike, 3),
            "ticker": a.ticker,
            "total_ask_side_prem": str(a.total_ask_side_prem),
            "total_bid_side_prem": str(a.total_bid_side_prem),
            "total_premium": str(a.total_premium),
            "total_size": a.total_size,
            "trade_count": a.trade_count,
            "type": a.type,
            "underlying_price": num(a.underlying_price, 2),
            "volume": a.volume,
            "volume_oi_ratio": repr(a.volume / max(a.open_interest, 1)),
        }

    # -- per-ticker flow -----------------------------------------------------------------------------------------

    def flow_recent(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        _choice(ctx, "side", ("ALL", "ASK", "BID", "MID"), "ALL")  # validated; the per-expiry rows hold every side
        min_premium = _int(ctx, "min_premium", 0, 0) or 0
        day = _last_closed_session(self.truth, ctx.now)
        flow = self.truth.day_flow(ticker, day) if day is not None else None
        if flow is None or day is None:
            return {"data": [], "date": day.isoformat() if day else None}
        rows = []
        for rec in flow.by_expiry.to_dict("records"):
            if side_premium(rec, "call") + side_premium(rec, "put") < min_premium:
                continue
            row: Payload = {"date": day.isoformat(), "expiry": rec["expiry"].isoformat(), "ticker": ticker}
            for side in ("call", "put"):
                row.update(
                    {
                        f"{side}_otm_premium": str(int(rec[f"{side}_otm_prem"])),
                        f"{side}_otm_trades": int(rec[f"{side}_otm_trades"]),
                        f"{side}_otm_volume": int(rec[f"{side}_otm_vol"]),
                        f"{side}_premium": str(side_premium(rec, side)),
                        f"{side}_premium_ask_side": str(int(rec[f"{side}_prem_ask"])),
                        f"{side}_premium_bid_side": str(int(rec[f"{side}_prem_bid"])),
                        f"{side}_trades": int(rec[f"{side}_trades"]),
                        f"{side}_volume": side_volume(rec, side),
                        f"{side}_volume_ask_side": int(rec[f"{side}_vol_ask"]),
                        f"{side}_volume_bid_side": int(rec[f"{side}_vol_bid"]),
                    }
                )
            rows.append(row)
        return {"data": rows, "date": day.isoformat()}

    def options_volume(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        limit = _limit(ctx, 1, 500)
        asked = _date(ctx, "date")
        latest = _last_closed_session(self.truth, ctx.now)
        if asked is not None and latest is not None:
            latest = min(asked, latest)
        if latest is None or not self.truth.market.has_symbol(ticker):
            return {"data": []}
        days = [d.date() for d in calendar.sessions(self.truth.market.start, latest)][-limit:]
        if asked is not None and not self.truth.is_session(asked):
            days = []  # a holiday has no options volume
        return {"data": [self.volume_json(ticker, d) for d in reversed(days)]}

    def volume_json(self, ticker: str, day: dt.date) -> Payload:
        v = self.truth.options_volume(ticker, day)
        assert v is not None
        row: Payload = {"date": day.isoformat()}
        for n in (3, 7, 30):
            for side in ("call", "put"):
                row[f"avg_{n}_day_{side}_volume"] = str(self.truth.average_volume(ticker, day, n, side))
        for side in ("call", "put"):
            row[f"{side}_open_interest"] = v[f"{side}_open_interest"]
            row[f"{side}_premium"] = str(side_premium(v, side))
            row[f"{side}_volume"] = side_volume(v, side)
            row[f"{side}_volume_ask_side"] = v[f"{side}_vol_ask"]
            row[f"{side}_volume_bid_side"] = v[f"{side}_vol_bid"]
            row[f"net_{side}_premium"] = str(v[f"{side}_prem_ask"] - v[f"{side}_prem_bid"])
        row["bullish_premium"] = str(v["call_prem_ask"] + v["put_prem_bid"])
        row["bearish_premium"] = str(v["call_prem_bid"] + v["put_prem_ask"])
        return row

    def net_prem_ticks(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        day = _date(ctx, "date") or _current_session(self.truth, ctx.now)
        if day is None:
            return {"data": []}
        ticks = self.truth.net_prem_ticks(ticker, day)
        if ticks.empty:
            return {"data": []}
        visible = ticks[ticks["minute_ms"] + 60_000 <= ctx.now * 1000]
        return {"data": [_tick_json(day, rec) for rec in visible.to_dict("records")]}

    # -- candles ---------------------------------------------------------------------------------------------------

    def ohlc(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        size = ctx.params["candle_size"]
        if size not in (*CANDLE_MINUTES, "1d", "1w"):
            raise _Invalid(f"Invalid path input: {size} (valid example: 1m)")
        limit = _limit(ctx, 2500, 2500)
        timeframe = (ctx.arg("timeframe") or "1Y").upper()
        on_day = _date(ctx, "date")
        end = on_day or _date(ctx, "end_date") or _new_york_today(ctx.now)
        start = on_day or _timeframe_start(timeframe, end)
        market = self.truth.market
        if not market.has_symbol(ticker):
            return {"data": []}
        if size in CANDLE_MINUTES:
            rows = _intraday_candles(market, ticker, start, end, CANDLE_MINUTES[size], ctx.now)
        else:
            rows = _daily_candles(market, ticker, start, end, size, ctx.now)
        return {"data": rows[:limit]}

    # -- dark pool -------------------------------------------------------------------------------------------------

    def darkpool_recent(self, ctx: _Ctx) -> Payload:
        limit = _limit(ctx, 100, 200)
        day = _date(ctx, "date") or _current_session(self.truth, ctx.now)
        prints = [p for s in self.truth.symbols for p in self.truth.darkpool_prints(s, day)] if day else []
        return {"data": self._darkpool_page(ctx, prints, None, None, limit)}

    def darkpool_ticker(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        limit = _limit(ctx, 500, 500)
        asked = _date(ctx, "date")
        newer, older = _instant(ctx, "newer_than"), _instant(ctx, "older_than")
        if asked is not None:
            days = [asked]
        elif newer is not None or older is not None:
            last = _new_york_today(min(older, ctx.now) if older is not None else ctx.now)
            first = _new_york_today(newer) if newer is not None else last
            days = self.truth.market.sessions(first, last)
        else:
            current = _current_session(self.truth, ctx.now)
            days = [current] if current else []
        prints = [p for d in days for p in self.truth.darkpool_prints(ticker, d)]
        return {"data": self._darkpool_page(ctx, prints, newer, older, limit)}

    def _darkpool_page(
        self, ctx: _Ctx, prints: list[DarkPoolPrint], newer: float | None, older: float | None, limit: int
    ) -> list[Payload]:
        order = _choice(ctx, "order", ("desc", "asc"), "desc")
        order_by = _choice(
            ctx, "order_by", ("executed_at", "trf_executed_at", "premium", "size", "volume"), "executed_at"
        )
        bounds = {name: (_int(ctx, f"min_{name}", None, 0), _int(ctx, f"max_{name}", None)) for name in _DP_BOUNDS}
        lo = newer if newer is not None else float("-inf")
        hi = min(older, ctx.now) if older is not None else ctx.now
        chosen = [
            p
            for p in prints
            if lo <= p.executed_at_s <= hi and all(_within(_DP_BOUNDS[name](p), b) for name, b in bounds.items())
        ]
        key = _DP_ORDER[order_by]
        chosen.sort(key=lambda p: (key(p), p.executed_at_s, p.ticker, p.seq), reverse=order == "desc")
        return [self.print_json(p) for p in chosen[:limit]]

    def print_json(self, p: DarkPoolPrint) -> Payload:
        live = self.server.style == "live"
        fmt = ts_utc_z if live else ts_utc_space
        return {
            "canceled": p.canceled,
            "executed_at": fmt(p.executed_at_s),
            "ext_hour_sold_codes": p.ext_hour_sold_codes,
            "market_center": p.market_center,
            "nbbo_ask": num(p.nbbo_ask, 2),
            "nbbo_ask_quantity": p.nbbo_ask_quantity,
            "nbbo_bid": num(p.nbbo_bid, 2),
            "nbbo_bid_quantity": p.nbbo_bid_quantity,
            "premium": fixed(p.premium, 2),
            "price": num(p.price, 4),
            "sale_cond_codes": p.sale_cond_codes,
            "size": p.size,
            "ticker": p.ticker,
            "tracking_id": p.tracking_id,
            "trade_code": p.trade_code,
            "trade_settlement": p.trade_settlement,
            # No capture shows trf_executed_at, so it keeps the spec's format in both styles.
            "trf_executed_at": ts_utc_space(p.trf_executed_at_s) if p.trf_executed_at_s is not None else None,
            "volume": p.volume,
        }

    # -- insider transactions --------------------------------------------------------------------------------------

    def insider_transactions(self, ctx: _Ctx) -> Payload:
        limit = _limit(ctx, 500, 500)
        page = _int(ctx, "page", 0, 0) or 0
        group = _bool(ctx, "group")
        start = _date(ctx, "start_date") or self.truth.market.start
        end = _date(ctx, "end_date") or _new_york_today(ctx.now)
        symbols = set(_tickers(ctx, self.truth.symbols))
        codes = {c for v in ctx.request.query.get("transaction_codes[]", []) for c in v.split(",") if c}
        rows = [
            r
            for r in self.truth.insider_rows(start, end, group=group is not False)
            if r.filed_at_s <= ctx.now
            and r.first.ticker in symbols
            and (not codes or r.first.transaction_code in codes)
        ]
        return {"data": [_insider_json(r) for r in rows[page * limit : (page + 1) * limit]]}

    # -- ETF flows and market tide ---------------------------------------------------------------------------------

    def etf_in_outflow(self, ctx: _Ctx) -> Payload:
        ticker = _ticker(ctx)
        latest = _last_closed_session(self.truth, ctx.now)
        end = _date(ctx, "end_date") or latest
        if end is None:
            return {"data": []}
        start = _date(ctx, "start_date") or end - dt.timedelta(days=365)
        if (end - start).days > 3 * 366:
            raise _Invalid("Invalid query input(s): the maximum date range is 3 years")
        flows = [f for f in self.truth.etf_flows(ticker, start, end) if _closed(f.date, ctx.now)]
        return {
            "data": [
                {
                    "change": f.change,
                    "change_prem": num(f.change_prem, 2) if f.change_prem % 1 else f"{f.change_prem:.1f}",
                    "close": num(f.close, 2),
                    "date": f.date.isoformat(),
                    "is_fomc": f.is_fomc,
                    "volume": f.volume,
                }
                for f in reversed(flows)
            ]
        }

    def market_tide(self, ctx: _Ctx) -> Payload:
        day = _date(ctx, "date") or _current_session(self.truth, ctx.now)
        five = _bool(ctx, "interval_5m")
        _bool(ctx, "otm_only")  # validated; the simulated tide does not split OTM flow
        if day is None:
            return {"data": []}
        sep = "T" if self.server.style == "live" else " "
        return {
            "data": [
                {
                    "date": t.date.isoformat(),
                    "net_call_premium": fixed(t.net_call_premium, 4),
                    "net_put_premium": fixed(t.net_put_premium, 4),
                    "net_volume": t.net_volume,
                    "timestamp": ts_new_york(t.start_ms / 1000, sep),
                }
                for t in self.truth.market_tide(day, 1 if five is False else 5)
                if t.end_ms <= ctx.now * 1000
            ]
        }


def _alert_filter(ctx: _Ctx) -> Callable[[FlowAlert], bool]:
    min_premium, max_premium = _float(ctx, "min_premium"), _float(ctx, "max_premium")
    min_size, max_size = _int(ctx, "min_size", None, 0), _int(ctx, "max_size", None, 0)
    min_volume, max_volume = _int(ctx, "min_volume", None, 0), _int(ctx, "max_volume", None, 0)
    min_oi, max_oi = _int(ctx, "min_open_interest", None, 0), _int(ctx, "max_open_interest", None, 0)
    is_sweep, is_floor, is_otm = _bool(ctx, "is_sweep"), _bool(ctx, "is_floor"), _bool(ctx, "is_otm")
    is_call, is_put = _bool(ctx, "is_call"), _bool(ctx, "is_put")
    # One flag set to true alone asks for that type only; a flag set to false drops that type.
    calls = is_call if is_call is not None else is_put is not True
    puts = is_put if is_put is not None else is_call is not True
    rules = set(ctx.request.query.get("rule_name[]", []))
    for rule in rules:
        if rule not in RULES:
            raise _bad_query("rule_name[]", rule, "RepeatedHits")

    def keep(a: FlowAlert) -> bool:
        return (
            (calls if a.is_call else puts)
            and _within(a.total_premium, (min_premium, max_premium))
            and _within(a.total_size, (min_size, max_size))
            and _within(a.volume, (min_volume, max_volume))
            and _within(a.open_interest, (min_oi, max_oi))
            and (is_sweep is None or a.has_sweep == is_sweep)
            and (is_floor is None or a.has_floor == is_floor)
            and (is_otm is None or a.is_otm == is_otm)
            and (not rules or a.alert_rule in rules)
        )

    return keep


def _within(value: float, bounds: tuple[float | None, float | None]) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


_DP_BOUNDS: dict[str, Callable[[DarkPoolPrint], float]] = {
    "premium": lambda p: p.premium,
    "size": lambda p: p.size,
    "volume": lambda p: p.volume,
}
_DP_ORDER: dict[str, Callable[[DarkPoolPrint], float]] = {
    "executed_at": lambda p: p.executed_at_s,
    "trf_executed_at": lambda p: p.trf_executed_at_s if p.trf_executed_at_s is not None else p.executed_at_s,
    **_DP_BOUNDS,
}


def _tick_json(day: dt.date, rec: dict[str, Any]) -> Payload:
    net_call_vol = int(rec["call_vol_ask"]) - int(rec["call_vol_bid"])
    net_put_vol = int(rec["put_vol_ask"]) - int(rec["put_vol_bid"])
    # Net delta of the minute: call contracts at +0.5 delta, puts at -0.5, 100 shares each.
    net_delta = Decimal(net_call_vol - net_put_vol) * Decimal("50.0")
    return {
        "call_volume": side_volume(rec, "call"),
        "call_volume_ask_side": int(rec["call_vol_ask"]),
        "call_volume_bid_side": int(rec["call_vol_bid"]),
        "date": day.isoformat(),
        "net_call_premium": fixed(int(rec["call_prem_ask"]) - int(rec["call_prem_bid"]), 2),
        "net_call_volume": net_call_vol,
        "net_delta": f"{net_delta:.17f}",
        "net_put_premium": fixed(int(rec["put_prem_ask"]) - int(rec["put_prem_bid"]), 2),
        "net_put_volume": net_put_vol,
        "put_volume": side_volume(rec, "put"),
        "put_volume_ask_side": int(rec["put_vol_ask"]),
        "put_volume_bid_side": int(rec["put_vol_bid"]),
        "tape_time": ts_utc_space(int(rec["minute_ms"]) / 1000),
    }


def _insider_json(r: InsiderRow) -> Payload:
    t = r.first
    next_earnings = (
        pd.Timestamp(t.filing_date) + pd.offsets.QuarterBegin(startingMonth=1) + pd.Timedelta(days=25)
    ).date()
    return {
        "amount": r.amount,
        "date_excercisable": None,
        "director_indirect": None,
        "expiration_date": None,
        "filing_date": t.filing_date.isoformat(),
        "formtype": t.formtype,
        "id": r.id,
        "ids": list(r.ids),
        "is_10b5_1": t.is_10b5_1,
        "is_director": t.is_director,
        "is_officer": t.is_officer,
        "is_s_p_500": t.is_s_p_500,
        "is_ten_percent_owner": t.is_ten_percent_owner,
        "marketcap": str(t.marketcap),
        "natureofownership": "Direct",
        "next_earnings_date": next_earnings.isoformat(),
        "officer_title": t.officer_title or "Director",
        "owner_name": t.owner_name,
        "price": fixed(r.price, 4),
        "price_excercisable": None,
        "reporter_is_public_company": False,
        "sector": t.sector,
        "security_ad_code": None,
        "security_title": "Common Stock",
        "shares_owned_after": r.members[-1].shares_owned_after,
        "shares_owned_before": t.shares_owned_before,
        "stock_price": num(t.stock_price, 2),
        "ticker": t.ticker,
        "transaction_code": t.transaction_code,
        "transaction_date": t.transaction_date.isoformat(),
        "transactions": len(r.members),
    }


def _timeframe_start(timeframe: str, end: dt.date) -> dt.date:
    if timeframe == "YTD":
        return dt.date(end.year, 1, 1)
    m = re.fullmatch(r"(\d{1,3})([DWMY])", timeframe)
    if not m:
        raise _bad_query("timeframe", timeframe, "2M")
    n, unit = int(m.group(1)), m.group(2)
    offset = {"D": pd.DateOffset(days=n), "W": pd.DateOffset(weeks=n), "M": pd.DateOffset(months=n)}.get(
        unit, pd.DateOffset(years=n)
    )
    return (pd.Timestamp(end) - offset).date()  # type: ignore[no-any-return]


def _intraday_candles(
    market: Market, ticker: str, start: dt.date, end: dt.date, minutes: int, now: float
) -> list[Payload]:
    """Candles of ``minutes`` (epoch-aligned windows) from raw minute bars, newest first; only finished minutes."""
    first = pd.Timestamp(start).tz_localize(calendar.NEW_YORK).value // 1_000_000
    last = (pd.Timestamp(end) + pd.Timedelta(days=1)).tz_localize(calendar.NEW_YORK).value // 1_000_000 - 1
    bars = market.minute_bars_range(ticker, first, min(last, int(now * 1000) - 60_000), adjusted=False)
    if bars.empty:
        return []
    size_ms = minutes * 60_000
    bars = bars.assign(bucket=bars["window_start_ms"] // size_ms * size_ms)
    day_volume = bars.groupby("day")["volume"].cumsum()
    candles = roll_up(bars, bars["bucket"])
    # The vendor's total_volume is the session's volume so far, as of the candle's last minute.
    candles["total_volume"] = day_volume.groupby(bars["bucket"], sort=True).last()
    candles = candles.reset_index()
    return [
        {
            "close": num(c["close"], 4),
            "end_time": ts_utc_space((c["bucket"] + size_ms) / 1000),
            "high": num(c["high"], 4),
            "low": num(c["low"], 4),
            "market_time": "r",  # the simulated market trades regular hours only
            "open": num(c["open"], 4),
            "start_time": ts_utc_space(c["bucket"] / 1000),
            "total_volume": int(c["total_volume"]),
            "volume": int(c["volume"]),
        }
        for c in reversed(candles.to_dict("records"))
    ]


def _daily_candles(market: Market, ticker: str, start: dt.date, end: dt.date, size: str, now: float) -> list[Payload]:
    """1d / 1w candles (no start/end time; a week is dated by its ISO Monday), newest first; closed sessions only."""
    daily = market.daily_bars(ticker, start, end, adjusted=False)
    daily = daily[[_closed(d, now) for d in daily["day"]]] if not daily.empty else daily
    if daily.empty:
        return []
    if size == "1w":
        monday = [d - dt.timedelta(days=d.weekday()) for d in daily["day"]]
        daily = roll_up(daily, pd.Series(monday, name="day")).reset_index()
    return [
        {
            "close": num(c["close"], 4),
            "date": c["day"].isoformat(),
            "end_time": None,
            "high": num(c["high"], 4),
            "low": num(c["low"], 4),
            "market_time": "r",
            "open": num(c["open"], 4),
            "start_time": None,
            "total_volume": int(c["volume"]),
            "volume": int(c["volume"]),
        }
        for c in reversed(daily.to_dict("records"))
    ]


__all__ = [
    "CLIENT_API_ID",
    "DEFAULT_PLAN",
    "SIDE_FIELDS",
    "QuotaBook",
    "QuotaState",
    "UWPlan",
    "UWServer",
    "quota_day",
    "uw_error",
    "uw_server",
]
