"""Seeded ground truth for the Unusual Whales simulator, generated on demand and consistent with the market.

Everything derives from ``(market.seed, kind, symbol, day)`` so the same seed gives the same data whatever a test asks
first, and nothing is stored. Prices are *raw* (as traded on the day), as UW reports them, and come from
:class:`~ingestion.simulators.market.Market` minute bars, so an alert's ``underlying_price`` is a price the stock really
printed in the simulated market.

Flow alerts are published through each session at realistic rates (:meth:`UWTruth.alert_rate`, U-shaped through the
day), each at its ``created_at``, which the server treats as the instant it becomes visible; a tenth are published
minutes after their trades (:data:`LATE_ALERT_SHARE`). A poller whose windows overlap sees an alert again on every
poll that covers it, as with the vendor.

Relations that hold exactly (tests check each one):

* **Flow alerts inside the options volume.** A day's option flow is background flow per minute plus the flow of the
  day's alerts, added to the minute of each alert's ``created_at``. Hence, per symbol, day and side (call/put):
  ``sum(alert.total_premium) <= call_premium``, ``sum(alert ask-side premium) <= call_premium_ask_side``,
  ``sum(alert.total_size) <= call_volume``, and the same per expiry against the flow-recent rows.
* **Ticks sum to the day.** ``sum`` over the day's net-prem ticks of each volume and net premium equals the
  options-volume row of the day; ``sum`` over the day's flow-recent (per-expiry) rows equals it too.
* **Market tide = universe net flow.** Each tide value is the cumulative (since the open) sum, over every symbol of the
  universe, of the net-prem ticks up to the end of its interval.
* **Dark pool prints** of a regular-hours minute are priced inside that minute bar's ``[low, high]``; ``volume`` is
  the stock's cumulative volume up to that minute.
* **Insider filings** are filed on or after the transaction date (``filed_at`` is the instant the filing became
  public, New York evening of ``filing_date``); ``amount < 0`` is a disposal (codes S, F).
* **ETF flows** carry the day's raw close and volume from the market's daily bars.

Units: money is whole US dollars (an option price has cents, a contract is 100 shares, so ``price_cents`` is also the
premium of one contract in dollars); times are epoch microseconds (alerts), milliseconds (minutes) or seconds
(prints, filings), UTC, as each field's name says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from ingestion import calendar
from ingestion.simulators.market import ETFS, Market, _seed

RULES: tuple[str, ...] = (
    "RepeatedHits", "RepeatedHitsAscendingFill", "RepeatedHitsDescendingFill", "FloorTradeLargeCap",
    "FloorTradeMidCap", "FloorTradeSmallCap", "OtmEarningsFloor", "LowHistoricVolumeFloor", "SweepsFollowedByFloor",
)  # fmt: skip
_RULE_WEIGHTS = np.array([0.45, 0.15, 0.15, 0.05, 0.03, 0.02, 0.03, 0.05, 0.07])
SECTORS: dict[str, str] = {
    "AAPL": "Technology", "MSFT": "Technology", "NVDA": "Technology", "AMD": "Technology",
    "AMZN": "Consumer Cyclical", "TSLA": "Consumer Cyclical", "META": "Communication Services",
    "GOOGL": "Communication Services", "NFLX": "Communication Services", "JPM": "Financial Services",
}  # fmt: skip
_FIRST_NAMES = ("MARK", "SUSAN", "JAMES", "LINDA", "ROBERT", "KAREN", "DAVID", "LISA", "PAUL", "ANNE", "ERIC", "JOAN")
_LAST_NAMES = ("MILLER", "OKAFOR", "TANAKA", "MORALES", "BERG", "KOWALSKI", "NGUYEN", "HARTLEY", "DUBOIS", "SINGH")
_TITLES = ("CEO", "CFO", "COO", "General Counsel", "Director", "EVP Sales", "Chief Accounting Officer")
_US = 1_000_000
MINUTE_MS = 60_000
LATE_ALERT_SHARE = 0.1
"""Share of alerts published minutes (2 to 15) after their trades rather than within two minutes."""


def uuid_from(*parts: object) -> str:
    """A UUID-4-shaped string derived from ``parts`` (stable across runs, unique per distinct parts)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(spot: float, strike: float, years: float, vol: float, is_call: bool) -> float:
    """Option price per share with zero rates: a premium that moves with the underlying, which is all we need."""
    years = max(years, 1.0 / 365.0)
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if is_call:
        return spot * _norm_cdf(d1) - strike * _norm_cdf(d2)
    return strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def strike_step(spot: float) -> float:
    return 0.5 if spot < 25 else 1.0 if spot < 100 else 2.5 if spot < 250 else 5.0


