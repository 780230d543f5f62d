"""Grouped daily rows under the ticker a security trades under now, and per-ticker runs reading market-wide coverage.

The Polygon simulator on loopback (FB became META on 2022-06-09, TWTR last traded on 2022-10-27), real offline store,
real Redis (``make_applied_repo``). Requests are counted at the simulator (``server.log.by_route``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from ingestion import calendar
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, OHLCV_DAILY, OHLCV_MINUTE
from ingestion.jobs.backfill import backfill_ohlcv
from ingestion.jobs.coverage import MARKET
from ingestion.jobs.identity import Identity, Segment, relabel_as_traded
from ingestion.jobs.landing import Sinks
from ingestion.jobs.universe import backfill_universe
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server
from ingestion.store.offline import count_duplicates, read_dataset

D = dt.date
YEAR = (D(2022, 1, 1), D(2022, 12, 31))
TWTR_LAST = D(2022, 10, 27)
NOW = pd.Timestamp("2023-04-01 12:00", tz="UTC")  # every bar of 2022 is final, the rename and delisting known
COLUMNS = [c for c in OHLCV_DAILY.column_names if c != CREATED_TS]


@pytest.fixture(scope="module")
def market() -> Market:
    # From November 2021, so both paths' 2022 features have a full warm-up of real bars.
    return Market(symbols=("META", "AAPL"), start=D(2021, 11, 1), as_of=D(2023, 3, 31))


@pytest.fixture(scope="module")
def server(market: Market) -> Iterator[PolygonRestServer]:
    with polygon_rest_server(market) as srv:
        yield srv


@pytest.fixture
def client(server: PolygonRestServer) -> Iterator[PolygonRESTClient]:
    with PolygonRESTClient(POLYGON_SIM_KEY, server.url, use_cache=False) as c:
        yield c


@pytest.fixture
def applied(make_applied_repo: Callable[[], Settings]) -> Settings:
    return make_applied_repo()


def _stored(s: Settings, dataset: str = OHLCV_DAILY.name) -> pd.DataFrame:
    frame = read_dataset(s.data_dir, OHLCV_DAILY if dataset == OHLCV_DAILY.name else OHLCV_MINUTE)
    assert count_duplicates(frame, dataset) == 0
    return frame.sort_values(["symbol", "window_start"]).reset_index(drop=True)


def _days(frame: pd.DataFrame) -> list[dt.date]:
    return list(frame["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date)


def _sessions(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return [d.date() for d in calendar.sessions(lo, hi)]


def _routes(server: PolygonRestServer) -> dict[str, int]:
    return dict(server.log.by_route)


def test_grouped_and_per_ticker_store_one_series_for_a_renamed_ticker(
    market: Market, server: PolygonRestServer, client: PolygonRESTClient, make_applied_repo: Callable[[], Settings]
) -> None:
    grouped, per_ticker = make_applied_repo(), make_applied_repo()
    before = _routes(server)
    universe = backfill_universe(client, Sinks.for_settings(grouped), *YEAR, now=NOW)
    assert universe.ok, universe.errors
    asked = {k: v - before.get(k, 0) for k, v in _routes(server).items() if v != before.get(k, 0)}
    # The identity of the whole market: the two ticker lists and the events of the one renamed security, nothing per
    # ticker (TWTR is gone too, but no other ticker shares its FIGI: no request).
    assert asked.get("tickers") == 2 and asked.get("ticker_events") == 1 and "ticker" not in asked
    one = backfill_ohlcv(client, Sinks.for_settings(per_ticker), ["META"], *YEAR, "day", now=NOW)
    assert one.ok, one.errors

    everything = _stored(grouped)
    assert set(everything["symbol"]) == {"AAPL", "META", "TWTR"}  # no FB: its bars are META's
    mine = everything[everything["symbol"] == "META"].reset_index(drop=True)
    theirs = _stored(per_ticker)
    assert _days(mine) == _days(theirs) == _sessions(*YEAR)
    truth = market.daily_bars("META", *YEAR, adjusted=False)
    np.testing.assert_array_equal(mine["close"].to_numpy(), truth["close"].to_numpy())
    # Row for row, derived features included. Rolling statistics are summed from where each path's warm-up starts
    # (30 sessions before a quarter, 52 days before a year), so only the last bits may differ.
    pd.testing.assert_frame_equal(mine[COLUMNS], theirs[COLUMNS], check_exact=False, rtol=1e-9)
    at = _days(mine).index(D(2022, 6, 9))
    assert mine["return_1d"].iloc[at] == pytest.approx(mine["close"].iloc[at] / mine["close"].iloc[at - 1] - 1)
    windows = ["return_5d", "return_20d", "realized_vol_20d", "volume_zscore_20d"]
    assert mine[windows].iloc[at].notna().all()  # the windows reach back into FB's bars

    # The delisted ticker stays under its own name, up to its last session.
    twtr = everything[everything["symbol"] == "TWTR"]
    assert _days(twtr) == _sessions(YEAR[0], TWTR_LAST)


def test_a_per_ticker_run_reads_market_wide_coverage_for_daily_bars_only(
    server: PolygonRestServer, client: PolygonRESTClient, applied: Settings
) -> None:
    s, span = applied, (D(2022, 4, 1), D(2022, 9, 30))
    sinks = Sinks.for_settings(s)
    assert backfill_universe(client, sinks, *span, now=NOW).ok
    assert sinks.coverage.get(OHLCV_DAILY.name, MARKET) == [span]
    stored = _stored(s)

    before = _routes(server)
    # Every name, old (FB), current, delisted: covered by the market-wide record, nothing is asked of the vendor.
    again = backfill_ohlcv(client, sinks, ["AAPL", "META", "FB", "TWTR"], *span, "day", now=NOW)
    assert again.ok and again.api_calls == 0 and sum(again.rows_written.values()) == 0
    assert _routes(server) == before
    pd.testing.assert_frame_equal(_stored(s), stored)

    # A wider range fetches only what the market-wide record lacks: the year unit's first quarter.
    wider = backfill_ohlcv(client, sinks, ["AAPL"], D(2022, 1, 1), span[1], "day", now=NOW)
    assert wider.ok and wider.rows_written[OHLCV_DAILY.name] == len(_sessions(D(2022, 1, 1), D(2022, 3, 31)))
    assert _routes(server)["aggs"] - before.get("aggs", 0) == 1

    # Grouped daily says nothing of minute bars: a minute run fetches them.
    aggs = _routes(server)["aggs"]
    minute = backfill_ohlcv(client, sinks, ["AAPL"], D(2022, 6, 1), D(2022, 6, 2), "minute", now=NOW)
    assert minute.ok and minute.rows_written[OHLCV_MINUTE.name] > 0
    assert _routes(server)["aggs"] > aggs


def test_a_universe_run_limited_to_symbols_covers_only_those(
    server: PolygonRestServer, client: PolygonRESTClient, applied: Settings
) -> None:
    s, span = applied, (D(2022, 5, 1), D(2022, 6, 30))
    sinks = Sinks.for_settings(s)
    # Asked by entity: META's rows include FB's sessions before the change.
    assert backfill_universe(client, sinks, *span, now=NOW, symbols=["META"]).ok
    assert sinks.coverage.get(OHLCV_DAILY.name, MARKET) == []
    assert sinks.coverage.get(OHLCV_DAILY.name, "META") == [span]
    stored = _stored(s)
    assert set(stored["symbol"]) == {"META"} and _days(stored) == _sessions(*span)
    aggs = _routes(server).get("aggs", 0)
    other = backfill_ohlcv(client, sinks, ["AAPL"], *span, "day", now=NOW)
    assert other.ok and other.rows_written[OHLCV_DAILY.name] == len(_sessions(*span))
    assert _routes(server)["aggs"] > aggs


def _bars(rows: list[tuple[str, dt.date, float]]) -> pd.DataFrame:
    starts = [pd.Timestamp(day).tz_localize(calendar.NEW_YORK).tz_convert("UTC") for _, day, _ in rows]
    return pd.DataFrame({"symbol": [t for t, _, _ in rows], "window_start": starts, "close": [c for _, _, c in rows]})


def test_relabel_follows_the_per_ticker_rule() -> None:
    meta = Identity("META", (Segment("FB", None, D(2022, 6, 10)), Segment("META", D(2022, 6, 11))), "BBG000MM2P62")
    frame = _bars(
        [
            ("FB", D(2022, 6, 8), 1.0),
            ("META", D(2022, 6, 9), 2.0),  # before the vendor's change date, but only META answered it
            ("FB", D(2022, 6, 10), 9.0),  # answered under both: the ticker whose segment holds the day wins
            ("META", D(2022, 6, 10), 3.0),
            ("META", D(2022, 6, 13), 4.0),
            ("FB", D(2023, 6, 1), 5.0),  # a year later: another security reusing the ticker keeps it
            ("TWTR", D(2022, 6, 8), 6.0),
        ]
    )
    out = relabel_as_traded(frame, [meta, Identity.single("TWTR")])
    got = sorted(zip(out["symbol"], _days(out), out["close"], strict=True))
    assert got == [
        ("FB", D(2023, 6, 1), 5.0),
        ("META", D(2022, 6, 8), 1.0),
        ("META", D(2022, 6, 9), 2.0),
        ("META", D(2022, 6, 10), 9.0),
        ("META", D(2022, 6, 13), 4.0),
        ("TWTR", D(2022, 6, 8), 6.0),
    ]
    assert relabel_as_traded(frame, [Identity.single("AAPL")]) is frame  # nothing renamed: untouched
