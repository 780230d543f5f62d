"""``PolygonRESTClient``: Polygon.io (Massive) REST endpoints as standard DataFrames.

Every request goes through the shared resilient core (:mod:`ingestion.http`: limiter, cache, breaker, retry) and
every page through the pure parsers of :mod:`ingestion.polygon.parse`, which validate each row. Aggregate ranges
are split into chunks whose *base* aggregates stay under the 50000 the vendor reads per request (its ``limit`` caps
the minute bars read to build hour bars, not only the rows returned), and ``next_url`` is followed to the end of
each chunk. Rows that fail validation are handed to ``on_rejected`` (the jobs send them to quarantine); they never
vanish.

Times: ``window_start`` is Polygon's ``t`` (epoch ms UTC, start of the window); ``event_timestamp`` is the window
end, a daily bar's being its session close. Both are ``datetime64[us, UTC]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd

from ingestion.calendar import as_date
from ingestion.config import POLYGON_DEFAULT_BASE_URL, settings
from ingestion.errors import ClientError, ConfigError, IngestionError
from ingestion.http import DEFAULT_MAX_PAGES, CacheTTL, HTTPResult, VendorHTTP, paginate
from ingestion.polygon import envelope
from ingestion.polygon.actions import parse_dividends, parse_splits
from ingestion.polygon.parse import parse_aggs, parse_grouped_daily
from ingestion.polygon.reference import parse_news, parse_ticker_details
from ingestion.polygon.tickers import TickerEvents, parse_ticker_events, parse_tickers
from ingestion.polygon.ticks import parse_quotes, parse_trades
from ingestion.rejects import ParseResult, Rejected, RejectSink, hand_off
from ingestion.vendor_http import HTTPOptions, build_vendor_http

VENDOR = "polygon"
MAX_LIMIT = 50_000
# Base aggregates per calendar day, extended hours included (04:00-20:00 New York), for the chunk arithmetic.
_BASE_PER_DAY = {"second": 16 * 3600, "minute": 16 * 60, "hour": 16 * 60}
_DAY_BASED = frozenset({"day", "week", "month", "quarter", "year"})
_TIMESPANS = frozenset(_BASE_PER_DAY) | _DAY_BASED

DateLike = str | dt.date | dt.datetime | int


def polygon_api_key(explicit: str | None = None) -> str:
    """The key passed in, else ``POLYGON_API_KEY`` or ``MASSIVE_API_KEY`` read now (never at import)."""
    key = (explicit or "").strip() or settings().polygon_api_key
    if not key:
        raise ConfigError("no Polygon API key: set POLYGON_API_KEY (or MASSIVE_API_KEY), or run against the simulator")
    return key


def chunk_range(timespan: str, multiplier: int, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Split ``[start, end]`` (dates, inclusive) so no chunk needs more than 50000 base aggregates."""
    if timespan not in _TIMESPANS:
        raise ValueError(f"unknown timespan {timespan!r}: use one of {', '.join(sorted(_TIMESPANS))}")
    if end < start:
        return []
    # Day-based spans read daily bars: 50000 of them is centuries, so one chunk in practice.
    days = MAX_LIMIT - 1 if timespan in _DAY_BASED else max(1, MAX_LIMIT // _BASE_PER_DAY[timespan])
    chunks = []
    cursor = start
    while cursor <= end:
        stop = min(end, cursor + dt.timedelta(days=days - 1))
        chunks.append((cursor, stop))
        cursor = stop + dt.timedelta(days=1)
    return chunks


@dataclass
class AggregatesBatch:
    """Bars of many symbols: what succeeded, which symbols failed and why, and rejected rows."""

    frame: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


class PolygonRESTClient:
    """Polygon REST client. Keys: ``api_key`` or ``POLYGON_API_KEY``/``MASSIVE_API_KEY`` (read at construction).

    Args:
        api_key: the key; sent only as a Bearer header.
        base_url: ``https://api.polygon.io`` by default (``https://api.massive.com`` or a simulator work too).
        use_cache: cache responses (Redis when ``redis_url`` is set, in-process otherwise).
        redis_url: share cache, rate limiter and circuit breaker between processes.
        requests_per_minute: client-side budget (5 on the free plan); None for no limiter.
        max_workers: threads for multi-symbol fetches; they share the limiter.
        on_rejected: where rows that failed validation go (default: logged as a warning with the count).
        http: a ready :class:`~ingestion.http.VendorHTTP` (tests inject one); overrides the settings above.
        max_pages: pages one call may follow before its ``next_url`` chain counts as endless
            (:class:`~ingestion.http.PagingError`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = POLYGON_DEFAULT_BASE_URL,
        use_cache: bool = True,
        *,
        redis_url: str | None = None,
        requests_per_minute: int | None = None,
        max_workers: int = 4,
        options: HTTPOptions | None = None,
        on_rejected: RejectSink | None = None,
        http: VendorHTTP | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.max_workers = max_workers
        self.max_pages = max_pages
        self.on_rejected = on_rejected
        if http is None:
            opts = options or HTTPOptions(
                use_cache=use_cache, redis_url=redis_url, requests_per_minute=requests_per_minute
            )
            http = build_vendor_http(
                VENDOR, base_url, polygon_api_key(api_key), opts, auth_hint="check POLYGON_API_KEY"
            )
        self.http = http

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _get(self, endpoint: str, path: str, params: dict[str, Any] | None, ttl: float | None) -> HTTPResult:
        return self.http.get(
            endpoint,
            path,
            params,
            cache_ttl=ttl,
            cache_if=lambda r: envelope.page_info(r.body, endpoint).status in ("OK", "DELAYED"),
        )

    def _pages(self, endpoint: str, path: str, params: dict[str, Any], ttl: float | None) -> Iterator[HTTPResult]:
        """Every page of a list endpoint: the first at ``path`` with ``params``, then each ``next_url``."""

        def fetch(next_url: str | None) -> HTTPResult:
            # next_url carries its own cursor and parameters; the key goes in the header again, never the URL.
            return (
                self._get(endpoint, path, params, ttl) if next_url is None else self._get(endpoint, next_url, None, ttl)
            )

        def follow(_: str | None, page: HTTPResult) -> str | None:
            return envelope.page_info(page.body, endpoint).next_url

        return paginate(fetch, follow, None, max_pages=self.max_pages, vendor=VENDOR, endpoint=endpoint)

    def _reject(self, rejected: list[Rejected]) -> None:
        hand_off(rejected, self.on_rejected, "Polygon")

    def _frame(self, result: ParseResult) -> pd.DataFrame:
        self._reject(result.rejected)
        return result.frame

    # -- aggregates ----------------------------------------------------------------------------------------------

    def fetch_aggregates(
        self,
        symbol: str,
        multiplier: int,
        timespan: str,
        from_date: DateLike,
        to_date: DateLike,
        adjusted: bool = True,
        sort: str = "asc",
        limit: int = MAX_LIMIT,
    ) -> ParseResult:
        """Every bar of the range, all chunks and pages, as a :class:`ParseResult` (rejected rows kept apart)."""
        symbol = symbol.strip().upper()
        start, end = as_date(from_date), as_date(to_date)
        today = pd.Timestamp.now(tz="America/New_York").date()
        parse = partial(parse_aggs, symbol=symbol, timespan=timespan, multiplier=multiplier, adjusted=adjusted)

        def pages() -> Iterator[ParseResult]:
            for lo, hi in chunk_range(timespan, multiplier, start, end):
                ttl = CacheTTL.HISTORICAL if hi < today else CacheTTL.INTRADAY
                path = f"/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/{lo.isoformat()}/{hi.isoformat()}"
                params = {"adjusted": adjusted, "sort": "asc", "limit": max(1, min(int(limit), MAX_LIMIT))}
                for page in self._pages("aggs", path, params, ttl):
                    yield parse(page.body, endpoint="aggs")

        # Joined as the pages arrive: an empty page is dropped at once, so memory follows the rows received (an
        # endless chain of empty pages used to hold ~10 KB a page until PagingError). An empty range still answers
        # with the bars' columns and dtypes.
        result = ParseResult.concat(pages(), empty=parse(b'{"status":"OK","resultsCount":0}', endpoint="aggs").frame)
        frame = result.frame.drop_duplicates("window_start", keep="last")
        frame = frame.sort_values("window_start", ascending=(sort != "desc"), kind="stable").reset_index(drop=True)
        return ParseResult(frame, result.rejected, result.drift)

    def get_aggregates(
        self,
        symbol: str,
        multiplier: int,
        timespan: str,
        from_date: DateLike,
        to_date: DateLike,
        adjusted: bool = True,
        sort: str = "asc",
        limit: int = 5000,
    ) -> pd.DataFrame:
        """Bars as the standard frame: symbol, window_start, event_timestamp, open, high, low, close, volume,
        vwap, transactions, otc, adjusted. ``limit`` is the page size asked of the vendor; every page is read."""
        return self._frame(
            self.fetch_aggregates(symbol, multiplier, timespan, from_date, to_date, adjusted, sort, limit)
        )

    get_aggs = get_aggregates

    def get_daily_bars(
        self, symbol: str, from_date: DateLike, to_date: DateLike, adjusted: bool = True
    ) -> pd.DataFrame:
        """Daily bars; ``event_timestamp`` is each session's close."""
        return self.get_aggregates(symbol, 1, "day", from_date, to_date, adjusted, limit=MAX_LIMIT)

    def get_intraday_bars(
        self,
        symbol: str,
        from_date: DateLike,
        to_date: DateLike,
        multiplier: int = 1,
        timespan: str = "minute",
        adjusted: bool = True,
    ) -> pd.DataFrame:
        """Intraday bars (minute by default). A minute with no trade has no bar: gaps are normal."""
        return self.get_aggregates(symbol, multiplier, timespan, from_date, to_date, adjusted, limit=MAX_LIMIT)

    def get_many_aggregates(
        self,
        symbols: Iterable[str],
        multiplier: int,
        timespan: str,
        from_date: DateLike,
        to_date: DateLike,
        adjusted: bool = True,
    ) -> AggregatesBatch:
        """Bars of many symbols in parallel under the shared limiter. One bad symbol does not sink the others:
        its error is reported in :attr:`AggregatesBatch.errors` and the rest are returned."""
        names = list(dict.fromkeys(s.strip().upper() for s in symbols))

        def one(sym: str) -> tuple[str, ParseResult | IngestionError]:
            try:
                return sym, self.fetch_aggregates(sym, multiplier, timespan, from_date, to_date, adjusted)
            except IngestionError as exc:
                return sym, exc

        errors: dict[str, str] = {}
        results: list[ParseResult] = []
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers), thread_name_prefix="polygon") as pool:
            for sym, outcome in pool.map(one, names):
                if isinstance(outcome, IngestionError):
                    errors[sym] = str(outcome)
                else:
                    results.append(outcome)
        joined = ParseResult.concat(results)
        self._reject(joined.rejected)
        return AggregatesBatch(frame=joined.frame, errors=errors, rejected=joined.rejected)

    def fetch_grouped_daily(self, day: DateLike, adjusted: bool = True) -> ParseResult:
        """Every ticker's daily bar of session ``day`` in one request (``/v2/aggs/grouped/locale/us/market/stocks``).

        The vendor stamps these rows' ``t`` at the **end** of the session; the parser
        (:func:`~ingestion.polygon.parse.parse_grouped_daily`) keys each row at New York midnight of that day, as
        the range endpoint does, so both land on the same key. A day without a session answers no rows.
        """
        date = as_date(day)
        # Not cached: a page holds the whole market (about 1 MB at 10,000 tickers), the universe backfill records
        # each session it landed and never asks again, and a week of such pages would fill Redis.
        path = f"/v2/aggs/grouped/locale/us/market/stocks/{date.isoformat()}"
        page = self._get("grouped", path, {"adjusted": adjusted}, None)
        return parse_grouped_daily(page.body, adjusted=adjusted, endpoint="grouped")

    # -- corporate actions ---------------------------------------------------------------------------------------

    def fetch_splits(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None, limit: int = 1000
    ) -> ParseResult:
        """Splits of ``symbol`` (execution dates in ``[from_date, to_date]`` when given; all history otherwise), every
        page, as ``corporate_actions`` rows of kind ``split`` (:func:`~ingestion.polygon.actions.parse_splits`)."""
        return self._actions("splits", "execution_date", symbol, from_date, to_date, limit)

    def fetch_dividends(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None, limit: int = 1000
    ) -> ParseResult:
        """Cash dividends of ``symbol`` (ex-dividend dates in ``[from_date, to_date]`` when given), every page, as
        ``corporate_actions`` rows of kind ``dividend`` (:func:`~ingestion.polygon.actions.parse_dividends`)."""
        return self._actions("dividends", "ex_dividend_date", symbol, from_date, to_date, limit)

    def get_splits(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None
    ) -> pd.DataFrame:
        """:meth:`fetch_splits` as a frame; refused rows go to ``on_rejected``."""
        return self._frame(self.fetch_splits(symbol, from_date, to_date))

    def get_dividends(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None
    ) -> pd.DataFrame:
        """:meth:`fetch_dividends` as a frame; refused rows go to ``on_rejected``."""
        return self._frame(self.fetch_dividends(symbol, from_date, to_date))

    def _actions(
        self, kind: str, date_field: str, symbol: str, lo: DateLike | None, hi: DateLike | None, limit: int
    ) -> ParseResult:
        params: dict[str, Any] = {"order": "asc", "sort": date_field, "limit": max(1, min(limit, 1000))}
        if symbol:  # "" asks for the whole market's actions (the universe backfill), paged like any list
            params["ticker"] = symbol.strip().upper()
        if lo is not None:
            params[f"{date_field}.gte"] = as_date(lo).isoformat()
        if hi is not None:
            params[f"{date_field}.lte"] = as_date(hi).isoformat()
        parse = parse_splits if kind == "splits" else parse_dividends
        # A short cache: the list grows whenever an action is announced, and the daily job must see it that day.
        pages = self._pages(kind, f"/v3/reference/{kind}", params, CacheTTL.NEWS)
        return ParseResult.concat(parse(page.body, endpoint=kind) for page in pages)

    # -- reference and ticks -------------------------------------------------------------------------------------

    def get_ticker_details(self, symbol: str, date: DateLike | None = None) -> dict[str, Any]:
        """Reference data of a ticker (``date`` for a point in time) as a dict of the vendor's fields."""
        params = {"date": as_date(date).isoformat()} if date is not None else None
        page = self._get(
            "ticker_details", f"/v3/reference/tickers/{symbol.strip().upper()}", params, CacheTTL.REFERENCE
        )
        parsed = parse_ticker_details(page.body, endpoint="ticker_details")
        self._reject(parsed.rejected)
        return {} if parsed.frame.empty else {k: _plain(v) for k, v in parsed.frame.iloc[0].items()}

    def get_ticker_events(self, ident: str, types: str = "ticker_change") -> TickerEvents | None:
        """The ticker changes of the security behind ``ident`` (a ticker it trades under **now**, or a composite
        FIGI), oldest first; None when the vendor knows no such security (404: e.g. an old name, FB after 2022-06-09).
        Refused events go to ``on_rejected``."""
        path = f"/vX/reference/tickers/{ident.strip().upper()}/events"
        try:
            page = self._get("ticker_events", path, {"types": types}, CacheTTL.REFERENCE)
        except ClientError as exc:
            if exc.status == 404:
                return None
            raise
        parsed = parse_ticker_events(page.body, endpoint="ticker_events")
        self._reject(parsed.rejected)
        return parsed

    def list_tickers(
        self,
        date: DateLike | None = None,
        *,
        active: bool = True,
        market: str | None = "stocks",
        ticker_type: str | None = None,
        ticker: str | None = None,
        limit: int = 1000,
    ) -> pd.DataFrame:
        """Every ticker of ``market`` as of ``date`` (default: the vendor's today), all pages: with ``active`` those
        trading that day (including ones delisted later: a survivorship-free universe), else those that no longer
        did. Columns :data:`~ingestion.polygon.tickers.TICKER_LIST_COLUMNS`; refused rows go to ``on_rejected``."""
        params: dict[str, Any] = {
            "active": str(active).lower(), "sort": "ticker", "order": "asc", "limit": max(1, min(limit, 1000)),
        }  # fmt: skip
        for name, value in (("market", market), ("type", ticker_type), ("ticker", ticker)):
            if value:
                params[name] = value
        if date is not None:
            params["date"] = as_date(date).isoformat()
        pages = self._pages("tickers", "/v3/reference/tickers", params, CacheTTL.REFERENCE)
        frame = self._frame(ParseResult.concat(parse_tickers(page.body, endpoint="tickers") for page in pages))
        return frame.drop_duplicates("ticker", keep="last").reset_index(drop=True)

    def get_ticker_news(
        self, symbol: str, limit: int = 100, published_utc_gte: DateLike | None = None, order: str = "desc"
    ) -> pd.DataFrame:
        """Up to ``limit`` news items mentioning ``symbol`` (``published_utc`` as UTC timestamps)."""
        params: dict[str, Any] = {"ticker": symbol.strip().upper(), "order": order, "limit": min(limit, 1000)}
        if published_utc_gte is not None:
            params["published_utc.gte"] = as_date(published_utc_gte).isoformat()
        pages: list[ParseResult] = []
        total = 0
        for page in self._pages("news", "/v2/reference/news", params, CacheTTL.NEWS):
            pages.append(parse_news(page.body, endpoint="news"))
            total += len(pages[-1].frame)
            if total >= limit:
                break  # leaving the loop sends no request for the next page
        return self._frame(ParseResult.concat(pages)).head(limit)

    def get_trades(self, symbol: str, start_ns: int, end_ns: int, limit: int = MAX_LIMIT) -> pd.DataFrame:
        """v3 trades with ``start_ns <= sip_timestamp < end_ns`` (epoch nanoseconds UTC), every page."""
        return self._ticks("trades", symbol, start_ns, end_ns, limit)

    def get_quotes(self, symbol: str, start_ns: int, end_ns: int, limit: int = MAX_LIMIT) -> pd.DataFrame:
        """v3 quotes with ``start_ns <= sip_timestamp < end_ns`` (epoch nanoseconds UTC), every page."""
        return self._ticks("quotes", symbol, start_ns, end_ns, limit)

    def _ticks(self, kind: str, symbol: str, start_ns: int, end_ns: int, limit: int) -> pd.DataFrame:
        sym = symbol.strip().upper()
        params = {
            "timestamp.gte": int(start_ns), "timestamp.lt": int(end_ns), "order": "asc", "sort": "timestamp",
            "limit": max(1, min(limit, MAX_LIMIT)),
        }  # fmt: skip
        parse = parse_trades if kind == "trades" else parse_quotes
        pages = self._pages(kind, f"/v3/{kind}/{sym}", params, CacheTTL.HISTORICAL)
        return self._frame(ParseResult.concat(parse(page.body, symbol=sym, endpoint=kind) for page in pages))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PolygonRESTClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """numpy/pandas scalars to plain Python for a details dict."""
    if value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
