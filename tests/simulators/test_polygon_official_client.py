"""The official Polygon/Massive client (``massive`` on PyPI) pointed at the simulators.

REST: ``RESTClient(base=<simulator url>)`` pages through a multi-page aggregates range by following ``next_url``.
WebSocket: ``WebSocketClient(feed="127.0.0.1:PORT", market="stocks", secure=False)`` builds ``ws://127.0.0.1:PORT/stocks``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from fixtures.simulators import MakePolygonWs
from massive import RESTClient, WebSocketClient

from ingestion import calendar
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer


def test_massive_rest_client_pages_through_every_bar(polygon_rest: PolygonRestServer, market: Market) -> None:
    client = RESTClient(api_key=POLYGON_SIM_KEY, base=polygon_rest.url, retries=0)
    before = polygon_rest.log.by_route["aggs"]
    bars = list(client.list_aggs("GOOGL", 1, "minute", "2024-06-03", "2024-06-07", limit=700))
    pages = polygon_rest.log.by_route["aggs"] - before
    start = int(pd.Timestamp("2024-06-03").tz_localize(calendar.NEW_YORK).value // 1_000_000)
    end = int(pd.Timestamp("2024-06-08").tz_localize(calendar.NEW_YORK).value // 1_000_000) - 1
    truth = market.minute_bars_range("GOOGL", start, end)
    assert pages == -(-len(truth) // 700) > 1
    assert [b.timestamp for b in bars] == truth["window_start_ms"].tolist()
    assert [(b.open, b.high, b.low, b.close, b.volume, b.vwap, b.transactions) for b in bars] == list(
        truth[["open", "high", "low", "close", "volume", "vwap", "transactions"]].itertuples(index=False, name=None)
    )


def test_massive_rest_client_reads_daily_bars_and_trades(polygon_rest: PolygonRestServer, market: Market) -> None:
    client = RESTClient(api_key=POLYGON_SIM_KEY, base=polygon_rest.url, retries=0)
    daily = client.get_aggs("JPM", 1, "day", "2024-01-02", "2024-01-31")
    truth = market.daily_bars("JPM", "2024-01-02", "2024-01-31")
    assert [a.close for a in daily] == truth["close"].tolist()
    bar = market.minute_bars("JPM", "2024-01-03", adjusted=False).iloc[0]
    lo = int(bar["window_start_ms"]) * 1_000_000
    trades = list(client.list_trades("JPM", timestamp_gte=lo, timestamp_lt=lo + 60_000_000_000, order="asc", limit=7))
    assert len(trades) == bar["transactions"]
    assert sum(t.size for t in trades) == bar["volume"]


def test_massive_websocket_client_authenticates_subscribes_and_receives_trades(make_polygon_ws: MakePolygonWs) -> None:
    server = make_polygon_ws()
    truth = server.truth("T", "MSFT")
    received: list[Any] = []

    async def main() -> None:
        client = WebSocketClient(
            api_key=POLYGON_SIM_KEY, feed=server.feed_host, market="stocks", secure=False, subscriptions=["T.MSFT"]
        )
        enough = asyncio.Event()

        async def handle(messages: list[Any]) -> None:
            received.extend(messages)
            if len(received) >= len(truth):
                enough.set()

        task = asyncio.create_task(client.connect(handle))
        await asyncio.wait_for(enough.wait(), 60)
        await client.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert server.counters["auth_success"] == 1
    assert [(t.symbol, t.id, t.price, t.size, t.timestamp, t.sequence_number) for t in received] == [
        (e["sym"], e["i"], e["p"], e["s"], e["t"], e["q"]) for e in truth
    ]