def occ_symbol(ticker: str, expiry: dt.date, is_call: bool, strike: float) -> str:
    """OCC option symbol: root, YYMMDD, C/P, strike x 1000 on eight digits (``MSFT231222C00375000``)."""
    return f"{ticker}{expiry:%y%m%d}{'C' if is_call else 'P'}{round(strike * 1000):08d}"


def expiries_for(day: dt.date) -> list[dt.date]:
    """Listed expiries an alert of ``day`` can use: the next six Fridays (weeklies) then two more monthlies."""
    friday = day + dt.timedelta(days=(4 - day.weekday()) % 7)
    weeklies = [friday + dt.timedelta(weeks=k) for k in range(6)]
    return [*weeklies, friday + dt.timedelta(weeks=9), friday + dt.timedelta(weeks=13)]


@dataclass(frozen=True)
class FlowAlert:
    """One flow alert. ``created_at_us`` (epoch microseconds UTC) is when UW published it: the event time."""

    id: str
    ticker: str
    created_at_us: int
    start_time_ms: int
    end_time_ms: int
    alert_rule: str
    rule_id: str
    is_call: bool
    expiry: dt.date
    strike: float
    price_cents: int
    bid_cents: int
    ask_cents: int
    underlying_price: float
    total_size: int
    ask_size: int
    bid_size: int
    trade_count: int
    volume: int
    open_interest: int
    iv_start: float
    iv_end: float
    has_sweep: bool
    has_floor: bool
    has_multileg: bool
    all_opening_trades: bool
    issue_type: str
    marketcap: int
    sector: str | None

    @property
    def type(self) -> str:
        return "call" if self.is_call else "put"

    @property
    def option_chain(self) -> str:
        return occ_symbol(self.ticker, self.expiry, self.is_call, self.strike)

    @property
    def total_premium(self) -> int:
        """Dollars: contracts x price per contract (price_cents is dollars per 100-share contract)."""
        return self.total_size * self.price_cents

    @property
    def total_ask_side_prem(self) -> int:
        return self.ask_size * self.price_cents

    @property
    def total_bid_side_prem(self) -> int:
        return self.bid_size * self.price_cents

    @property
    def is_otm(self) -> bool:
        return self.strike > self.underlying_price if self.is_call else self.strike < self.underlying_price

    @property
    def created_at_s(self) -> float:
        return self.created_at_us / _US


@dataclass(frozen=True)
class DarkPoolPrint:
    """An off-exchange print. ``executed_at_s`` is epoch seconds UTC (UW prints whole seconds)."""

    ticker: str
    seq: int
    executed_at_s: int
    trf_executed_at_s: int | None
    price: float
    size: int
    volume: int
    nbbo_bid: float
    nbbo_ask: float
    nbbo_bid_quantity: int
    nbbo_ask_quantity: int
    canceled: bool
    tracking_id: int
    market_center: str
    ext_hour_sold_codes: str | None
    sale_cond_codes: str | None
    trade_code: str | None
    trade_settlement: str

    @property
    def premium(self) -> float:
        return round(self.price * self.size, 2)

    @property
    def key(self) -> tuple[str, int, float, int, int]:
        """What identifies a print (``tracking_id`` alone does not: it is often 0)."""
        return (self.ticker, self.executed_at_s, self.price, self.size, self.seq)


@dataclass(frozen=True)
class InsiderTransaction:
    """A raw (ungrouped) insider transaction. ``filed_at_s`` (epoch seconds UTC) is when it became public."""

    id: str
    ticker: str
    owner_name: str
    officer_title: str | None
    is_director: bool
    is_officer: bool
    is_ten_percent_owner: bool
    is_10b5_1: bool
    transaction_code: str
    formtype: str
    amount: int
    price: float
    transaction_date: dt.date
    filing_date: dt.date
    filed_at_s: int
    shares_owned_before: int
    shares_owned_after: int
    stock_price: float
    sector: str
    marketcap: int
    is_s_p_500: bool


@dataclass(frozen=True)
class InsiderRow:
    """A row as served: one raw transaction (``group=false``) or a group of them (same owner, day and code)."""

    id: str
    ids: tuple[str, ...]
    members: tuple[InsiderTransaction, ...]

    @property
    def first(self) -> InsiderTransaction:
        return self.members[0]

    @property
    def amount(self) -> int:
        return sum(m.amount for m in self.members)

    @property
    def price(self) -> float:
        """Share-weighted average price of the members."""
        shares = sum(abs(m.amount) for m in self.members)
        if shares == 0:
            return self.first.price
        return round(sum(abs(m.amount) * m.price for m in self.members) / shares, 4)

    @property
    def filed_at_s(self) -> int:
        return max(m.filed_at_s for m in self.members)


