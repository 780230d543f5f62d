"""Synthetic tickers beside the real ones, so the simulated market can be as wide as the US market (10,000 names).

``Market(universe_size=N)`` lists ``N`` tickers: its real symbols, then ``N - len(real)`` synthetic ones named here.
The synthetic tickers are **daily-only**: they have daily bars (range aggregates of ``day`` and longer timespans, the
grouped daily endpoint, ticker details) but no minute bars, trades or quotes, no splits and no dividends (so
``adjusted`` changes nothing for them). Generating minutes for 10,000 names would cost about a hundred million rows per
year, which is what this module exists to avoid.

Guarantees, the same as the real tickers':

* deterministic: names and bars depend on the seed, the market's start and the ticker's position only; a wider
  universe adds tickers without changing the ones a narrower one had (tickers are generated in blocks of
  :data:`BLOCK`, each from its own seeded generator);
* whole calendar years: a block's bars are generated for every session of a calendar year at once, so the clock
  (:attr:`Market.last_day`) only hides sessions, never changes a value already served; prices continue across years
  (a year starts from the previous year's last close);
* every bar is a valid bar: low <= open, close <= high, a positive low, vwap inside the range, at least one trade.

Generation is vectorised per block and year (256 tickers x ~252 sessions in one go, a few milliseconds) and kept in a
small LRU of blocks, sized to two years of the whole universe: a grouped request for a session reads one row of every
block of its year, a per-ticker range reads one column of a few blocks. Values are kept as integers (cents, 1/10000
dollars for vwap), half the memory of floats, and turned into the same floats ``np.round(x, 2)`` gives.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion import calendar

BLOCK = 256
"""Tickers generated together (one seeded generator per block and year)."""
_LETTERS = 4
_NAME_SPACE = 26**_LETTERS
_TRADING_DAYS = 252
_FIELDS = ("open", "high", "low", "close", "vwap", "volume", "transactions")


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def synthetic_names(seed: int, count: int, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """``count`` distinct four-letter tickers, none in ``exclude``: a seeded affine permutation of AAAA..ZZZZ, so
    the first ``k`` names are the same whatever ``count`` is."""
    if count < 0:
        raise ValueError("count must be >= 0")
    if count > _NAME_SPACE - len(exclude):
        raise ValueError(f"at most {_NAME_SPACE - len(exclude)} synthetic tickers")
    rng = np.random.default_rng(_seed(seed, "universe-names"))
    step = int(rng.integers(1, _NAME_SPACE))
    while math.gcd(step, _NAME_SPACE) != 1:  # a bijection of the name space needs a step coprime with it
        step += 1
    offset = int(rng.integers(0, _NAME_SPACE))
    names: list[str] = []
    i = 0
    while len(names) < count:
        k = (step * i + offset) % _NAME_SPACE
        i += 1
        name = "".join(chr(65 + (k // 26**p) % 26) for p in range(_LETTERS - 1, -1, -1))
        if name not in exclude:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class _YearBlock:
    """Daily bars of one block of tickers for one calendar year: arrays of shape (sessions, BLOCK)."""

    days: npt.NDArray[np.datetime64]  # datetime64[D], ascending
    window_start_ms: npt.NDArray[np.int64]
    open: npt.NDArray[np.int32]  # cents
    high: npt.NDArray[np.int32]
    low: npt.NDArray[np.int32]
    close: npt.NDArray[np.int32]
    vwap: npt.NDArray[np.int64]  # 1/10000 dollars
    volume: npt.NDArray[np.int64]
    transactions: npt.NDArray[np.int32]

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(self, f).nbytes) for f in _FIELDS)


class Universe:
    """The synthetic tickers of one market (seed, start) and their daily bars; thread-safe."""

    def __init__(self, seed: int, start: dt.date, names: tuple[str, ...]) -> None:
        self.seed, self.start, self.names = seed, start, names
        self._index = {name: i for i, name in enumerate(names)}
        self._blocks = (len(names) + BLOCK - 1) // BLOCK
        self._capacity = 2 * self._blocks + 8
        self._cache: OrderedDict[tuple[int, int], _YearBlock] = OrderedDict()
        self._last_close: dict[tuple[int, int], npt.NDArray[np.float64]] = {}
        self._lock = threading.Lock()

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def __len__(self) -> int:
        return len(self.names)

    # -- reading ---------------------------------------------------------------------------------------------------

    def daily(self, symbol: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        """Daily bars of ``symbol`` for the sessions in ``[first, last]``, in the market's daily-bar columns."""
        i = self._index[symbol]
        block, col = divmod(i, BLOCK)
        parts = []
        for year in range(max(first.year, self.start.year), last.year + 1):
            yb = self._year(block, year)
            keep = (yb.days >= np.datetime64(first)) & (yb.days <= np.datetime64(last))
            parts.append((yb, keep))
        days = np.concatenate([yb.days[k] for yb, k in parts]) if parts else np.array([], "datetime64[D]")

        def column(name: str) -> npt.NDArray[Any]:
            if not parts:
                return np.array([], dtype=np.int64)
            return np.concatenate([getattr(yb, name)[k, col] for yb, k in parts])

        return _frame(days, column)

    def session(self, day: dt.date) -> dict[str, npt.NDArray[Any]]:
        """Every synthetic ticker's bar of session ``day`` (which must be a session): columns as floats/ints, in the
        order of :attr:`names`."""
        stamp = np.datetime64(day)
        cols: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in _FIELDS}
        for block in range(self._blocks):
            yb = self._year(block, day.year)
            row = int(np.searchsorted(yb.days, stamp))
            if row >= len(yb.days) or yb.days[row] != stamp:
                raise ValueError(f"{day} is not a session of the simulated market")
            width = min(BLOCK, len(self.names) - block * BLOCK)
            for name, parts in cols.items():
                parts.append(getattr(yb, name)[row, :width])
        joined = {k: np.concatenate(v) for k, v in cols.items()}
        return {
            "open": joined["open"] / 100.0,
            "high": joined["high"] / 100.0,
            "low": joined["low"] / 100.0,
            "close": joined["close"] / 100.0,
            "vwap": joined["vwap"] / 10_000.0,
            "volume": joined["volume"].astype(np.float64),
            "transactions": joined["transactions"].astype(np.int64),
        }

    def grouped_rows(self, day: dt.date, close_ms: int) -> list[dict[str, Any]]:
        """Rows of the grouped daily endpoint for every synthetic ticker on session ``day`` (``t`` = ``close_ms``)."""
        if not self.names:
            return []
        bar = self.session(day)
        columns = (
            self.names,
            bar["volume"].tolist(),
            bar["vwap"].tolist(),
            bar["open"].tolist(),
            bar["close"].tolist(),
            bar["high"].tolist(),
            bar["low"].tolist(),
            bar["transactions"].tolist(),
        )
        return [
            {"T": t, "v": v, "vw": vw, "o": o, "c": c, "h": h, "l": low, "t": close_ms, "n": n}
            for t, v, vw, o, c, h, low, n in zip(*columns, strict=True)
        ]

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(b.nbytes for b in self._cache.values())

    # -- generation ------------------------------------------------------------------------------------------------

    def _year(self, block: int, year: int) -> _YearBlock:
        key = (block, year)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            made = self._generate(block, year)
            self._cache[key] = made
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            return made

    def _base_close(self, block: int, year: int) -> npt.NDArray[np.float64]:
        """Dollars each ticker of ``block`` starts ``year`` from: the previous year's last close, or a seeded price."""
        if year <= self.start.year:
            rng = np.random.default_rng(_seed(self.seed, "universe-base", block))
            return np.asarray(np.round(rng.uniform(5.0, 400.0, BLOCK), 2), dtype=np.float64)
        known = self._last_close.get((block, year - 1))
        if known is None:
            # Generating the previous year records its last close (and caches its block for a while).
            prev = self._generate(block, year - 1)
            known = self._last_close.get((block, year - 1))
            if known is None:  # a year without sessions: carry the base through it
                del prev
                known = self._base_close(block, year - 1)
        return known

    def _generate(self, block: int, year: int) -> _YearBlock:
        first = max(dt.date(year, 1, 1), self.start)
        days = [d.date() for d in calendar.sessions(first, dt.date(year, 12, 31))] if first.year == year else []
        n = len(days)
        base = self._base_close(block, year)
        style = np.random.default_rng(_seed(self.seed, "universe-style", block))
        annual_vol = style.uniform(0.15, 0.6, BLOCK)
        level = np.exp(style.uniform(np.log(50_000), np.log(5_000_000), BLOCK))
        rng = np.random.default_rng(_seed(self.seed, "universe", block, year))
        sd = annual_vol / np.sqrt(_TRADING_DAYS)
        gap = rng.standard_normal((n, BLOCK)) * sd * 0.3
        move = rng.standard_normal((n, BLOCK)) * sd
        log_close = np.log(base) + np.cumsum(gap + move, axis=0)
        log_open = log_close - move
        o = np.maximum(np.round(np.exp(log_open) * 100), 1).astype(np.int64)
        c = np.maximum(np.round(np.exp(log_close) * 100), 1).astype(np.int64)
        wiggle = np.abs(rng.standard_normal((2, n, BLOCK))) * sd * 0.5
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        h = np.maximum(np.ceil(top * np.exp(wiggle[0])).astype(np.int64), top)
        low = np.maximum(np.minimum(np.floor(bottom * np.exp(-wiggle[1])).astype(np.int64), bottom), 1)
        volume = np.maximum(100, np.round(level * rng.lognormal(0.0, 0.35, (n, BLOCK)))).astype(np.int64)
        trades = np.clip(np.round(volume / rng.uniform(50.0, 400.0, (n, BLOCK))), 1, volume).astype(np.int64)
        # With fewer than four trades there is no room for a separate high and low print between open and close.
        thin = trades < 4
        h = np.where(thin, top, h)
        low = np.where(thin, bottom, low)
        # vwap = (o + h + l + 2c) / 5 dollars, to 4 decimals: exactly 20 x that sum of cents, in 1/10000 dollars.
        vwap = 20 * (o + h + low + 2 * c)
        day_arr = np.array(days, dtype="datetime64[D]")
        if n:
            self._last_close[(block, year)] = c[-1] / 100.0
        midnight = pd.DatetimeIndex(day_arr).tz_localize(calendar.NEW_YORK).tz_convert("UTC")
        return _YearBlock(
            days=day_arr,
            window_start_ms=np.asarray(midnight.as_unit("ms").asi8, dtype=np.int64),
            open=o.astype(np.int32),
            high=h.astype(np.int32),
            low=low.astype(np.int32),
            close=c.astype(np.int32),
            vwap=vwap,
            volume=volume,
            transactions=trades.astype(np.int32),
        )


def _frame(days: npt.NDArray[np.datetime64], column: Any) -> pd.DataFrame:
    midnight = pd.DatetimeIndex(days).tz_localize(calendar.NEW_YORK).tz_convert("UTC")
    return pd.DataFrame(
        {
            "day": np.array([d.item() for d in days], dtype=object),
            "window_start_ms": np.asarray(midnight.as_unit("ms").asi8, dtype=np.int64),
            "open": column("open") / 100.0,
            "high": column("high") / 100.0,
            "low": column("low") / 100.0,
            "close": column("close") / 100.0,
            "volume": column("volume").astype(np.float64),
            "vwap": column("vwap") / 10_000.0,
            "transactions": column("transactions").astype(np.int64),
        }
    )


__all__ = ["BLOCK", "Universe", "synthetic_names"]
