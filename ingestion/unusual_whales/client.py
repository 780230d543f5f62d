"""``EnhancedUnusualWhalesClient`` (also ``UnusualWhalesClient``): Unusual Whales REST endpoints as standard frames.

Every request goes through the shared resilient core (:mod:`ingestion.http`, built by
:func:`~ingestion.vendor_http.build_vendor_http`: limiter, cache, breaker, retry) with UW's quota rules plugged into
its seams (:mod:`ingestion.unusual_whales.quota`), and every response through the pure parsers of
:mod:`ingestion.unusual_whales.parse`. Rows that fail validation go to ``on_rejected`` (the jobs quarantine them);
they never vanish.

The vendor has no cursors: flow alerts and dark-pool prints are windowed by ``newer_than`` / ``older_than`` (whole
epoch seconds, both ends inclusive) and read newest first, so a window with more rows than one page is read
backwards, each page ending at the oldest second of the previous one (the overlap is removed by alert id, or for
prints by identical rows). Insider transactions are paged with ``page``.

Times: every instant column is ``datetime64[us, UTC]``; calendar days (``date``, ``expiry``) are ``date32``; a
``date`` argument is a New York trading day. Money is USD as ``float64`` (see the parser's module doc for why).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pandas as pd

from ingestion import calendar
from ingestion.config import UW_DEFAULT_BASE_URL, settings
from ingestion.errors import ConfigError, IngestionError
from ingestion.http import DEFAULT_MAX_PAGES, CacheTTL, Clock, HTTPResult, VendorHTTP, paginate, wall_clock
from ingestion.rejects import ParseResult, Rejected, RejectSink, hand_off
from ingestion.unusual_whales import parse
from ingestion.unusual_whales.collector import FlowAlertCollector, OnPoll, Sink
from ingestion.unusual_whales.quota import QuotaGuard
from ingestion.unusual_whales.timestamps import new_york_day_start
from ingestion.vendor_http import HTTPOptions, build_vendor_http

log = logging.getLogger(__name__)

VENDOR: Final = parse.VENDOR
CLIENT_API_ID: Final = "100001"
"""Sent as ``UW-CLIENT-API-ID`` on every request, as the vendor's guide asks."""
DEFAULT_REQUESTS_PER_MINUTE: Final = 120
"""The vendor's own client's budget; the ``x-uw-*`` counters then tighten it to what the plan really allows."""
ALERT_PAGE: Final = 200
DARK_POOL_PAGE: Final = 500
INSIDER_PAGE: Final = 500

DateLike = str | dt.date | dt.datetime
Parser = Callable[..., ParseResult]


def uw_api_token(explicit: str | None = None) -> str:
    """The token passed in, else ``UW_API_TOKEN`` read now (never at import)."""
    token = (explicit or "").strip() or settings().uw_api_token
    if not token:
        raise ConfigError("no Unusual Whales token: set UW_API_TOKEN, or run against the simulator")
    return token


