"""Seeded, deterministic ground truth for the simulators: minute bars, daily bars, splits, dividends and trades.

Nothing is stored: every value is generated on demand from ``(seed, symbol, year)`` and cached per block, so the same
seed always gives the same market, whatever range a test asks for first and whatever its clock says. The data is
consistent across endpoints by construction:

* a symbol's price path is generated minute by minute over the regular session of every NYSE trading day (the
  calendar in :mod:`ingestion.calendar`); a minute with no trade has **no bar**, as with the real vendor;
* daily bars aggregate the minute bars exactly (first open, max high, min low, last close, summed volume and trade
  count, volume-weighted vwap);
* trades synthesised for a minute reproduce that minute's open, high, low, close, volume and trade count exactly
  (the bar's ``vw`` is a formula of the bar, not of the trades; see :func:`minute_trades`);
* bars are generated **as traded** (raw): a split divides the price and multiplies the share volume on its ex-date,
  a cash dividend lowers the price by its amount on its ex-date. Volume follows a per-symbol level that is continuous
  in split-adjusted shares (no jump at a year boundary); raw volume is that level divided by the ratios of later
  splits, so raw volume jumps by the ratio at a split exactly as real volume does;
* ``adjusted=True`` divides prices (and multiplies volumes) by the ratios of later splits **executed by the market's
  clock** (:attr:`Market.last_day`): what the vendor knew that day. Dividends never adjust.

Renamed and delisted tickers (:mod:`ingestion.simulators.reference_truth`): prices are generated per security,
named by its latest ticker (META's whole history, also while it traded as FB); a delisted security (TWTR) is in
:meth:`Market.has_symbol` but not in ``symbols`` and has no bar after its last session. The Polygon simulator serves
each session under the ticker it traded as.

The clock: ``as_of`` (or :meth:`Market.set_as_of` on a running simulator) hides every session after it and every
corporate action announced after it. Generation never depends on the clock, so moving it changes what is served,
never the values of what was already served.

Times: ``window_start_ms`` is epoch milliseconds UTC at the **start** of a bar's window; trade times are epoch
nanoseconds UTC. Daily bars are stamped, like Polygon's, at New York midnight of the session date.

The simulators import this module and the calendar, never the clients: a bug cannot hide by being the same on both
sides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from ingestion import calendar
from ingestion.simulators.corporate_actions import (
    SPLITS,
    DividendRecord,
    SplitRecord,
    Splits,
    default_dividends,
    split_factor,
    split_records,
)
from ingestion.simulators.reference_truth import DEFAULT_REFERENCE, ReferenceTruth
from ingestion.simulators.rollup import roll_up
from ingestion.simulators.universe import Universe, synthetic_names

__all__ = ["SPLITS", "DividendRecord", "Market", "SplitRecord", "Trades", "minute_trades"]

DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "TSLA", "AMD", "JPM", "NFLX",
    "SPY", "QQQ", "IWM", "XLF",
)  # fmt: skip
ETFS = frozenset({"SPY", "QQQ", "IWM", "XLF"})
DEFAULT_START = dt.date(2020, 1, 2)

MINUTE_COLUMNS = ("window_start_ms", "open", "high", "low", "close", "volume", "vwap", "transactions")


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _as_day(value: dt.date | str | None) -> dt.date | None:
    return None if value is None else calendar.as_date(value)


@dataclass(frozen=True)
class Market:
    """The simulated market: a universe of symbols over a range of sessions, from one seed.

    ``end`` defaults to today (New York), so by default every session from 2020-01-02 to today exists. ``as_of`` is
    the market's clock (None: no clock): only sessions up to it exist and only corporate actions announced by then
    are known. :meth:`set_as_of` moves it, thread-safely, while simulators serve the market.

    ``splits`` maps a symbol to its ``(ex-date, ratio)`` splits; ``dividends`` maps a symbol to its cash dividends
    (None: the default quarterly payers). ``extra_split_records`` / ``extra_dividend_records`` are bad vendor records
    (a duplicate, a ratio of 0, a weekend ex-date) the reference endpoints serve beside the truth; they never move
    prices.
    """

    seed: int = 7
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start: dt.date = DEFAULT_START
    end: dt.date | None = None
    splits: dict[str, Splits] = field(default_factory=lambda: dict(SPLITS))
    dividends: dict[str, tuple[DividendRecord, ...]] | None = None
    as_of: dt.date | None = None
    extra_split_records: list[SplitRecord] = field(default_factory=list)
    extra_dividend_records: list[DividendRecord] = field(default_factory=list)
    # Ticker changes and delistings (FB -> META, TWTR delisted): which ticker the vendor serves each session under.
    reference: ReferenceTruth = DEFAULT_REFERENCE
    # Synthetic daily-only tickers after the real ones, up to this many symbols in all (ingestion.simulators.universe).
    universe_size: int | None = None
    _universe: Universe | None = field(default=None, init=False, repr=False, compare=False)
    _clock_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "as_of", _as_day(self.as_of))
        if self.universe_size is not None:
            self._widen(self.universe_size)

    def _widen(self, size: int) -> None:
        """List ``size`` symbols: the real ones, then synthetic ones named clear of every real or former ticker."""
        if size < len(self.symbols):
            raise ValueError(f"universe_size {size} is below the {len(self.symbols)} real symbols")
        taken = frozenset((*self.symbols, *self.reference.delisted_securities, *self.reference.old_tickers))
        names = synthetic_names(self.seed, size - len(self.symbols), taken)
        object.__setattr__(self, "_universe", Universe(self.seed, self.start, names))
        object.__setattr__(self, "symbols", (*self.symbols, *names))

    @property
    def universe(self) -> Universe | None:
        """The synthetic tickers and their daily bars (None without ``universe_size``)."""
        return self._universe

    def is_synthetic(self, symbol: str) -> bool:
        """A synthetic ticker of ``universe_size``: daily bars only (no minutes, trades, splits or dividends)."""
        return self._universe is not None and symbol in self._universe

    def set_as_of(self, day: dt.date | str | None) -> None:
        """Move the clock (None removes it). A running simulator sees the new date on its next request."""
        with self._clock_lock:
            # The dataclass is frozen for its definition; the clock is the one field meant to move.
            object.__setattr__(self, "as_of", _as_day(day))

    @property
    def last_day(self) -> dt.date:
        """The market's today: ``end`` (else today in New York), never past the clock."""
        last: dt.date = self.end if self.end is not None else pd.Timestamp.now(tz=calendar.NEW_YORK).date()
        as_of = self.as_of
        return last if as_of is None else min(last, as_of)

    def has_symbol(self, symbol: str) -> bool:
        """Whether the market generates ``symbol``: a current security, or a delisted one (with its history)."""
        return symbol in self.symbols or symbol in self.reference.delisted_securities

    def _last_day_of(self, symbol: str) -> dt.date:
        """The last day ``symbol`` has bars: its last session when delisted, else the market's today."""
        gone = self.reference.last_session(symbol)
        return self.last_day if gone is None else min(gone, self.last_day)

    def sessions(self, start: dt.date | str | None = None, end: dt.date | str | None = None) -> list[dt.date]:
        """Trading days of the market within ``[start, end]`` (clipped to the market's own range and clock)."""
        first = max(pd.Timestamp(start or self.start).date(), self.start)
        last = min(pd.Timestamp(end or self.last_day).date(), self.last_day)
        return [d.date() for d in calendar.sessions(first, last)]

    # -- corporate actions -------------------------------------------------------------------------------------

    def split_records(self, symbol: str) -> tuple[SplitRecord, ...]:
        """Every split of ``symbol`` (the truth, ignoring the clock), in execution order."""
        return split_records(symbol, self._splits(symbol))

    def dividend_records(self, symbol: str) -> tuple[DividendRecord, ...]:
        """Every cash dividend of ``symbol`` (the truth, ignoring the clock), in ex-date order."""
        if self.dividends is not None:
            return tuple(sorted(self.dividends.get(symbol, ()), key=lambda r: r.ex_dividend_date))
        return default_dividends(symbol, self.start, _dividend_horizon(), self._splits(symbol))

    def split_factor(self, symbol: str, days: pd.Series, known: bool = True) -> np.ndarray:
        """Per day, the product of the ratios of later splits: raw price / factor = adjusted price.

        ``known=True`` counts only splits executed by the clock (:attr:`last_day`), as ``adjusted=true`` does;
        ``known=False`` counts every split of the truth (raw shares on that day = today's shares / factor).
        """
        splits = self._splits(symbol)
        known_by = self.last_day if known else None
        values = np.asarray(days.to_numpy(), dtype=object)
        return np.array([split_factor(splits, d, known_by) for d in values], dtype=np.int64)

    def _splits(self, symbol: str) -> Splits:
        return tuple(sorted(self.splits.get(symbol, ())))

    # -- minute bars -------------------------------------------------------------------------------------------

    def minute_bars(self, symbol: str, day: dt.date | str, adjusted: bool = True) -> pd.DataFrame:
        """Minute bars of one session (regular hours), columns :data:`MINUTE_COLUMNS`; empty if no session."""
        if self.is_synthetic(symbol):
            return _empty_minutes()
        day = calendar.as_date(day)
        if not self.has_symbol(symbol) or day < self.start or day > self._last_day_of(symbol):
            return _empty_minutes()
        if not calendar.is_session(day):
            return _empty_minutes()
        block = self._year_block(symbol, day.year)
        bars = block[block["day"] == day]
        return self._present(symbol, bars, adjusted)

    def minute_bars_range(self, symbol: str, start_ms: int, end_ms: int, adjusted: bool = True) -> pd.DataFrame:
        """Minute bars whose window start lies in ``[start_ms, end_ms]`` (epoch ms UTC)."""
        if self.is_synthetic(symbol):
            return _empty_minutes()
        if not self.has_symbol(symbol):
            return _empty_minutes()
        first = pd.Timestamp(start_ms, unit="ms", tz="UTC").tz_convert(calendar.NEW_YORK).date()
        last = pd.Timestamp(end_ms, unit="ms", tz="UTC").tz_convert(calendar.NEW_YORK).date()
        first, last = max(first, self.start), min(last, self._last_day_of(symbol))
        frames = []
        for year in range(first.year, last.year + 1):
            block = self._year_block(symbol, year)
            in_range = (block["window_start_ms"] >= start_ms) & (block["window_start_ms"] <= end_ms)
            frames.append(block[in_range & (block["day"] <= last)])
        if not frames:
            return _empty_minutes()
        return self._present(symbol, pd.concat(frames, ignore_index=True), adjusted)

    # -- daily bars --------------------------------------------------------------------------------------------

    def daily_bars(self, symbol: str, start: dt.date | str, end: dt.date | str, adjusted: bool = True) -> pd.DataFrame:
        """Daily bars of every session in ``[start, end]``: columns :data:`MINUTE_COLUMNS` plus ``day``.

        ``window_start_ms`` is New York midnight of the session, as Polygon stamps daily bars.
        """
        if self._universe is not None and symbol in self._universe:
            lo, hi = max(pd.Timestamp(start).date(), self.start), min(pd.Timestamp(end).date(), self.last_day)
            return self._universe.daily(symbol, lo, hi)
        first = max(pd.Timestamp(start).date(), self.start)
        if not self.has_symbol(symbol):
            return _empty_daily()
        last = min(pd.Timestamp(end).date(), self._last_day_of(symbol))
        if last < first:
            return _empty_daily()
        frames = [self._daily_block(symbol, y) for y in range(first.year, last.year + 1)]
        daily = pd.concat(frames, ignore_index=True)
        daily = daily[(daily["day"] >= first) & (daily["day"] <= last)].reset_index(drop=True)
        return self._present(symbol, daily, adjusted)

    def _present(self, symbol: str, bars: pd.DataFrame, adjusted: bool) -> pd.DataFrame:
        out = bars.reset_index(drop=True).copy()
        if adjusted and self._splits(symbol):
            factor = self.split_factor(symbol, out["day"])
            for col in ("open", "high", "low", "close", "vwap"):
                out[col] = np.round(out[col].to_numpy() / factor, 4)
            out["volume"] = out["volume"].to_numpy() * factor
        return out

    # -- generation --------------------------------------------------------------------------------------------

    def _actions(self, symbol: str) -> tuple[Splits, _Cash]:
        cash = tuple((r.ex_dividend_date, r.cash_amount) for r in self.dividend_records(symbol))
        return self._splits(symbol), cash

    def _year_block(self, symbol: str, year: int) -> pd.DataFrame:
        return _year_block(self.seed, symbol, year, self.start, *self._actions(symbol))

    def _daily_block(self, symbol: str, year: int) -> pd.DataFrame:
        return _daily_block(self.seed, symbol, year, self.start, *self._actions(symbol))


