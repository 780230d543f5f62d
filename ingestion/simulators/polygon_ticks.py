"""Polygon-shaped trades and quotes from the ground truth, shared by the REST (v3) and WebSocket simulators.

Trades come from :func:`ingestion.simulators.market.minute_trades` over **raw** (as traded) minute bars, so they agree
with the bars of their minute whichever endpoint serves them; quotes are synthesised around each trade (one quote a
nanosecond before every trade, a one-cent market, sizes in round lots). Listing facts the feeds need (tape, primary
exchange) live here too, so both simulators describe a ticker the same way.

Times: ``sip_ns`` / ``participant_ns`` are epoch nanoseconds UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ingestion.simulators.market import ETFS, Market, _seed, minute_trades

FINRA_TRF = 4
ODD_LOT = 37
NYSE_LISTED = frozenset({"JPM"})
ARCA_LISTED = ETFS - {"QQQ"}


def tape(symbol: str) -> int:
    """SIP tape: 1 = NYSE-listed, 2 = NYSE Arca and other exchanges, 3 = Nasdaq-listed."""
    if symbol in NYSE_LISTED:
        return 1
    if symbol in ARCA_LISTED:
        return 2
    return 3


def primary_exchange(symbol: str) -> str:
    """The MIC of the listing exchange, as Polygon's ticker details report it."""
    return {1: "XNYS", 2: "ARCX", 3: "XNAS"}[tape(symbol)]


@dataclass(frozen=True)
class MinuteTicks:
    """Trades and quotes of one minute of one symbol, in SIP-time order (ns UTC)."""

    symbol: str
    trade_sip_ns: np.ndarray
    trade_participant_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    exchange: np.ndarray
    trade_id: list[str]
    sequence: np.ndarray
    quote_sip_ns: np.ndarray
    quote_participant_ns: np.ndarray
    bid_price: np.ndarray
    ask_price: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    bid_exchange: np.ndarray
    ask_exchange: np.ndarray


def minute_ticks(market: Market, symbol: str, bar: pd.Series) -> MinuteTicks:
    """Trades (exactly those of :func:`minute_trades`) and quotes of a raw minute bar."""
    trades = minute_trades(market, symbol, bar)
    n = len(trades)
    rng = np.random.default_rng(_seed(market.seed, symbol, int(bar["window_start_ms"]), "quotes"))
    # Participant (exchange) clocks run a few tens to hundreds of microseconds ahead of the SIP stamp.
    trade_lag = rng.integers(20_000, 400_000, n)
    quote_sip = trades.sip_ns - 1
    quote_lag = rng.integers(20_000, 400_000, n)
    venues = np.array([4, 8, 10, 11, 12, 15, 19])
    bid_ex = rng.choice(venues[1:], n)
    ask_ex = rng.choice(venues[1:], n)
    return MinuteTicks(
        symbol=symbol,
        trade_sip_ns=trades.sip_ns,
        trade_participant_ns=trades.sip_ns - trade_lag,
        price=trades.price,
        size=trades.size,
        exchange=trades.exchange,
        trade_id=trades.trade_id,
        sequence=trades.sequence,
        quote_sip_ns=quote_sip,
        quote_participant_ns=quote_sip - quote_lag,
        bid_price=np.round(trades.price - 0.01, 2),
        ask_price=np.round(trades.price + 0.01, 2),
        bid_size=rng.integers(1, 20, n),
        ask_size=rng.integers(1, 20, n),
        bid_exchange=bid_ex,
        ask_exchange=ask_ex,
    )