def epoch_seconds(value: DateLike | pd.Timestamp | int | float) -> int:
    """Whole epoch seconds for ``newer_than``/``older_than``: numbers are taken as epoch seconds, a date as its New
    York midnight, a naive datetime as UTC."""
    if isinstance(value, int | float):
        return math.floor(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return int(new_york_day_start(value).value // 1_000_000_000)
    if isinstance(value, str) and len(value) == 10:
        return int(new_york_day_start(dt.date.fromisoformat(value)).value // 1_000_000_000)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value // 1_000_000_000)


@dataclass
class ActivityReport:
    """What :meth:`EnhancedUnusualWhalesClient.get_all_unusual_activity` gathered: a frame per source that
    succeeded, and the error text of each source that failed."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __getitem__(self, source: str) -> pd.DataFrame:
        return self.frames[source]


class EnhancedUnusualWhalesClient:
    """Unusual Whales REST client. Token: ``api_key`` or ``UW_API_TOKEN`` (read at construction).

    Args:
        api_key: the token; sent only as ``Authorization: Bearer``.
        base_url: ``https://api.unusualwhales.com`` by default (a simulator's URL works too).
        use_cache: cache responses of closed days (Redis when ``redis_url`` is set, in-process otherwise).
        max_workers: threads for :meth:`get_all_unusual_activity`; they share the limiter.
        batch_size: flow alerts per batch handed to the collector's sink.
        redis_url: share cache, rate limiter and circuit breaker between processes.
        requests_per_minute: client-side budget (None: no limiter); the vendor's counters tighten it.
        options: the HTTP knobs as one value (overrides ``use_cache``, ``redis_url``, ``requests_per_minute``).
        on_rejected: where rows that failed validation go (default: a warning with the count).
        flow_sink: the default sink of :meth:`start_options_flow_collection` (a batch of parsed flow alerts).
        state_path: where the collector persists its watermark (default ``<state_dir>/uw_flow_collector.json``).
        clock: epoch seconds UTC for the quota reset and "is this day closed" (tests pass the simulator's clock).
        quota_warn_fraction: warn (``QUOTA_LOW`` alert) when this share of the daily budget is left.
        http: a ready :class:`~ingestion.http.VendorHTTP` (tests inject one); the quota hooks are added to it.
        max_pages: pages one call (or one collector poll) may read before its cursor chain counts as endless
            (:class:`~ingestion.http.PagingError`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = UW_DEFAULT_BASE_URL,
        use_cache: bool = True,
        max_workers: int = 4,
        batch_size: int = 500,
        *,
        redis_url: str | None = None,
        requests_per_minute: int | None = DEFAULT_REQUESTS_PER_MINUTE,
        options: HTTPOptions | None = None,
        on_rejected: RejectSink | None = None,
        flow_sink: Sink | None = None,
        state_path: Path | None = None,
        clock: Clock = wall_clock,
        quota_warn_fraction: float = 0.1,
        http: VendorHTTP | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.max_workers = max_workers
        self.max_pages = max_pages
        self.batch_size = batch_size
        self.on_rejected = on_rejected
        self.flow_sink = flow_sink
        self.state_path = state_path
        self.clock = clock
        self.quota = QuotaGuard(clock=clock, warn_fraction=quota_warn_fraction, vendor=VENDOR)
        headers = {"UW-CLIENT-API-ID": CLIENT_API_ID}
        if http is None:
            opts = options or HTTPOptions(
                use_cache=use_cache, redis_url=redis_url, requests_per_minute=requests_per_minute
            )
            http = build_vendor_http(
                VENDOR,
                base_url,
                uw_api_token(api_key),
                opts,
                headers=headers,
                on_response=[self.quota.on_response],
                error_mapper=self.quota.error_mapper,
                auth_hint="check UW_API_TOKEN",
            )
        else:
            http.headers.update(headers)
            http.on_response.append(self.quota.on_response)
            http.error_mapper = self.quota.error_mapper
        self.quota.limiter = http.limiter
        self.http = http
        self._collector: FlowAlertCollector | None = None
        self._collector_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _today(self) -> dt.date:
        return calendar.new_york_date(pd.Timestamp(self.clock(), unit="s", tz="UTC"))

    def _ttl_for(self, last_day: dt.date | None) -> float | None:
        """Cache only answers about closed days: today's data is still arriving."""
        if last_day is None or last_day >= self._today():
            return None
        return CacheTTL.HISTORICAL

    def _get(self, endpoint: str, path: str, params: Mapping[str, Any] | None, ttl: float | None) -> HTTPResult:
        # A held quota refuses here, before the limiter, the breaker or the socket see anything.
        self.quota.check(endpoint)
        return self.http.get(endpoint, path, params, cache_ttl=ttl, cache_if=_has_data)

    def _fetch(
        self, parser: Parser, endpoint: str, path: str, params: Mapping[str, Any] | None, ttl: float | None
    ) -> ParseResult:
        page = self._get(endpoint, path, params, ttl)
        return parser(page.body, endpoint=path)

    def _reject(self, rejected: list[Rejected]) -> None:
        hand_off(rejected, self.on_rejected, "Unusual Whales")

    def _frame(self, result: ParseResult) -> pd.DataFrame:
        self._reject(result.rejected)
        return result.frame

    def _page_back(
        self,
        fetch: Callable[[int | None], ParseResult],
        *,
        endpoint: str,
        time_column: str,
        key: list[str] | None,
        limit: int,
        newer_than: int | None,
        older_than: int | None,
        all_pages: bool = True,
    ) -> ParseResult:
        """Read a newest-first, ``older_than``-windowed endpoint backwards until a page comes back short.

        Each next page ends one second after the oldest row of the previous one (``older_than`` is an instant: a
        window ending at the oldest row's whole second would drop the rest of that second beyond the page), so rows
        of a second cut by a page are read again and removed here by ``key`` (all columns when None).
        """

        def step_back(older: int | None, page: ParseResult) -> int | None:
            if _rows_sent(page) < limit or page.frame.empty:
                return None
            oldest = math.floor(pd.Timestamp(page.frame[time_column].min()).value / 1e9) + 1
            if older is not None and oldest >= older:
                # A full page within one second: whole-second windows cannot reach the rest of it.
                log.warning("more than %d rows in one second at %d; stepping past it", limit, older)
                oldest = older - 1
            return None if newer_than is not None and oldest < newer_than else oldest

        pages = paginate(
            fetch, step_back, older_than, take=None if all_pages else 1, max_pages=self.max_pages, vendor=VENDOR,
            endpoint=endpoint,
        )  # fmt: skip
        merged = ParseResult.concat(pages)
        frame = merged.frame.drop_duplicates(subset=key).reset_index(drop=True)
        return ParseResult(frame, merged.rejected, merged.drift)

    # -- flow alerts ---------------------------------------------------------------------------------------------

    def _alert_page(self, newer_than: int | None, older_than: int | None, params: Mapping[str, Any]) -> ParseResult:
        query = {"limit": ALERT_PAGE, **params, "newer_than": newer_than, "older_than": older_than}
        # An alert window is final once its end is well past (alerts are published shortly after created_at).
        settled = older_than is not None and older_than < self.clock() - 3600
        ttl = CacheTTL.HISTORICAL if settled else None
        return self._fetch(parse.parse_flow_alerts, "flow-alerts", parse.FLOW_ALERTS, query, ttl)

    def fetch_flow_alerts(
        self,
        newer_than: int | None = None,
        older_than: int | None = None,
        *,
        all_pages: bool = True,
        **filters: Any,
    ) -> ParseResult:
        """Flow alerts with ``newer_than <= created_at <= older_than`` (epoch seconds UTC, inclusive), newest first,
        every page (or only the newest ``limit`` with ``all_pages=False``). ``filters`` are the endpoint's query
        parameters (``ticker_symbol``, ``min_premium``, ``is_sweep``, ``rule_name[]``, ``limit``...)."""
        limit = int(filters.get("limit", ALERT_PAGE))
        return self._page_back(
            lambda older: self._alert_page(newer_than, older, filters),
            endpoint="flow-alerts",
            time_column="created_at",
            key=["id"],
            limit=limit,
            newer_than=newer_than,
            older_than=older_than,
            all_pages=all_pages,
        )

    def get_unusual_options(
        self,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        min_volume: int | None = None,
        min_open_interest: int | None = None,
        min_premium: float | None = None,
        *,
        ticker_symbol: str | Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Flow alerts created on New York days ``from_date`` to ``to_date`` (inclusive), every page; without dates
        the newest page. Filters: contracts traded, open interest, premium (USD), tickers."""
        newer = epoch_seconds(calendar.as_date(from_date)) if from_date is not None else None
        older = epoch_seconds(calendar.as_date(to_date) + dt.timedelta(days=1)) - 1 if to_date is not None else None
        filters = _alert_filters(
            ticker_symbol=ticker_symbol, min_volume=min_volume, min_open_interest=min_open_interest,
            min_premium=min_premium,
        )  # fmt: skip
        result = self.fetch_flow_alerts(newer, older, all_pages=newer is not None or older is not None, **filters)
        return self._frame(result)

    def get_options_alerts(
        self,
        ticker: str | Iterable[str] | None = None,
        *,
        newer_than: DateLike | pd.Timestamp | int | None = None,
        older_than: DateLike | pd.Timestamp | int | None = None,
        limit: int = ALERT_PAGE,
        is_sweep: bool | None = None,
        is_call: bool | None = None,
        is_put: bool | None = None,
        rule_names: Iterable[str] | None = None,
        min_premium: float | None = None,
        all_pages: bool = False,
    ) -> pd.DataFrame:
        """Flow alerts (newest first): the newest ``limit`` by default, every page of the window with ``all_pages``.

        ``newer_than``/``older_than``: epoch seconds, a UTC instant, or a date (its New York midnight).
        """
        filters = _alert_filters(
            ticker_symbol=ticker, is_sweep=is_sweep, is_call=is_call, is_put=is_put, min_premium=min_premium,
            rule_names=rule_names, limit=max(1, min(limit, ALERT_PAGE)),
        )  # fmt: skip
        newer = epoch_seconds(newer_than) if newer_than is not None else None
        older = epoch_seconds(older_than) if older_than is not None else None
        return self._frame(self.fetch_flow_alerts(newer, older, all_pages=all_pages, **filters))

    # -- per-ticker flow -----------------------------------------------------------------------------------------

    def fetch_flow_data(self, ticker: str, *, side: str | None = None, min_premium: int | None = None) -> ParseResult:
        """Options flow of the last closed session per expiry (``/api/stock/{ticker}/flow-recent``)."""
        params = {"side": side, "min_premium": min_premium}
        path = parse.FLOW_RECENT.format(ticker=_symbol(ticker))
        return self._fetch(parse.parse_flow_recent, "flow-recent", path, params, None)

    def get_flow_data(self, ticker: str, *, side: str | None = None, min_premium: int | None = None) -> pd.DataFrame:
        """:meth:`fetch_flow_data` as a frame."""
        return self._frame(self.fetch_flow_data(ticker, side=side, min_premium=min_premium))

    def fetch_options_volume(self, ticker: str, date: DateLike | None = None, limit: int = 1) -> ParseResult:
        """Daily options volume and premium of the ``limit`` sessions ending at ``date`` (a session, New York)."""
        sym = _symbol(ticker)
        day = calendar.as_date(date) if date is not None else None
        params = {"date": day.isoformat() if day else None, "limit": max(1, min(limit, 500))}
        path = parse.OPTIONS_VOLUME.format(ticker=sym)
        return self._fetch(parse.parse_options_volume, "options-volume", path, params, self._ttl_for(day))

    def get_options_volume(self, ticker: str, date: DateLike | None = None, limit: int = 1) -> pd.DataFrame:
        """:meth:`fetch_options_volume` as a frame (one row per symbol and day)."""
        return self._frame(self.fetch_options_volume(ticker, date, limit))

    def get_net_premium_ticks(self, ticker: str, date: DateLike | None = None) -> pd.DataFrame:
        """Per-minute net premium of a session (``tape_time`` = the minute, UTC); the current session by default."""
        day = calendar.as_date(date) if date is not None else None
        path = parse.NET_PREM_TICKS.format(ticker=_symbol(ticker))
        params = {"date": day.isoformat() if day else None}
        return self._frame(self._fetch(parse.parse_net_prem_ticks, "net-prem-ticks", path, params, self._ttl_for(day)))

    def get_market_tide(self, date: DateLike | None = None, interval_5m: bool | None = None) -> pd.DataFrame:
        """Market-wide cumulative net premium ticks of a session (the current one by default)."""
        day = calendar.as_date(date) if date is not None else None
        params = {"date": day.isoformat() if day else None, "interval_5m": interval_5m}
        return self._frame(
            self._fetch(parse.parse_market_tide, "market-tide", parse.MARKET_TIDE, params, self._ttl_for(day))
        )

    # -- dark pool -----------------------------------------------------------------------------------------------

    def fetch_dark_pool(
        self,
        ticker: str | None = None,
        date: DateLike | None = None,
        *,
        newer_than: int | None = None,
        older_than: int | None = None,
        all_pages: bool = True,
    ) -> ParseResult:
        """Dark-pool prints, newest first. With ``ticker``: ``/api/darkpool/{ticker}`` for ``date`` (New York) or the
        ``newer_than``/``older_than`` window (epoch seconds), every page. Without: the market-wide recent feed."""
        day = calendar.as_date(date) if date is not None else None
        day_param = day.isoformat() if day else None
        if ticker is None:
            params = {"date": day_param, "limit": 200}
            return self._fetch(parse.parse_dark_pool, "darkpool-recent", parse.DARK_POOL_RECENT, params, None)
        path = parse.DARK_POOL_TICKER.format(ticker=_symbol(ticker))
        ttl = self._ttl_for(day)

        def page(older: int | None) -> ParseResult:
            params = {"date": day_param, "limit": DARK_POOL_PAGE, "newer_than": newer_than, "older_than": older}
            return self._fetch(parse.parse_dark_pool, "darkpool-ticker", path, params, ttl)

        return self._page_back(
            page,
            endpoint="darkpool-ticker",
            time_column="executed_at",
            key=None,
            limit=DARK_POOL_PAGE,
            newer_than=newer_than,
            older_than=older_than,
            all_pages=all_pages,
        )

    def get_dark_pool_data(
        self,
        ticker: str | None = None,
        date: DateLike | None = None,
        *,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> pd.DataFrame:
        """:meth:`fetch_dark_pool` as a frame. ``canceled`` marks corrected prints (kept; aggregates drop them)."""
        return self._frame(self.fetch_dark_pool(ticker, date, newer_than=newer_than, older_than=older_than))

    # -- insiders and ETFs ---------------------------------------------------------------------------------------

    def fetch_insider_trading(
        self,
        ticker: str | Iterable[str] | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        *,
        group: bool = False,
        transaction_codes: Iterable[str] | None = None,
        max_pages: int | None = None,
        page_size: int = INSIDER_PAGE,
    ) -> ParseResult:
        """Insider transactions whose *transaction* date is in ``[start_date, end_date]``, every page.

        ``group=False`` (default) asks for raw transactions, so each row's value is exact; ``True`` gets the
        vendor's groups (same owner, day and code). ``page_size`` rows per request (at most 500).
        """
        size = max(1, min(page_size, INSIDER_PAGE))
        end = calendar.as_date(end_date) if end_date is not None else None
        params: dict[str, Any] = {
            "ticker_symbol": _symbols_param(ticker),
            "start_date": calendar.as_date(start_date).isoformat() if start_date is not None else None,
            "end_date": end.isoformat() if end else None,
            "group": group,
            "limit": size,
        }
        if transaction_codes:
            params["transaction_codes[]"] = list(transaction_codes)
        ttl = self._ttl_for(end)

        def fetch(page: int) -> ParseResult:
            path, endpoint = parse.INSIDER_TRANSACTIONS, "insider-transactions"
            return self._fetch(parse.parse_insider_transactions, endpoint, path, {**params, "page": page}, ttl)

        def next_page(page: int, result: ParseResult) -> int | None:
            return page + 1 if _rows_sent(result) >= size else None

        pages = paginate(
            fetch, next_page, 0, take=max_pages, max_pages=self.max_pages, vendor=VENDOR,
            endpoint="insider-transactions",
        )  # fmt: skip
        return ParseResult.concat(pages)

    def get_insider_trading(
        self,
        ticker: str | Iterable[str] | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        *,
        group: bool = False,
        transaction_codes: Iterable[str] | None = None,
        max_pages: int | None = None,
        page_size: int = INSIDER_PAGE,
    ) -> pd.DataFrame:
        """:meth:`fetch_insider_trading` as a frame (``filed_at`` UTC = when the filing became public)."""
        return self._frame(
            self.fetch_insider_trading(
                ticker,
                start_date,
                end_date,
                group=group,
                transaction_codes=transaction_codes,
                max_pages=max_pages,
                page_size=page_size,
            )
        )

    def fetch_ohlc(
        self,
        ticker: str,
        candle_size: str = "1d",
        *,
        date: DateLike | None = None,
        end_date: DateLike | None = None,
        timeframe: str | None = None,
        limit: int = 2500,
    ) -> ParseResult:
        """OHLC candles (``1m``..``4h``, ``1d``, ``1w``) of one session (``date``) or of ``timeframe`` (e.g. ``5Y``)
        ending at ``end_date``. Prices are as traded (not split-adjusted); ``volume`` is the candle's own."""
        day = calendar.as_date(date) if date is not None else None
        end = calendar.as_date(end_date) if end_date is not None else None
        params = {
            "date": day.isoformat() if day else None,
            "end_date": end.isoformat() if end else None,
            "timeframe": timeframe,
            "limit": max(1, min(limit, 2500)),
        }
        path = parse.OHLC.format(ticker=_symbol(ticker), candle_size=candle_size)
        return self._fetch(parse.parse_ohlc, "ohlc", path, params, self._ttl_for(day or end))

    def get_ohlc(
        self, ticker: str, candle_size: str = "1d", *, date: DateLike | None = None, end_date: DateLike | None = None
    ) -> pd.DataFrame:
        """:meth:`fetch_ohlc` as a frame (Polygon's fallback for bars: see ingestion.jobs.fallback)."""
        return self._frame(self.fetch_ohlc(ticker, candle_size, date=date, end_date=end_date))

    def fetch_etf_flow(
        self, ticker: str, start_date: DateLike | None = None, end_date: DateLike | None = None
    ) -> ParseResult:
        """Daily creations/redemptions of an ETF over ``[start_date, end_date]`` (at most 3 years per call)."""
        end = calendar.as_date(end_date) if end_date is not None else None
        params = {
            "start_date": calendar.as_date(start_date).isoformat() if start_date is not None else None,
            "end_date": end.isoformat() if end else None,
        }
        path = parse.ETF_IN_OUTFLOW.format(ticker=_symbol(ticker))
        return self._fetch(parse.parse_etf_in_outflow, "etf-in-outflow", path, params, self._ttl_for(end))

    def get_etf_flow(
        self, ticker: str, start_date: DateLike | None = None, end_date: DateLike | None = None
    ) -> pd.DataFrame:
        """:meth:`fetch_etf_flow` as a frame: ``change`` in shares, ``change_prem`` in USD; empty for a stock."""
        return self._frame(self.fetch_etf_flow(ticker, start_date, end_date))

    # -- everything at once --------------------------------------------------------------------------------------

    def get_all_unusual_activity(
        self, tickers: Iterable[str] | None = None, *, etfs: Iterable[str] = ()
    ) -> ActivityReport:
        """Alerts, per-ticker flow, dark pool, insider trading and ETF flow, fetched in parallel.

        One failing source does not sink the others: its error is in :attr:`ActivityReport.errors` and the frames of
        the sources that succeeded are returned. ``tickers`` None means market-wide where the endpoint allows it.
        """
        names = [_symbol(t) for t in tickers] if tickers is not None else None

        def per_ticker(fetch: Callable[[str], ParseResult], symbols: Iterable[str]) -> pd.DataFrame:
            return self._frame(ParseResult.concat(fetch(s) for s in symbols))

        sources: dict[str, Callable[[], pd.DataFrame]] = {
            "options_alerts": lambda: self.get_options_alerts(names),
            "dark_pool": lambda: per_ticker(self.fetch_dark_pool, names) if names else self.get_dark_pool_data(),
            "insider_trading": lambda: self.get_insider_trading(names, max_pages=1),
        }
        if names:
            sources["flow"] = lambda: per_ticker(self.fetch_flow_data, names)
        etf_list = [_symbol(e) for e in etfs]
        if etf_list:
            sources["etf_flow"] = lambda: per_ticker(self.fetch_etf_flow, etf_list)

        def run(name: str) -> tuple[str, pd.DataFrame | IngestionError]:
            try:
                return name, sources[name]()
            except IngestionError as exc:
                return name, exc

        report = ActivityReport()
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers), thread_name_prefix="uw") as pool:
            for name, outcome in pool.map(run, list(sources)):
                if isinstance(outcome, IngestionError):
                    report.errors[name] = str(outcome)
                    log.warning("unusual activity source %s failed: %s", name, outcome)
                else:
                    report.frames[name] = outcome
        return report

    # -- continuous flow collection ------------------------------------------------------------------------------

    def options_flow_collector(
        self,
        sink: Sink | None = None,
        *,
        state_path: Path | None = None,
        interval: float = 5.0,
        start_at: pd.Timestamp | None = None,
        ticker_symbol: str | Iterable[str] | None = None,
        overlap_s: int = 60,
        on_poll: OnPoll | None = None,
        publication_lag_s: float = 0.0,
    ) -> FlowAlertCollector:
        """A :class:`~ingestion.unusual_whales.collector.FlowAlertCollector` polling this client (not started).

        ``sink`` gets batches of ``batch_size`` parsed alerts, oldest first (default: the constructor's
        ``flow_sink``). The watermark persists at ``state_path`` (default: the constructor's, else
        ``<state_dir>/uw_flow_collector.json``), so a new client on the same path resumes with no gap and no repeat.
        ``start_at`` (UTC) is where a collector with no saved state begins. With ``on_poll`` the collector runs live:
        every poll hands its new alerts to the sink at once and then calls ``on_poll(as_of)``, ``as_of`` being this
        client's clock before the poll minus ``publication_lag_s`` (see :mod:`ingestion.unusual_whales.collector`).
        """
        target = sink or self.flow_sink
        if target is None:
            raise ConfigError("no sink for flow alerts: pass sink= (or flow_sink= to the client)")
        path = state_path or self.state_path
        if path is None:
            path = settings().state_dir / "uw_flow_collector.json"
        filters = _alert_filters(ticker_symbol=ticker_symbol, limit=ALERT_PAGE)

        def fetch(newer_than: int, older_than: int | None) -> pd.DataFrame:
            page = self._alert_page(newer_than, older_than, filters)
            self._reject(page.rejected)
            frame = page.frame.copy()
            frame.attrs["raw_rows"] = _rows_sent(page)
            return frame

        return FlowAlertCollector(
            fetch,
            target,
            path,
            page_limit=ALERT_PAGE,
            batch_size=self.batch_size,
            overlap_s=overlap_s,
            interval=interval,
            start_at=start_at,
            max_pages=self.max_pages,
            clock=self.clock if on_poll is not None else None,
            publication_lag_s=publication_lag_s,
            flush_each_poll=on_poll is not None,
            on_poll=on_poll,
        )

    def start_options_flow_collection(
        self,
        sink: Sink | None = None,
        *,
        state_path: Path | None = None,
        interval: float = 5.0,
        start_at: pd.Timestamp | None = None,
        ticker_symbol: str | Iterable[str] | None = None,
    ) -> FlowAlertCollector:
        """Start polling flow alerts in a background thread (see :meth:`options_flow_collector`); returns the
        collector. Calling it while collection runs returns the running collector."""
        with self._collector_lock:
            if self._collector is not None and self._collector.running:
                return self._collector
            self._collector = self.options_flow_collector(
                sink, state_path=state_path, interval=interval, start_at=start_at, ticker_symbol=ticker_symbol
            )
            self._collector.start()
            return self._collector

    def stop_options_flow_collection(self, timeout: float = 30.0) -> None:
        """Stop polling and hand the last partial batch to the sink (its watermark is saved with it)."""
        with self._collector_lock:
            if self._collector is not None:
                self._collector.stop(timeout)

    @property
    def options_flow_running(self) -> bool:
        """True while the background collector is polling."""
        return self._collector is not None and self._collector.running

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the collector (flushing it) and close pooled connections."""
        self.stop_options_flow_collection()
        self.http.close()

    def __enter__(self) -> EnhancedUnusualWhalesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


UnusualWhalesClient = EnhancedUnusualWhalesClient


def _has_data(result: HTTPResult) -> bool:
    """A page worth caching: JSON with a ``data`` list or object (an error body or a torn page is not)."""
    try:
        payload = orjson.loads(result.body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("data"), list | dict)


def _rows_sent(page: ParseResult) -> int:
    """Rows the vendor put on a page: a rejected row still took a place, so it counts toward a full page."""
    return len(page.frame) + len(page.rejected)


def _symbol(ticker: str) -> str:
    sym = ticker.strip().upper()
    if not sym:
        raise ConfigError("empty ticker: pass a symbol such as AAPL")
    return sym


def _symbols_param(tickers: str | Iterable[str] | None) -> str | None:
    if tickers is None:
        return None
    names = [tickers] if isinstance(tickers, str) else list(tickers)
    return ",".join(_symbol(t) for t in names) or None


def _alert_filters(
    *,
    ticker_symbol: str | Iterable[str] | None = None,
    rule_names: Iterable[str] | None = None,
    **values: Any,
) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if v is not None}
    tickers = _symbols_param(ticker_symbol)
    if tickers:
        out["ticker_symbol"] = tickers
    if rule_names:
        out["rule_name[]"] = list(rule_names)
    return out


__all__ = [
    "CLIENT_API_ID",
    "ActivityReport",
    "EnhancedUnusualWhalesClient",
    "UnusualWhalesClient",
    "epoch_seconds",
    "uw_api_token",
]