def _dividend_horizon() -> dt.date:
    """The last ex-date of the default dividends: announced ones reach a quarter or so past today, inside the
    calendar's horizon (a year ahead)."""
    return dt.date.today() + dt.timedelta(days=330)


def _empty_minutes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": pd.Series([], dtype=object),
            "window_start_ms": pd.Series([], dtype="int64"),
            **{c: pd.Series([], dtype="float64") for c in ("open", "high", "low", "close", "volume", "vwap")},
            "transactions": pd.Series([], dtype="int64"),
        }
    )


def _empty_daily() -> pd.DataFrame:
    return _empty_minutes()


_Cash = tuple[tuple[dt.date, float], ...]
"""A symbol's cash dividends as ``(ex-date, amount per share as traded)``."""


def _base_price(seed: int, symbol: str) -> float:
    rng = np.random.default_rng(_seed(seed, symbol, "base"))
    return float(np.round(rng.uniform(40, 400), 2))


@lru_cache(maxsize=256)
def _last_raw_close(seed: int, symbol: str, year: int, start: dt.date, splits: Splits, cash: _Cash) -> float:
    if year <= start.year:
        # The base is an adjusted-era price; the raw price before later splits is higher by their ratios.
        return _base_price(seed, symbol) * split_factor(splits, dt.date.min)
    prev = _year_block(seed, symbol, year - 1, start, splits, cash)
    if prev.empty:
        return _last_raw_close(seed, symbol, year - 1, start, splits, cash)
    return float(prev["close"].iloc[-1])