def iter_minutes(market: Market, symbol: str, start_ns: int, end_ns: int, descending: bool) -> Iterator[pd.Series]:
    """Raw minute bars that may hold ticks in ``[start_ns, end_ns]``, session by session, in the asked order."""
    ny = "America/New_York"
    first = pd.Timestamp(max(start_ns, 0), unit="ns", tz="UTC").tz_convert(ny).date()
    last = pd.Timestamp(end_ns, unit="ns", tz="UTC").tz_convert(ny).date()
    days: list[dt.date] = market.sessions(first, last)
    if descending:
        days = days[::-1]
    for day in days:
        bars = market.minute_bars(symbol, day, adjusted=False)
        lo_ms, hi_ms = start_ns // 1_000_000 - 60_000, end_ns // 1_000_000
        bars = bars[(bars["window_start_ms"] > lo_ms) & (bars["window_start_ms"] <= hi_ms)]
        rows = bars.iloc[::-1] if descending else bars
        for _, bar in rows.iterrows():
            yield bar


def trade_record(ticks: MinuteTicks, k: int) -> dict[str, Any]:
    """Trade ``k`` of a minute as a ``/v3/trades`` result (ns timestamps)."""
    record: dict[str, Any] = {
        "exchange": int(ticks.exchange[k]),
        "id": ticks.trade_id[k],
        "participant_timestamp": int(ticks.trade_participant_ns[k]),
        "price": float(ticks.price[k]),
        "sequence_number": int(ticks.sequence[k]),
        "sip_timestamp": int(ticks.trade_sip_ns[k]),
        "size": int(ticks.size[k]),
        "tape": tape(ticks.symbol),
    }
    if ticks.size[k] < 100:
        record["conditions"] = [ODD_LOT]
    if ticks.exchange[k] == FINRA_TRF:
        record["trf_id"] = 3
        record["trf_timestamp"] = int(ticks.trade_participant_ns[k])
    return record


def quote_record(ticks: MinuteTicks, k: int) -> dict[str, Any]:
    """Quote ``k`` of a minute as a ``/v3/quotes`` result (ns timestamps, sizes in round lots)."""
    return {
        "ask_exchange": int(ticks.ask_exchange[k]),
        "ask_price": float(ticks.ask_price[k]),
        "ask_size": int(ticks.ask_size[k]),
        "bid_exchange": int(ticks.bid_exchange[k]),
        "bid_price": float(ticks.bid_price[k]),
        "bid_size": int(ticks.bid_size[k]),
        "participant_timestamp": int(ticks.quote_participant_ns[k]),
        "sequence_number": int(ticks.sequence[k]),
        "sip_timestamp": int(ticks.quote_sip_ns[k]),
        "tape": tape(ticks.symbol),
    }


def trade_event(ticks: MinuteTicks, k: int) -> dict[str, Any]:
    """Trade ``k`` of a minute as a WebSocket ``T`` event (``t`` in epoch ms)."""
    event: dict[str, Any] = {
        "ev": "T",
        "sym": ticks.symbol,
        "i": ticks.trade_id[k],
        "x": int(ticks.exchange[k]),
        "p": float(ticks.price[k]),
        "s": int(ticks.size[k]),
        "t": int(ticks.trade_sip_ns[k]) // 1_000_000,
        "q": int(ticks.sequence[k]),
        "z": tape(ticks.symbol),
    }
    if ticks.size[k] < 100:
        event["c"] = [ODD_LOT]
    if ticks.exchange[k] == FINRA_TRF:
        event["trfi"] = 3
        event["trft"] = int(ticks.trade_participant_ns[k]) // 1_000_000
    return event


def quote_event(ticks: MinuteTicks, k: int) -> dict[str, Any]:
    """Quote ``k`` of a minute as a WebSocket ``Q`` event (``t`` in epoch ms, sizes in round lots)."""
    return {
        "ev": "Q",
        "sym": ticks.symbol,
        "bx": int(ticks.bid_exchange[k]),
        "bp": float(ticks.bid_price[k]),
        "bs": int(ticks.bid_size[k]),
        "ax": int(ticks.ask_exchange[k]),
        "ap": float(ticks.ask_price[k]),
        "as": int(ticks.ask_size[k]),
        "c": 0,
        "t": int(ticks.quote_sip_ns[k]) // 1_000_000,
        "q": int(ticks.sequence[k]),
        "z": tape(ticks.symbol),
    }
