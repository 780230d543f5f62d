"""``PolygonClient``: the seed's facade over the REST client and the WebSocket client.

It owns one :class:`~ingestion.polygon.rest.PolygonRESTClient` and, once :meth:`start_websocket` is called, one
:class:`~ingestion.polygon.websocket.PolygonWebSocketClient`. Given a ``feature_store`` writer, every frame of bars
it fetches is also written through it (as the seed did); the writer decides where (Parquet, Redis).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pandas as pd

from ingestion.config import POLYGON_DEFAULT_BASE_URL
from ingestion.polygon.rest import DateLike, PolygonRESTClient, polygon_api_key
from ingestion.polygon.tickers import TickerEvents
from ingestion.polygon.websocket import PolygonWebSocketClient
from ingestion.rejects import hand_off


class BarWriter(Protocol):
    """What ``feature_store=`` must offer: ``write_bars(timespan, frame)`` for each fetched frame of bars."""

    def write_bars(self, timespan: str, frame: pd.DataFrame) -> Any: ...


class PolygonClient:
    """Coordinates Polygon REST (history) and WebSocket (real time) for one key.

    Args:
        api_key: the key, else ``POLYGON_API_KEY`` / ``MASSIVE_API_KEY`` read now.
        db_manager: kept for the seed's signature; an object with ``save(name, frame)`` receives every bar frame.
        feature_store: a :class:`BarWriter` receiving every bar frame (the jobs' writer lands it in Feast).
        use_cache: cache REST responses.
        base_url, ws_url, **rest_options: passed to the REST client (``redis_url``, ``requests_per_minute``, ...)
            and the WebSocket client.
    """

    def __init__(
        self,
        api_key: str | None = None,
        db_manager: Any = None,
        feature_store: BarWriter | None = None,
        use_cache: bool = True,
        *,
        base_url: str = POLYGON_DEFAULT_BASE_URL,
        ws_url: str | None = None,
        **rest_options: Any,
    ) -> None:
        self._api_key = polygon_api_key(api_key)
        self.db_manager = db_manager
        self.feature_store = feature_store
        self.rest = PolygonRESTClient(self._api_key, base_url, use_cache, **rest_options)
        self._ws_url = ws_url
        self.websocket: PolygonWebSocketClient | None = None

    def _written(self, timespan: str, frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame):
            if self.feature_store is not None:
                self.feature_store.write_bars(timespan, frame)
            if self.db_manager is not None:
                self.db_manager.save(f"ohlcv_{timespan}", frame)
        return frame

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
        """See :meth:`PolygonRESTClient.get_aggregates`; the frame is also written through ``feature_store``."""
        frame = self.rest.get_aggregates(symbol, multiplier, timespan, from_date, to_date, adjusted, sort, limit)
        return self._written(timespan, frame)

    get_aggs = get_aggregates

    def get_daily_bars(
        self, symbol: str, from_date: DateLike, to_date: DateLike, adjusted: bool = True
    ) -> pd.DataFrame:
        return self._written("day", self.rest.get_daily_bars(symbol, from_date, to_date, adjusted))

    def get_intraday_bars(
        self,
        symbol: str,
        from_date: DateLike,
        to_date: DateLike,
        multiplier: int = 1,
        timespan: str = "minute",
        adjusted: bool = True,
    ) -> pd.DataFrame:
        frame = self.rest.get_intraday_bars(symbol, from_date, to_date, multiplier, timespan, adjusted)
        return self._written(timespan, frame)

    def get_grouped_daily(self, day: DateLike, adjusted: bool = True) -> pd.DataFrame:
        """Every ticker's daily bar of one session (see :meth:`PolygonRESTClient.fetch_grouped_daily`); refused rows
        go to the REST client's ``on_rejected``, the frame through ``feature_store``."""
        parsed = self.rest.fetch_grouped_daily(day, adjusted)
        hand_off(parsed.rejected, self.rest.on_rejected, "Polygon")
        return self._written("day", parsed.frame)

    def get_ticker_details(self, symbol: str, date: DateLike | None = None) -> dict[str, Any]:
        return self.rest.get_ticker_details(symbol, date)

    def get_ticker_events(self, ident: str, types: str = "ticker_change") -> TickerEvents | None:
        """See :meth:`PolygonRESTClient.get_ticker_events`: a security's ticker changes (None: not found)."""
        return self.rest.get_ticker_events(ident, types)

    def list_tickers(self, date: DateLike | None = None, *, active: bool = True, **filters: Any) -> pd.DataFrame:
        """See :meth:`PolygonRESTClient.list_tickers`: every ticker as of ``date``, all pages."""
        return self.rest.list_tickers(date, active=active, **filters)

    def get_ticker_news(self, symbol: str, limit: int = 100) -> pd.DataFrame:
        return self.rest.get_ticker_news(symbol, limit)

    def get_splits(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None
    ) -> pd.DataFrame:
        """See :meth:`PolygonRESTClient.get_splits`: ``corporate_actions`` rows of kind ``split``."""
        return self.rest.get_splits(symbol, from_date, to_date)

    def get_dividends(
        self, symbol: str, from_date: DateLike | None = None, to_date: DateLike | None = None
    ) -> pd.DataFrame:
        """See :meth:`PolygonRESTClient.get_dividends`: ``corporate_actions`` rows of kind ``dividend``."""
        return self.rest.get_dividends(symbol, from_date, to_date)

    def start_websocket(
        self,
        channels: str | Iterable[str],
        callbacks: dict[str, Callable[[list[dict[str, Any]]], None]] | None = None,
        *,
        cluster: str = "stocks",
        **ws_options: Any,
    ) -> PolygonWebSocketClient:
        """Connect the WebSocket client, register ``callbacks`` (prefix -> callback) and subscribe ``channels``.

        The caller drives delivery with ``client.websocket.run()`` (blocking) or ``dispatch()`` (one step).
        """
        if self.websocket is None:
            self.websocket = PolygonWebSocketClient(self._api_key, cluster=cluster, ws_url=self._ws_url, **ws_options)
        for prefix, callback in (callbacks or {}).items():
            self.websocket.register_callback(prefix, callback)
        self.websocket.connect()
        self.websocket.subscribe(channels)
        return self.websocket

    def close(self) -> None:
        if self.websocket is not None:
            self.websocket.disconnect()
            self.websocket = None
        self.rest.close()

    def __enter__(self) -> PolygonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