class _Style:
    """Per-symbol constants of the generator (the same every year, so nothing jumps at a year boundary)."""

    def __init__(self, seed: int, symbol: str) -> None:
        rng = np.random.default_rng(_seed(seed, symbol, "style"))
        self.annual_vol = 0.18 if symbol in ETFS else float(rng.uniform(0.25, 0.55))
        # Minute volume level in split-adjusted (today's) shares, and a slow seasonal swing of it.
        self.base_volume = float(rng.uniform(5_000, 40_000))
        self.periods = rng.uniform(40.0, 400.0, 3)
        self.phases = rng.uniform(0.0, 2 * np.pi, 3)
        self.liquidity = 0.001 if symbol in ETFS or symbol in DEFAULT_SYMBOLS[:8] else 0.01

    def volume_level(self, days: list[dt.date], noise: np.ndarray) -> np.ndarray:
        """Per day, the minute volume level in split-adjusted shares: a smooth function of the date times a daily
        lognormal shock, so it is continuous across years whatever block generates it."""
        ordinal = np.array([d.toordinal() for d in days], dtype=np.float64)
        swing = sum(0.12 * np.sin(2 * np.pi * ordinal / p + f) for p, f in zip(self.periods, self.phases, strict=True))
        return np.asarray(self.base_volume * np.exp(swing) * noise, dtype=np.float64)


