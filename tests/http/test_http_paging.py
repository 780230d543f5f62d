"""The one paging engine: bounded against cursors that point back and chains that never end, on real loopback servers.

Each vendor's cursor kind goes through :func:`ingestion.http.paginate`: Polygon's ``next_url``, Unusual Whales'
``page`` numbers and its ``older_than`` step-back (client and collector). A misbehaving server (or a cached page)
must end the loop with a :class:`PagingError`, never spin: the request counts below show where each loop stopped.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from fixtures.http import TEST_KEY, Script, ServerFactory

from ingestion.errors import SchemaError
from ingestion.http import PagingError, paginate
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.rejects import Rejected
from ingestion.simulators.http import Request, Response
from ingestion.unusual_whales.client import UnusualWhalesClient
from ingestion.vendor_http import HTTPOptions

AGGS = r"/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05"
BAR = {"t": 1704171600000, "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 100.0, "vw": 1.2, "n": 3}


def polygon(url: str, *, use_cache: bool = False, **kw: Any) -> PolygonRESTClient:
    return PolygonRESTClient(api_key=TEST_KEY, base_url=url, options=HTTPOptions(use_cache=use_cache), **kw)


def uw(url: str, rejected: list[Rejected], **kw: Any) -> UnusualWhalesClient:
    options = HTTPOptions(use_cache=False, requests_per_minute=None)
    return UnusualWhalesClient(TEST_KEY, url, options=options, on_rejected=rejected.extend, **kw)


def alert(n: int, created_at: pd.Timestamp) -> dict[str, Any]:
    """A valid REST flow alert (money as strings, as the vendor sends it)."""
    return {
        "id": f"alert-{n}", "ticker": "MSFT", "option_chain": "MSFT231222C00375000", "type": "call",
        "strike": "375", "expiry": "2023-12-22", "alert_rule": "RepeatedHits",
        "created_at": created_at.isoformat(), "total_premium": "1000", "price": "4.05", "volume": 10,
        "open_interest": 5,
    }  # fmt: skip


def test_paginate_stops_on_a_repeated_cursor_and_on_an_endless_chain() -> None:
    """The engine alone: the stop rules, with no vendor in the way."""
    fetched: list[int] = []

    def fetch(cursor: int) -> int:
        fetched.append(cursor)
        return cursor

    assert list(paginate(fetch, lambda c, _: c + 1 if c < 3 else None, 0)) == [0, 1, 2, 3]
    assert list(paginate(fetch, lambda c, _: c + 1, 0, take=2)) == [0, 1]
    with pytest.raises(PagingError, match="already read"):
        list(paginate(fetch, lambda c, _: 1, 0, vendor="v", endpoint="e"))
    with pytest.raises(PagingError, match="after 5 pages") as info:
        list(paginate(fetch, lambda c, _: c + 1, 0, max_pages=5, vendor="v", endpoint="e"))
    assert isinstance(info.value, SchemaError) and info.value.vendor == "v" and info.value.endpoint == "e"


@pytest.mark.parametrize("use_cache", [False, True])
def test_polygon_self_pointing_next_url_ends_with_an_error(
    serve: ServerFactory, test_key: str, use_cache: bool
) -> None:
    """A next_url naming itself: the second read (a cache hit when caching) is the last, never a spin."""

    def page(request: Request) -> Response:
        return Response.json({"status": "OK", "results": [BAR], "next_url": f"{server.url}{AGGS}?cursor=loop"})

    script = Script([page])
    server = serve({AGGS: script})
    with polygon(server.url, use_cache=use_cache) as client, pytest.raises(PagingError) as info:
        client.get_daily_bars("AAPL", "2024-01-02", "2024-01-05")
    assert info.value.vendor == "polygon" and info.value.endpoint == "aggs"
    assert "already read" in str(info.value)
    # The first page and the page at cursor=loop; its next_url names cursor=loop again and nothing more is sent.
    assert script.calls == 2


def test_polygon_endless_next_url_chain_ends_at_max_pages(serve: ServerFactory, test_key: str) -> None:
    def page(request: Request) -> Response:
        n = int(request.arg("cursor") or 0)
        return Response.json({"status": "OK", "results": [BAR], "next_url": f"{server.url}{AGGS}?cursor={n + 1}"})

    script = Script([page])
    server = serve({AGGS: script})
    with polygon(server.url, max_pages=25) as client, pytest.raises(PagingError, match="after 25 pages"):
        client.get_daily_bars("AAPL", "2024-01-02", "2024-01-05")
    assert script.calls == 25


def test_uw_insider_pages_that_never_come_back_short_end_at_max_pages(serve: ServerFactory, test_key: str) -> None:
    """Every page full (of rows the parser rejects, which still fill a page): the page counter would run forever."""
    script = Script([Response.json({"data": [{}, {}]})])
    server = serve({"/api/insider/transactions": script})
    rejected: list[Rejected] = []
    with uw(server.url, rejected, max_pages=12) as client, pytest.raises(PagingError, match="after 12 pages") as info:
        client.fetch_insider_trading("AAPL", page_size=2)
    assert info.value.vendor == "unusual_whales" and info.value.endpoint == "insider-transactions"
    assert script.calls == 12
    assert [int(r.arg("page") or -1) for r in script.requests] == list(range(12))


def _endless_alerts(request: Request) -> Response:
    """A full page (``limit`` alerts) ending one second before ``older_than``: the window never runs dry."""
    older, size = request.arg("older_than"), int(request.arg("limit") or 200)
    end = pd.Timestamp(int(older), unit="s", tz="UTC") if older else pd.Timestamp("2024-03-01 15:00", tz="UTC")
    rows = [alert(int(end.timestamp()) * 1000 + k, end - pd.Timedelta(seconds=1 + k)) for k in range(size)]
    return Response.json({"data": rows})


def test_uw_older_than_step_back_that_never_ends_stops_at_max_pages(serve: ServerFactory, test_key: str) -> None:
    script = Script([_endless_alerts])
    server = serve({"/api/option-trades/flow-alerts": script})
    rejected: list[Rejected] = []
    with uw(server.url, rejected, max_pages=15) as client, pytest.raises(PagingError, match="after 15 pages"):
        client.get_options_alerts(limit=2, all_pages=True)
    assert script.calls == 15
    olders = [int(r.arg("older_than")) for r in script.requests[1:]]
    assert olders == sorted(olders, reverse=True) and len(set(olders)) == len(olders)
    assert not rejected


def test_uw_collector_poll_that_never_reaches_the_watermark_stops_at_max_pages(
    serve: ServerFactory, test_key: str, tmp_path: Path
) -> None:
    script = Script([_endless_alerts])
    server = serve({"/api/option-trades/flow-alerts": script})
    delivered: list[pd.DataFrame] = []
    rejected: list[Rejected] = []
    with uw(server.url, rejected, max_pages=10) as client:
        collector = client.options_flow_collector(
            delivered.append, state_path=tmp_path / "state.json", start_at=pd.Timestamp("2000-01-01", tz="UTC")
        )
        with pytest.raises(PagingError, match="after 10 pages"):
            collector.poll_once()
    assert script.calls == 10
    # Nothing half-read was delivered and the watermark did not move: the next poll starts over cleanly.
    assert not delivered and collector.state.watermark_us == pd.Timestamp("2000-01-01", tz="UTC").value // 1000


def test_polygon_normal_chain_still_reads_every_page(serve: ServerFactory, test_key: str) -> None:
    def page(request: Request) -> Response:
        n = int(request.arg("cursor") or 0)
        bar = {**BAR, "t": BAR["t"] + n * 86_400_000}
        body: dict[str, Any] = {"status": "OK", "results": [bar]}
        if n < 3:
            body["next_url"] = f"{server.url}{AGGS}?cursor={n + 1}"
        return Response(body=orjson.dumps(body), headers={"Content-Type": "application/json"})

    script = Script([page])
    server = serve({AGGS: script})
    with polygon(server.url, max_pages=4) as client:
        bars = client.get_daily_bars("AAPL", dt.date(2024, 1, 2), dt.date(2024, 1, 5))
    assert len(bars) == 4 and script.calls == 4
