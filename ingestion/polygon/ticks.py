"""Polygon v3 trades and quotes pages to frames (pure functions, same validation style as the bar parser).

The vendor's ``sip_timestamp``, ``participant_timestamp`` and ``trf_timestamp`` are epoch **nanoseconds** UTC. They
are kept as ``datetime64[ns, UTC]``: several trades share one microsecond on a busy tape, and the nanosecond order
is what de-duplication and sequencing rely on; truncating to microseconds would merge or reorder them.
``event_timestamp`` follows the project rule (``datetime64[us, UTC]``) and is the SIP time rounded **up** to the next
microsecond, so it is never earlier than the moment the tick was published (rounding down would be lookahead, if
only by < 1 us).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ingestion import datasets
from ingestion.polygon import rows
from ingestion.polygon.parse import to_frame
from ingestion.rejects import ParseResult

__all__ = ["QUOTE_COLUMNS", "TRADE_COLUMNS", "parse_quotes", "parse_trades"]

NS = pa.timestamp("ns", tz="UTC")
_F, _I = pa.float64(), pa.int64()
_CODES = pa.list_(pa.int64())
_NS_FIELDS = ("sip_timestamp", "participant_timestamp", "trf_timestamp")

TRADES = rows.RowSpec(
    "polygon_trades",
    (
        ("sip_timestamp", _I),
        ("participant_timestamp", _I),
        ("trf_timestamp", _I),
        ("price", _F),
        ("size", _F),
        ("exchange", _I),
        ("id", pa.string()),
        ("sequence_number", _I),
        ("tape", _I),
        ("conditions", _CODES),
        ("correction", _I),
        ("trf_id", _I),
    ),
    # The spec also requires participant_timestamp and sequence_number, but the bar rebuilt from trades does not
    # need them; a trade missing them is still a trade, so only what makes a print is required.
    frozenset({"sip_timestamp", "price", "size", "exchange", "id"}),
    frozenset({"decimal_size"}),
)
QUOTES = rows.RowSpec(
    "polygon_quotes",
    (
        ("sip_timestamp", _I),
        ("participant_timestamp", _I),
        ("trf_timestamp", _I),
        ("bid_price", _F),
        ("bid_size", _F),
        ("bid_exchange", _I),
        ("ask_price", _F),
        ("ask_size", _F),
        ("ask_exchange", _I),
        ("sequence_number", _I),
        ("tape", _I),
        ("conditions", _CODES),
        ("indicators", _CODES),
    ),
    frozenset({"sip_timestamp"}),
)

TRADE_COLUMNS: tuple[str, ...] = (datasets.ENTITY_KEY, datasets.EVENT_TS, *(n for n, _ in TRADES.fields))
QUOTE_COLUMNS: tuple[str, ...] = (datasets.ENTITY_KEY, datasets.EVENT_TS, *(n for n, _ in QUOTES.fields))


def parse_trades(body: bytes | str, *, symbol: str, endpoint: str) -> ParseResult:
    """Parse one page of ``/v3/trades/{symbol}``: columns :data:`TRADE_COLUMNS`.

    Timestamps ns as described in the module docstring; sizes float64 (fractional shares exist); ids and codes as
    the vendor sends them. A trade with a negative or non-finite price or size, or a non-positive SIP time, is
    rejected with the reason.
    """
    checks = (("price", "negative or non-finite price"), ("size", "negative or non-finite size"))
    return _parse(body, TRADES, symbol, endpoint, checks)


def parse_quotes(body: bytes | str, *, symbol: str, endpoint: str) -> ParseResult:
    """Parse one page of ``/v3/quotes/{symbol}``: columns :data:`QUOTE_COLUMNS`.

    Sizes are round lots as sent. A side may be absent (null). Crossed or locked quotes are real market states and
    are kept; a negative or non-finite price or size is rejected.
    """
    checks = tuple((f, f"negative or non-finite {f}") for f in ("bid_price", "bid_size", "ask_price", "ask_size"))
    return _parse(body, QUOTES, symbol, endpoint, checks)


def _parse(
    body: bytes | str, spec: rows.RowSpec, symbol: str, endpoint: str, checks: tuple[tuple[str, str], ...]
) -> ParseResult:
    symbol = symbol.upper()

    def finish(page: rows.Rows) -> ParseResult | None:
        reasons = _problems(page.values, checks)
        bad = reasons != None  # noqa: E711 - elementwise test on an object array
        if bad.any():
            kept = rows.split(page, bad, reasons, spec, endpoint)
            return None if kept is None else finish(kept)
        return ParseResult(frame=to_frame(_table(page.values, spec, symbol)), rejected=page.rejected, drift=page.drift)

    return rows.read_page(body, spec, endpoint, finish)


def _problems(values: pa.StructArray, checks: tuple[tuple[str, str], ...]) -> npt.NDArray[np.object_]:
    reasons = np.full(len(values), None, dtype=object)
    with np.errstate(invalid="ignore"):
        tests: list[tuple[npt.NDArray[np.bool_], str]] = [
            (_ints(values, "sip_timestamp") <= 0, "non-positive sip_timestamp"),
        ]
        for name, reason in checks:
            x = np.asarray(values.field(name).to_numpy(zero_copy_only=False), dtype=np.float64)
            tests.append((~np.isnan(x) & ~((x >= 0) & np.isfinite(x)), reason))
    for mask, reason in reversed(tests):
        reasons[mask] = reason
    return reasons


def _ints(values: pa.StructArray, name: str) -> npt.NDArray[np.int64]:
    return np.asarray(values.field(name).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _table(values: pa.StructArray, spec: rows.RowSpec, symbol: str) -> pa.Table:
    n = len(values)
    sip = _ints(values, "sip_timestamp")
    event_us = -((-sip) // 1000)  # ceiling division: never before the SIP time
    columns: dict[str, Any] = {
        datasets.ENTITY_KEY: pa.repeat(pa.scalar(symbol, pa.string()), n),
        datasets.EVENT_TS: pa.array(event_us.astype("datetime64[us]")).cast(datasets.TS),
    }
    for name, _ in spec.fields:
        col = values.field(name)
        columns[name] = col.cast(NS) if name in _NS_FIELDS else col
    return pa.table(columns)