@lru_cache(maxsize=256)
def _year_block(seed: int, symbol: str, year: int, start: dt.date, splits: Splits, cash: _Cash) -> pd.DataFrame:
    """Raw (as traded) minute bars of one symbol for one whole calendar year (from ``start`` in its first year)."""
    first = max(dt.date(year, 1, 1), start)
    last = dt.date(year, 12, 31)
    days = [d.date() for d in calendar.sessions(first, last)] if first <= last else []
    if not days:
        return _empty_minutes()
    style = _Style(seed, symbol)
    rng = np.random.default_rng(_seed(seed, symbol, year))
    window_start, day_idx = calendar.session_minute_starts_ms(days)
    n = len(window_start)
    is_first = np.r_[True, day_idx[1:] != day_idx[:-1]]

    # Log returns: minute noise plus an overnight gap at each session's first minute.
    sigma = style.annual_vol / np.sqrt(252 * 390)
    returns = rng.normal(0.0, sigma, n)
    returns[is_first] += rng.normal(0.0, style.annual_vol / np.sqrt(252) * 0.3, int(is_first.sum()))
    # A stock split divides the raw price on its ex-date's first minute.
    day_values = np.array(days, dtype=object)
    for ex_date, ratio in splits:
        hits = np.flatnonzero(is_first & (day_values[day_idx] == ex_date))
        returns[hits] -= np.log(ratio)

    # Minutes with no trade: no bar, and no price change.
    traded = rng.random(n) >= style.liquidity
    traded[is_first] = True
    returns[~traded & ~is_first] = 0.0

    base = _last_raw_close(seed, symbol, year, start, splits, cash)
    close_path: np.ndarray = np.asarray(base * np.exp(np.cumsum(returns)), dtype=np.float64)
    # A cash dividend lowers the price by its amount at the ex-date's open (relative to the previous close).
    for ex_date, amount in cash:
        hits = np.flatnonzero(is_first & (day_values[day_idx] == ex_date))
        for k in hits:
            previous = close_path[k - 1] if k > 0 else base
            close_path[k:] *= max(1.0 - amount / previous, 0.5)
    open_path = np.r_[base, close_path[:-1]]
    # The first minute of a day opens at the gapped price, not at yesterday's close.
    open_path[is_first] = close_path[is_first] * np.exp(-rng.normal(0.0, sigma, int(is_first.sum())))
    close = np.asarray(np.round(close_path, 2), dtype=np.float64)
    open_ = np.asarray(np.round(open_path, 2), dtype=np.float64)
    wiggle = np.abs(rng.normal(0.0, sigma * 0.8, (2, n)))
    high = np.maximum(np.round(np.maximum(open_path, close_path) * np.exp(wiggle[0]), 2), np.maximum(open_, close))
    low = np.minimum(np.round(np.minimum(open_path, close_path) * np.exp(-wiggle[1]), 2), np.minimum(open_, close))
    low = np.maximum(low, 0.01)

    # U-shaped intraday volume around a daily level that is continuous in split-adjusted shares; raw (as traded)
    # shares before a split are fewer by its ratio, as real volume is.
    minute_of_day = np.arange(n) - np.maximum.accumulate(np.where(is_first, np.arange(n), 0))
    u_shape = 1.0 + 1.5 * np.exp(-minute_of_day / 20.0) + 1.0 * np.exp(-(389 - minute_of_day) / 25.0)
    level = style.volume_level(days, rng.lognormal(0.0, 0.2, len(days)))
    later = np.array([split_factor(splits, d) for d in days], dtype=np.float64)
    shares = (level / later)[day_idx] * u_shape * rng.lognormal(0.0, 0.5, n)
    volume = np.maximum(1, np.round(shares)).astype(np.int64)
    transactions = np.maximum(1, np.minimum(volume, np.round(volume / rng.uniform(80, 400)))).astype(np.int64)
    # With fewer than four trades there is no room for a separate high and low print between open and close.
    thin = transactions < 4
    high[thin] = np.maximum(open_, close)[thin]
    low[thin] = np.minimum(open_, close)[thin]
    vwap = np.round((open_ + high + low + 2 * close) / 5.0, 4)

    keep = traded
    frame = pd.DataFrame(
        {
            "day": day_values[day_idx[keep]],
            "window_start_ms": window_start[keep],
            "open": open_[keep],
            "high": high[keep],
            "low": low[keep],
            "close": close[keep],
            "volume": volume[keep].astype(np.float64),
            "vwap": vwap[keep],
            "transactions": transactions[keep],
        }
    )
    return frame