@dataclass(frozen=True)
class EtfFlow:
    """One day of an ETF's in/outflow: ``change`` in shares, ``close`` and ``volume`` from the daily bar (raw)."""

    date: dt.date
    change: int
    close: float
    volume: int
    is_fomc: bool

    @property
    def change_prem(self) -> float:
        return round(self.change * self.close, 2)


@dataclass(frozen=True)
class TideTick:
    """Cumulative market-wide net premium (dollars) and net volume from the open to ``end_ms`` (epoch ms UTC)."""

    start_ms: int
    end_ms: int
    date: dt.date
    net_call_premium: int
    net_put_premium: int
    net_volume: int


# Per-minute and per-expiry flow columns of one side (call or put).
SIDE_FIELDS = ("vol_ask", "vol_bid", "vol_mid", "prem_ask", "prem_bid", "prem_mid", "trades")


@dataclass(frozen=True)
class DayFlow:
    """All option flow of one symbol on one session.

    ``ticks`` has one row per session minute (``minute_ms`` = window start, epoch ms UTC) and, for ``call_`` and
    ``put_``, the columns of :data:`SIDE_FIELDS` (premiums in dollars). ``by_expiry`` has the same columns per
    expiry plus ``*_otm_vol``, ``*_otm_prem`` and ``*_otm_trades`` (each at most its total).
    """

    symbol: str
    day: dt.date
    alerts: tuple[FlowAlert, ...]
    ticks: pd.DataFrame
    by_expiry: pd.DataFrame
    call_open_interest: int
    put_open_interest: int

    def total(self, column: str) -> int:
        return int(self.ticks[column].sum())

    @cached_property
    def totals(self) -> dict[str, int]:
        return {c: int(self.ticks[c].sum()) for c in self.ticks.columns if c != "minute_ms"}


def side_volume(frame: pd.DataFrame | dict[str, int], side: str) -> int:
    return int(frame[f"{side}_vol_ask"]) + int(frame[f"{side}_vol_bid"]) + int(frame[f"{side}_vol_mid"])


def side_premium(frame: pd.DataFrame | dict[str, int], side: str) -> int:
    return int(frame[f"{side}_prem_ask"]) + int(frame[f"{side}_prem_bid"]) + int(frame[f"{side}_prem_mid"])


