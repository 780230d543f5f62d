"""Polygon aggregates pages to the standard bar frame: pure functions from page bytes to a :class:`ParseResult`.

The frame has the columns of :data:`ingestion.datasets.OHLCV_MINUTE` (less ``created_timestamp``, which the writer
sets): ``symbol, window_start, event_timestamp, open, high, low, close, volume, vwap, transactions, otc, adjusted``.
Timestamps are ``datetime64[us, UTC]``; prices, volume and vwap float64; transactions nullable Int64; otc and
adjusted bool. ``window_start`` is the start of the bar's window and ``event_timestamp`` its end (see
:mod:`ingestion.polygon.bar_time`): that is the instant the bar became knowable.

A row with a missing or mistyped required field (``o h l c v t``), or whose values cannot be a bar (a non-finite
number, ``t`` outside 1970..2099 (:mod:`ingestion.time_bounds`), a negative price or vwap, low above open or close,
high below them, negative volume or trade count, a daily window with no session), is returned as a
:class:`~ingestion.rejects.Rejected` with its reason; the rest of the page parses. A page that is not the documented
envelope raises :class:`~ingestion.errors.SchemaError` naming the endpoint. No ``results`` is an empty frame with
the same columns and dtypes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion import datasets, time_bounds
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS
from ingestion.polygon import bar_time, envelope, rows
from ingestion.polygon.envelope import PageInfo, page_info
from ingestion.rejects import ParseResult

__all__ = ["BAR_COLUMNS", "PageInfo", "page_info", "parse_aggs", "parse_grouped_daily", "range_spec", "to_frame"]

_FIRST = (ENTITY_KEY, "window_start", EVENT_TS)
BAR_COLUMNS: tuple[str, ...] = (
    *_FIRST,
    *(c for c in datasets.OHLCV_MINUTE.column_names if c not in (*_FIRST, CREATED_TS)),
)
BAR_SCHEMA = pa.schema([datasets.OHLCV_MINUTE.arrow_schema().field(c) for c in BAR_COLUMNS])

_F, _I = pa.float64(), pa.int64()
_BAR_FIELDS = (("o", _F), ("h", _F), ("l", _F), ("c", _F), ("v", _F), ("vw", _F), ("t", _I), ("n", _I))
_REQUIRED = frozenset({"o", "h", "l", "c", "v", "t"})
_OTC = ("otc", pa.bool_())
# Any instant inside the time bounds with a NYSE session would do; it only stands in for out-of-range ``t``.
_STAND_IN_MS = 1_704_205_800_000  # 2024-01-02 14:30 UTC


def range_spec(timespan: str, multiplier: int) -> rows.RowSpec:
    """Row type of the range endpoint; rejected rows name the dataset the bars were meant for."""
    dataset = "polygon_aggs"
    if multiplier == 1 and timespan == "day":
        dataset = datasets.OHLCV_DAILY.name
    elif multiplier == 1 and timespan == "minute":
        dataset = datasets.OHLCV_MINUTE.name
    return rows.RowSpec(dataset, (*_BAR_FIELDS, _OTC), _REQUIRED)


def parse_aggs(
    body: bytes | str, *, symbol: str, timespan: str, multiplier: int, adjusted: bool, endpoint: str
) -> ParseResult:
    """Parse one page of ``/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/...``.

    ``t`` of each row is epoch ms UTC at the window start. Raises SchemaError for a malformed page, or for a page
    whose ``ticker`` is not ``symbol``; ValueError for an unknown timespan.
    """
    bar_time.check_span(timespan, multiplier)
    spec = range_spec(timespan, multiplier)
    symbol = symbol.upper()

    def finish(page: rows.Rows) -> ParseResult | None:
        ticker = page.envelope.get("ticker")
        if ticker is not None and ticker != symbol:
            raise envelope.schema_error(f"page is for ticker {ticker!r}, requested {symbol!r}", endpoint)
        return _finish(page, spec, endpoint, None, symbol, timespan, multiplier, adjusted, stamped_at_end=False)

    return rows.read_page(body, spec, endpoint, finish)


def parse_grouped_daily(body: bytes | str, *, adjusted: bool, endpoint: str) -> ParseResult:
    """Parse ``/v2/aggs/grouped/locale/us/market/stocks/{date}`` (also the shape of ``/v2/aggs/ticker/{T}/prev``).

    Rows name their ticker in ``T`` and, unlike the range endpoint, stamp ``t`` at the **end** of the session. The
    row's trading day is the New York date of ``t``; ``window_start`` is New York midnight of that day (so a grouped
    bar and a range bar of the same day share a key) and ``event_timestamp`` is its session close.
    """
    spec = rows.RowSpec(datasets.OHLCV_DAILY.name, (("T", pa.string()), *_BAR_FIELDS, _OTC), _REQUIRED | {"T"})

    def finish(page: rows.Rows) -> ParseResult | None:
        return _finish(page, spec, endpoint, "T", None, "day", 1, adjusted, stamped_at_end=True)

    return rows.read_page(body, spec, endpoint, finish)


def _finish(
    page: rows.Rows,
    spec: rows.RowSpec,
    endpoint: str,
    symbol_field: str | None,
    symbol: str | None,
    timespan: str,
    multiplier: int,
    adjusted: bool,
    *,
    stamped_at_end: bool,
) -> ParseResult | None:
    values = page.values
    t_ms = _np(values.field("t")).astype(np.int64, copy=False)
    t_ok = time_bounds.ms_in_range(t_ms)
    if not t_ok.all():
        # Times of rows out of range are computed from a stand-in (the rows are refused below): a year-9999 ``t``
        # would overflow pandas' nanosecond timestamps before any check could name the row.
        t_ms = np.where(t_ok, t_ms, t_ms[t_ok][0] if t_ok.any() else _STAND_IN_MS)
    # End-stamped rows (grouped, prev) are moved to New York midnight so they share a key with range bars.
    start_us = bar_time.new_york_midnight_us(bar_time.new_york_days(t_ms)) if stamped_at_end else t_ms * 1000
    end_us, has_end = bar_time.window_ends_us(start_us // 1000, timespan, multiplier)
    reasons = _value_problems(values, has_end, t_ok, symbol_field)
    bad = reasons != None  # noqa: E711 - elementwise test on an object array
    if bad.any():
        kept = rows.split(page, bad, reasons, spec, endpoint)
        if kept is None:
            return None
        result = _finish(
            kept, spec, endpoint, symbol_field, symbol, timespan, multiplier, adjusted, stamped_at_end=stamped_at_end
        )
        return result
    n = len(values)
    symbols = values.field(symbol_field) if symbol_field else pa.repeat(pa.scalar(symbol, pa.string()), n)
    ts = datasets.TS
    table = pa.Table.from_arrays(
        [
            symbols,
            pa.array(start_us.astype("datetime64[us]")).cast(ts),
            pa.array(end_us.astype("datetime64[us]")).cast(ts),
            values.field("o"),
            values.field("h"),
            values.field("l"),
            values.field("c"),
            values.field("v"),
            values.field("vw"),
            values.field("n"),
            pc.fill_null(values.field("otc"), False),
            pa.repeat(pa.scalar(adjusted, pa.bool_()), n),
            pa.repeat(pa.scalar("polygon", pa.string()), n),
        ],
        schema=BAR_SCHEMA,
    )
    return ParseResult(frame=to_frame(table), rejected=page.rejected, drift=page.drift)


def _value_problems(
    values: pa.StructArray, has_end: npt.NDArray[np.bool_], t_ok: npt.NDArray[np.bool_], symbol_field: str | None
) -> npt.NDArray[np.object_]:
    """Per-row reason a typed bar is impossible (None when fine). The first failing check names the row."""
    o, h, low, c, v = (_floats(values.field(k)) for k in ("o", "h", "l", "c", "v"))
    vw = _floats(values.field("vw").fill_null(0.0))
    n = _np(values.field("n").fill_null(0)).astype(np.int64)
    with np.errstate(invalid="ignore"):
        checks: list[tuple[npt.NDArray[np.bool_], str]] = [
            (
                ~(
                    np.isfinite(o)
                    & np.isfinite(h)
                    & np.isfinite(low)
                    & np.isfinite(c)
                    & np.isfinite(v)
                    & np.isfinite(vw)
                ),
                "non-finite value",
            ),
            (~t_ok, f"t outside {time_bounds.RANGE_TEXT}"),
            ((o < 0) | (h < 0) | (low < 0) | (c < 0) | (vw < 0), "negative price"),
            ((low > o) | (low > c), "low above open or close"),
            ((h < o) | (h < c), "high below open or close"),
            (v < 0, "negative volume"),
            (n < 0, "negative transactions"),
            (~has_end, "no NYSE session in the bar's window"),
        ]
    if symbol_field:
        checks.insert(0, (_np(pc.utf8_length(values.field(symbol_field))) == 0, f"empty {symbol_field}"))
    reasons = np.full(len(values), None, dtype=object)
    for mask, reason in reversed(checks):  # reversed, so the first listed check wins
        reasons[mask] = reason
    return reasons


def _np(array: pa.Array) -> npt.NDArray[np.generic]:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _floats(array: pa.Array) -> npt.NDArray[np.float64]:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow table to pandas with the project's dtypes: int64 as nullable Int64, timestamps kept in their unit."""
    # One thread: a page is small enough that a pool costs more than it saves, and "per core" stays honest.
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get, use_threads=False)


_PANDAS_TYPES: dict[pa.DataType, pd.api.extensions.ExtensionDtype] = {pa.int64(): pd.Int64Dtype()}