@lru_cache(maxsize=256)
def _daily_block(seed: int, symbol: str, year: int, start: dt.date, splits: Splits, cash: _Cash) -> pd.DataFrame:
    """Raw daily bars aggregated from the year's minute bars."""
    minutes = _year_block(seed, symbol, year, start, splits, cash)
    if minutes.empty:
        return _empty_daily()
    daily = roll_up(minutes, minutes["day"]).reset_index()
    midnight = pd.to_datetime(daily["day"]).dt.tz_localize(calendar.NEW_YORK)
    daily.insert(1, "window_start_ms", midnight.dt.tz_convert("UTC").astype("int64") // 1_000_000)
    return daily


@dataclass(frozen=True)
class Trades:
    """Trades of one minute, in SIP-time order. Times are epoch nanoseconds UTC."""

    sip_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    exchange: np.ndarray
    trade_id: list[str]
    sequence: np.ndarray

    def __len__(self) -> int:
        return len(self.sip_ns)


def minute_trades(market: Market, symbol: str, bar: pd.Series, adjusted: bool = False) -> Trades:
    """Synthesise the trades of one minute bar so they reproduce its open, high, low, close, volume and count.

    ``bar`` is a row of :meth:`Market.minute_bars` (raw prices when ``adjusted`` is False, as the live feed sends).
    The first trade prints the open and the last the close; the high and the low each print once in between; sizes
    are positive integers summing to the volume.
    """
    start_ms = int(bar["window_start_ms"])
    n = int(bar["transactions"])
    volume = round(float(bar["volume"]))
    rng = np.random.default_rng(_seed(market.seed, symbol, start_ms, "trades"))
    offsets = np.sort(rng.choice(60_000_000_000 - 1, size=n, replace=False)) + 1
    sip_ns = start_ms * 1_000_000 + offsets
    o, h, lo, c = (float(bar[k]) for k in ("open", "high", "low", "close"))
    price = np.round(rng.uniform(lo, h, n), 2) if n > 0 else np.zeros(0)
    price = np.clip(price, lo, h)
    price[0] = o
    if n > 1:
        price[-1] = c
    # Place the high and the low on interior trades when there are any, else on the ends that already match.
    interior = list(range(1, n - 1))
    rng.shuffle(interior)
    if h not in (price[0], price[-1]) and interior:
        price[interior.pop()] = h
    if lo not in (price[0], price[-1]) and interior:
        price[interior.pop()] = lo
    cuts = np.sort(rng.choice(np.arange(1, volume), size=n - 1, replace=False)) if n > 1 else np.zeros(0, int)
    size = np.diff(np.r_[0, cuts, volume]).astype(np.int64)
    exchange = rng.choice(np.array([4, 8, 10, 11, 12, 15, 19]), size=n)
    day_seq = (start_ms // 60_000) * 10_000
    sequence = day_seq + np.arange(n, dtype=np.int64)
    trade_id = [f"{start_ms // 1000 % 1_000_000:06d}{k:05d}" for k in range(n)]
    return Trades(sip_ns=sip_ns, price=price, size=size, exchange=exchange, trade_id=trade_id, sequence=sequence)