class UWTruth:
    """The full truth behind the Unusual Whales simulator for one :class:`Market`.

    Every method is deterministic; results are cached, so asking twice is cheap. Methods ignore the simulated
    clock: they return everything that ever happens. The server applies "only what is public by now".
    """

    _shared: dict[int, UWTruth] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def of(cls, market: Market) -> UWTruth:
        """The truth of ``market``, shared by every server built on that same object (so caches are reused)."""
        with cls._shared_lock:
            truth = cls._shared.get(id(market))
            if truth is None or truth.market is not market:
                truth = cls._shared[id(market)] = cls(market)
            return truth

    def __init__(self, market: Market) -> None:
        self.market = market
        self.seed = market.seed
        self._day_flow = lru_cache(maxsize=4096)(self._make_day_flow)
        self._prints = lru_cache(maxsize=4096)(self._make_prints)
        self._insider_year = lru_cache(maxsize=512)(self._make_insider_year)
        self._etf_year = lru_cache(maxsize=128)(self._make_etf_year)
        self._tide = lru_cache(maxsize=512)(self._make_tide)

    # -- universe ----------------------------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.market.symbols

    def is_session(self, day: dt.date) -> bool:
        return self.market.start <= day <= self.market.last_day and calendar.is_session(day)

    def _rng(self, *parts: object) -> np.random.Generator:
        return np.random.default_rng(_seed(self.seed, "uw", *parts))

    def marketcap(self, symbol: str, close: float) -> int:
        shares = float(self._rng(symbol, "shares").uniform(0.5e9, 16e9))
        return round(close * shares)

    # -- flow --------------------------------------------------------------------------------------------------

    def day_flow(self, symbol: str, day: dt.date) -> DayFlow | None:
        """The option flow of ``symbol`` on ``day``; None for a holiday, a weekend or a symbol not traded."""
        if not self.market.has_symbol(symbol) or not self.is_session(day):
            return None
        return self._day_flow(symbol, day)

    def flow_alerts(self, symbol: str, day: dt.date) -> tuple[FlowAlert, ...]:
        """Alerts of one symbol and session, oldest first."""
        flow = self.day_flow(symbol, day)
        return flow.alerts if flow is not None else ()

    def flow_alerts_between(self, symbols: Iterable[str], start_s: float, end_s: float) -> list[FlowAlert]:
        """Every alert of ``symbols`` with ``start_s <= created_at <= end_s`` (epoch seconds UTC), newest first.

        Both ends are inclusive, as the REST ``newer_than``/``older_than`` filters are.
        """
        first = calendar.new_york_date(pd.Timestamp(start_s, unit="s", tz="UTC"))
        last = calendar.new_york_date(pd.Timestamp(end_s, unit="s", tz="UTC"))
        lo, hi = round(start_s * _US), round(end_s * _US)
        out = [
            a
            for day in self.market.sessions(first, last)
            for s in symbols
            for a in self.flow_alerts(s, day)
            if lo <= a.created_at_us <= hi
        ]
        return sorted(out, key=lambda a: (a.created_at_us, a.id), reverse=True)

    def _make_day_flow(self, symbol: str, day: dt.date) -> DayFlow:
        bars = self.market.minute_bars(symbol, day, adjusted=False)
        minutes = np.asarray(calendar.session_minutes(day).asi8 // 1_000_000, dtype=np.int64)
        rng = self._rng(symbol, day.isoformat(), "flow")
        alerts = self._make_alerts(symbol, day, bars, minutes, rng)
        ticks = self._background_ticks(symbol, bars, minutes, rng)
        expiries = expiries_for(day)
        by_expiry = self._split_by_expiry(ticks, len(expiries), rng)
        # The alerts' own flow, added last so that every alert is inside its minute and its expiry.
        for a in alerts:
            side = "call" if a.is_call else "put"
            row = int((a.created_at_us // 1000 - minutes[0]) // MINUTE_MS)
            erow = expiries.index(a.expiry)
            mid = a.total_size - a.ask_size - a.bid_size
            adds = {
                "vol_ask": a.ask_size,
                "vol_bid": a.bid_size,
                "vol_mid": mid,
                "prem_ask": a.total_ask_side_prem,
                "prem_bid": a.total_bid_side_prem,
                "prem_mid": mid * a.price_cents,
                "trades": a.trade_count,
            }
            for name, value in adds.items():
                ticks[f"{side}_{name}"][row] += value
                by_expiry[f"{side}_{name}"][erow] += value
            if a.is_otm:
                by_expiry[f"{side}_otm_vol"][erow] += a.total_size
                by_expiry[f"{side}_otm_prem"][erow] += a.total_premium
                by_expiry[f"{side}_otm_trades"][erow] += a.trade_count
        oi_base = self._rng(symbol, "oi").uniform(2e5, 4e6)
        call_oi, put_oi = (round(oi_base * f) for f in rng.uniform(0.9, 1.1, 2) * np.array([1.15, 1.0]))
        return DayFlow(
            symbol,
            day,
            tuple(alerts),
            pd.DataFrame(ticks),
            pd.DataFrame({"expiry": expiries, **by_expiry}),
            int(call_oi),
            int(put_oi),
        )

    def alert_rate(self, symbol: str) -> float:
        """Mean flow alerts per session: a few hundred for an index ETF, 60 to 160 for a stock (real UW flow has
        thousands a day across all tickers, the busiest names hundreds)."""
        if symbol in ETFS:
            return 240.0
        return float(self._rng(symbol, "alert-rate").uniform(60, 160))

    def _scale(self, symbol: str) -> float:
        """Average contracts per minute per side: ETFs and mega caps trade far more options."""
        base = float(self._rng(symbol, "activity").uniform(150, 600))
        return base * (4.0 if symbol in ETFS else 1.0)

    def _make_alerts(
        self, symbol: str, day: dt.date, bars: pd.DataFrame, minutes: np.ndarray, rng: np.random.Generator
    ) -> list[FlowAlert]:
        if bars.empty:
            return []
        open_us = int(minutes[0]) * 1000
        close_us = (int(minutes[-1]) + MINUTE_MS) * 1000
        n = int(rng.poisson(self.alert_rate(symbol)))
        # U-shaped through the session, as real flow is: busiest after the open and into the close.
        created = np.sort(open_us + (rng.beta(0.7, 0.7, n) * (close_us - _US - open_us)).astype(np.int64))
        starts = bars["window_start_ms"].to_numpy()
        closes = bars["close"].to_numpy()
        vol = 0.18 if symbol in ETFS else float(self._rng(symbol, "iv").uniform(0.25, 0.7))
        expiries = expiries_for(day)
        etf = symbol in ETFS
        out: list[FlowAlert] = []
        for i, created_us in enumerate(created.tolist()):
            # The underlying is the close of the last bar that ended before the alert (no peek into its minute).
            idx = int(np.searchsorted(starts, created_us // 1000 - MINUTE_MS, side="right")) - 1
            spot = float(closes[idx]) if idx >= 0 else float(bars["open"].iloc[0])
            is_call = bool(rng.random() < 0.55)
            moneyness = abs(rng.normal(0.02, 0.05)) * (1 if rng.random() < 0.8 else -1)
            step = strike_step(spot)
            strike = max(step, round(spot * (1 + moneyness if is_call else 1 - moneyness) / step) * step)
            expiry = expiries[int(rng.choice(len(expiries), p=_expiry_weights(len(expiries))))]
            iv = float(vol * rng.uniform(0.8, 1.4))
            years = ((expiry - day).days + 0.5) / 365.0
            price_cents = max(1, round(black_scholes(spot, strike, years, iv, is_call) * 100))
            size = int(1 + rng.lognormal(5.0, 1.0))
            ask_size = int(rng.binomial(size, rng.beta(3, 1.5)))
            bid_size = int(rng.binomial(size - ask_size, 0.7))
            trade_count = int(rng.integers(1, min(size, 60) + 1))
            rule = RULES[int(rng.choice(len(RULES), p=_RULE_WEIGHTS))]
            oi = int(rng.lognormal(7.0, 1.5))
            # Most alerts are published within two minutes of their trades; some are late by up to a quarter of an
            # hour (the vendor's live capture shows 13 minutes), which is why their event time is created_at.
            late = rng.random() < LATE_ALERT_SHARE
            lag_ms = int(rng.integers(120_000, 900_000)) if late else int(rng.integers(50, 120_000))
            start_ms = max(open_us // 1000, created_us // 1000 - lag_ms)
            out.append(
                FlowAlert(
                    id=uuid_from(self.seed, "alert", symbol, day, i),
                    ticker=symbol,
                    created_at_us=created_us,
                    start_time_ms=start_ms,
                    end_time_ms=min(created_us // 1000, start_ms + int(rng.integers(0, 500))),
                    alert_rule=rule,
                    rule_id=uuid_from("rule", rule),
                    is_call=is_call,
                    expiry=expiry,
                    strike=float(strike),
                    price_cents=price_cents,
                    bid_cents=max(0, price_cents - int(rng.integers(1, 6))),
                    ask_cents=price_cents + int(rng.integers(0, 3)),
                    underlying_price=spot,
                    total_size=size,
                    ask_size=ask_size,
                    bid_size=bid_size,
                    trade_count=trade_count,
                    volume=size + int(rng.lognormal(6.0, 1.2)),
                    open_interest=oi,
                    iv_start=iv,
                    iv_end=iv * float(1 + rng.normal(0, 0.01)),
                    has_sweep=bool(rng.random() < 0.3),
                    has_floor="Floor" in rule,
                    has_multileg=bool(rng.random() < 0.05),
                    all_opening_trades=bool(rng.random() < 0.2),
                    issue_type="ETF" if etf else "Common Stock",
                    marketcap=self.marketcap(symbol, spot),
                    sector=None if etf else SECTORS.get(symbol, "Technology"),
                )
            )
        return out

    def _background_ticks(
        self, symbol: str, bars: pd.DataFrame, minutes: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        n = len(minutes)
        spot = float(bars["close"].median()) if not bars.empty else 100.0
        k = np.arange(n)
        u_shape = 1.0 + 1.5 * np.exp(-k / 20.0) + 1.0 * np.exp(-(n - 1 - k) / 25.0)
        cols: dict[str, np.ndarray] = {"minute_ms": minutes}
        for side, bias in (("call", 1.1), ("put", 0.9)):
            vol = rng.poisson(self._scale(symbol) * bias * u_shape * rng.lognormal(0, 0.4, n)).astype(np.int64)
            ask = rng.binomial(vol, rng.uniform(0.35, 0.55))
            bid = rng.binomial(vol - ask, 0.8)
            mid = vol - ask - bid
            # Average contract value per minute in dollars (= per-share price in cents), around 1.5 % of the spot.
            contract = np.maximum(1, np.round(spot * 1.5 * rng.lognormal(0, 0.3, n))).astype(np.int64)
            cols[f"{side}_vol_ask"], cols[f"{side}_vol_bid"], cols[f"{side}_vol_mid"] = ask, bid, mid
            cols[f"{side}_prem_ask"] = ask * contract
            cols[f"{side}_prem_bid"] = bid * contract
            cols[f"{side}_prem_mid"] = mid * contract
            cols[f"{side}_trades"] = np.where(vol > 0, np.maximum(1, vol // 8), 0).astype(np.int64)
        return cols

    def _split_by_expiry(self, ticks: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        weights = _expiry_weights(n)
        cols: dict[str, np.ndarray] = {}
        for side in ("call", "put"):
            for f in SIDE_FIELDS:
                cols[f"{side}_{f}"] = _split(int(ticks[f"{side}_{f}"].sum()), weights, rng)
            vol = cols[f"{side}_vol_ask"] + cols[f"{side}_vol_bid"] + cols[f"{side}_vol_mid"]
            prem = cols[f"{side}_prem_ask"] + cols[f"{side}_prem_bid"] + cols[f"{side}_prem_mid"]
            share = rng.uniform(0.3, 0.8, n)
            cols[f"{side}_otm_vol"] = np.floor(vol * share).astype(np.int64)
            cols[f"{side}_otm_prem"] = np.floor(prem * share * 0.7).astype(np.int64)
            cols[f"{side}_otm_trades"] = np.floor(cols[f"{side}_trades"] * share).astype(np.int64)
        return cols

    def net_prem_ticks(self, symbol: str, day: dt.date) -> pd.DataFrame:
        """Per-minute ticks: ``minute_ms`` plus the call/put columns of :data:`SIDE_FIELDS`; empty if no session."""
        flow = self.day_flow(symbol, day)
        return flow.ticks if flow is not None else pd.DataFrame()

    def options_volume(self, symbol: str, day: dt.date) -> dict[str, int] | None:
        """Day totals of every tick column (dollars, contracts), plus open interest; None without a session."""
        flow = self.day_flow(symbol, day)
        if flow is None:
            return None
        return {
            **flow.totals,
            "call_open_interest": flow.call_open_interest,
            "put_open_interest": flow.put_open_interest,
        }

    def average_volume(self, symbol: str, day: dt.date, sessions: int, side: str) -> Decimal:
        """Mean daily ``side`` volume (contracts, exact to 12 decimals) over the ``sessions`` sessions ending with
        ``day`` (fewer near the start of the market)."""
        days = [d.date() for d in calendar.sessions(self.market.start, day)][-sessions:]
        values = [side_volume(self._day_flow(symbol, d).totals, side) for d in days]
        return (Decimal(sum(values)) / Decimal(len(values))).quantize(Decimal("1e-12"))

    # -- market tide -------------------------------------------------------------------------------------------

    def market_tide(self, day: dt.date, interval_minutes: int = 5) -> list[TideTick]:
        """Cumulative universe net flow at the end of every ``interval_minutes`` window of the session, oldest first."""
        if not self.is_session(day):
            return []
        return self._tide(day, interval_minutes)

    def _make_tide(self, day: dt.date, interval_minutes: int) -> list[TideTick]:
        net_call = net_put = net_vol = None
        minutes: np.ndarray | None = None
        for s in self.symbols:
            t = self._day_flow(s, day).ticks
            nc = (t["call_prem_ask"] - t["call_prem_bid"]).to_numpy()
            np_ = (t["put_prem_ask"] - t["put_prem_bid"]).to_numpy()
            nv = ((t["call_vol_ask"] - t["call_vol_bid"]) - (t["put_vol_ask"] - t["put_vol_bid"])).to_numpy()
            net_call = nc if net_call is None else net_call + nc
            net_put = np_ if net_put is None else net_put + np_
            net_vol = nv if net_vol is None else net_vol + nv
            minutes = t["minute_ms"].to_numpy()
        assert net_call is not None and net_put is not None and net_vol is not None and minutes is not None
        cum_c, cum_p, cum_v = np.cumsum(net_call), np.cumsum(net_put), np.cumsum(net_vol)
        out = []
        for i in range(0, len(minutes), interval_minutes):
            last = min(i + interval_minutes, len(minutes)) - 1
            out.append(
                TideTick(
                    start_ms=int(minutes[i]),
                    end_ms=int(minutes[last]) + MINUTE_MS,
                    date=day,
                    net_call_premium=int(cum_c[last]),
                    net_put_premium=int(cum_p[last]),
                    net_volume=int(cum_v[last]),
                )
            )
        return out

    # -- dark pool ---------------------------------------------------------------------------------------------

    def darkpool_prints(self, symbol: str, day: dt.date) -> tuple[DarkPoolPrint, ...]:
        """Off-exchange prints of one symbol and session, oldest first (extended hours up to 20:00 New York)."""
        if not self.market.has_symbol(symbol) or not self.is_session(day):
            return ()
        return self._prints(symbol, day)

    def _make_prints(self, symbol: str, day: dt.date) -> tuple[DarkPoolPrint, ...]:
        bars = self.market.minute_bars(symbol, day, adjusted=False)
        if bars.empty:
            return ()
        rng = self._rng(symbol, day.isoformat(), "darkpool")
        close_ts = calendar.session_close(day)
        open_s = _ms(calendar.session_open(day)) // 1000
        close_s = _ms(close_ts) // 1000
        n = int(rng.poisson(80 if symbol in ETFS else 40))
        late = rng.random(n) < 0.08
        times = np.where(
            late,
            rng.integers(close_s, close_s + 4 * 3600, n),  # after the close, until 20:00 New York
            rng.integers(open_s, close_s, n),
        )
        order = np.argsort(times, kind="stable")
        starts = bars["window_start_ms"].to_numpy()
        cum_volume = np.cumsum(bars["volume"].to_numpy())
        last_close = float(bars["close"].iloc[-1])
        out: list[DarkPoolPrint] = []
        for seq, j in enumerate(order.tolist()):
            t = int(times[j])
            idx = max(0, int(np.searchsorted(starts, t * 1000, side="right")) - 1)
            if late[j]:
                price = round(last_close * float(rng.uniform(0.998, 1.002)), 4)
            else:
                price = round(float(rng.uniform(bars["low"].iloc[idx], bars["high"].iloc[idx])), 4)
            size = int(100 * max(1, round(rng.lognormal(3.0, 1.0))))
            has_trf = bool(rng.random() < 0.6)
            out.append(
                DarkPoolPrint(
                    ticker=symbol,
                    seq=seq,
                    executed_at_s=t,
                    trf_executed_at_s=t - int(rng.integers(0, 3)) if has_trf else None,
                    price=price,
                    size=size,
                    volume=int(cum_volume[idx]),
                    nbbo_bid=round(math.floor(price * 100) / 100 - 0.01 * int(rng.integers(0, 3)), 2),
                    nbbo_ask=round(math.ceil(price * 100) / 100 + 0.01 * int(rng.integers(0, 3)), 2),
                    nbbo_bid_quantity=100 * int(rng.integers(1, 300)),
                    nbbo_ask_quantity=100 * int(rng.integers(1, 300)),
                    canceled=bool(rng.random() < 0.02),
                    tracking_id=0 if rng.random() < 0.15 else int(rng.integers(7 * 10**13, 8 * 10**13)),
                    market_center="L" if rng.random() < 0.8 else "D",
                    ext_hour_sold_codes="extended_hours_trade" if late[j] else None,
                    sale_cond_codes="average_price_trade" if rng.random() < 0.03 else None,
                    trade_code="derivative_priced" if rng.random() < 0.03 else None,
                    trade_settlement="regular",
                )
            )
        return tuple(out)

    # -- insider transactions ----------------------------------------------------------------------------------

    def insider_transactions(self, start: dt.date, end: dt.date) -> list[InsiderTransaction]:
        """Raw transactions of the universe's stocks whose transaction date lies in ``[start, end]``."""
        out: list[InsiderTransaction] = []
        for year in range(max(start.year, self.market.start.year), min(end.year, self.market.last_day.year) + 1):
            for symbol in self.symbols:
                if symbol in ETFS:
                    continue
                out.extend(t for t in self._insider_year(symbol, year) if start <= t.transaction_date <= end)
        return out

    def insider_rows(self, start: dt.date, end: dt.date, group: bool = True) -> list[InsiderRow]:
        """Rows as the endpoint serves them, newest filing first (ties by id): raw, or grouped by owner, day, code."""
        raw = self.insider_transactions(start, end)
        if group:
            groups: dict[tuple[str, str, dt.date, str], list[InsiderTransaction]] = {}
            for t in raw:
                groups.setdefault((t.ticker, t.owner_name, t.transaction_date, t.transaction_code), []).append(t)
            rows = [
                InsiderRow(uuid_from(self.seed, "insider-group", *key), tuple(m.id for m in members), tuple(members))
                for key, members in groups.items()
            ]
        else:
            rows = [InsiderRow(t.id, (t.id,), (t,)) for t in raw]
        rows.sort(key=lambda r: (-r.filed_at_s, r.id))
        return rows

    def _make_insider_year(self, symbol: str, year: int) -> tuple[InsiderTransaction, ...]:
        first = max(dt.date(year, 1, 1), self.market.start)
        last = min(dt.date(year, 12, 31), self.market.last_day)
        daily = self.market.daily_bars(symbol, first, last, adjusted=False)
        if daily.empty:
            return ()
        rng = self._rng(symbol, year, "insider")
        owners_rng = self._rng(symbol, "owners")
        owners = [
            (
                f"{_LAST_NAMES[int(owners_rng.integers(len(_LAST_NAMES)))]} "
                f"{_FIRST_NAMES[int(owners_rng.integers(len(_FIRST_NAMES)))]}",
                _TITLES[k % len(_TITLES)],
                int(owners_rng.integers(50_000, 5_000_000)),
            )
            for k in range(6)
        ]
        days = list(daily["day"])
        out: list[InsiderTransaction] = []
        for event in range(int(rng.poisson(18 * len(days) / 252))):
            owner, title, holding = owners[int(rng.integers(len(owners)))]
            i = int(rng.integers(len(days)))
            day, close = days[i], float(daily["close"].iloc[i])
            code = str(rng.choice(["S", "P", "A", "M", "F"], p=[0.5, 0.1, 0.15, 0.1, 0.15]))
            formtype = "144" if code == "S" and rng.random() < 0.3 else "4"
            lag = 0 if formtype == "144" else int(rng.integers(0, 3))  # Form 4 is due within two business days
            filing_date = (pd.Timestamp(day) + pd.offsets.BDay(lag)).date()
            filed_ny = pd.Timestamp(filing_date).tz_localize(calendar.NEW_YORK) + pd.Timedelta(
                seconds=int(rng.integers(16 * 3600, 22 * 3600))
            )
            filed_at_s = _ms(filed_ny.tz_convert("UTC")) // 1000
            director = title == "Director"
            for leg in range(int(rng.integers(1, 4))):
                shares = int(rng.integers(1, 400)) * 100
                amount = -shares if code in ("S", "F") else shares
                before = holding + shares
                out.append(
                    InsiderTransaction(
                        id=uuid_from(self.seed, "insider", symbol, year, event, leg),
                        ticker=symbol,
                        owner_name=owner,
                        officer_title=None if director else title,
                        is_director=director,
                        is_officer=not director,
                        is_ten_percent_owner=bool(rng.random() < 0.05),
                        is_10b5_1=bool(code == "S" and rng.random() < 0.6),
                        transaction_code=code,
                        formtype=formtype,
                        amount=amount,
                        price=0.0 if code == "A" else round(close * float(rng.uniform(0.99, 1.01)), 2),
                        transaction_date=day,
                        filing_date=filing_date,
                        filed_at_s=int(filed_at_s),
                        shares_owned_before=before,
                        shares_owned_after=before + amount,
                        stock_price=close,
                        sector=SECTORS.get(symbol, "Technology"),
                        marketcap=self.marketcap(symbol, close),
                        is_s_p_500=True,
                    )
                )
        return tuple(out)

    # -- ETF flows ---------------------------------------------------------------------------------------------

    def etf_flows(self, symbol: str, start: dt.date, end: dt.date) -> list[EtfFlow]:
        """Daily in/outflow of an ETF over ``[start, end]``, oldest first; empty for a stock."""
        if symbol not in ETFS or not self.market.has_symbol(symbol):
            return []
        out: list[EtfFlow] = []
        for year in range(max(start.year, self.market.start.year), min(end.year, self.market.last_day.year) + 1):
            out.extend(f for f in self._etf_year(symbol, year) if start <= f.date <= end)
        return out

    def _make_etf_year(self, symbol: str, year: int) -> tuple[EtfFlow, ...]:
        daily = self.market.daily_bars(symbol, dt.date(year, 1, 1), dt.date(year, 12, 31), adjusted=False)
        rng = self._rng(symbol, year, "etf-flow")
        # Eight FOMC decision days a year (seeded Wednesdays, not the real schedule).
        wednesdays = [d for d in daily["day"] if d.weekday() == 2]
        fomc = set(rng.choice(np.array(wednesdays, dtype=object), size=min(8, len(wednesdays)), replace=False))
        return tuple(
            EtfFlow(
                date=day,
                change=int(round(rng.normal(0, vol * 0.002) / 50) * 50),
                close=float(close),
                volume=int(vol),
                is_fomc=day in fomc,
            )
            for day, close, vol in zip(daily["day"], daily["close"], daily["volume"], strict=True)
        )


def _expiry_weights(n: int) -> np.ndarray:
    w = 0.6 ** np.arange(n)
    return np.asarray(w / w.sum(), dtype=np.float64)


def _split(total: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split a non-negative integer into parts that sum to it exactly, roughly in proportion to ``weights``."""
    jitter = weights * rng.uniform(0.7, 1.3, len(weights))
    raw = total * jitter / jitter.sum()
    parts: np.ndarray = np.floor(raw).astype(np.int64)
    rest = total - int(parts.sum())
    parts[np.argsort(raw - parts)[::-1][:rest]] += 1
    return parts
