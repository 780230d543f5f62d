"""One entity per security, end to end: the Polygon simulator on loopback, real Redis, real Feast.

FB became META on 2022-06-09: a backfill of META stores FB's bars before the change and META's after, all under META,
and a training frame reads one continuous series; a backfill of FB resolves to META. TWTR last traded on 2022-10-27:
its history is stored up to then and the range after is proven empty (recorded as covered, never fetched again).
``--universe listed:DATE`` lists the tickers trading that day, the later-delisted TWTR included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion import calendar
from ingestion.commands.backfill import _listed_day
from ingestion.config import Settings, settings
from ingestion.datasets import OHLCV_DAILY, OHLCV_MINUTE
from ingestion.errors import ConfigError
from ingestion.jobs.backfill import Sinks, backfill_ohlcv
from ingestion.jobs.identity import Identity, Segment, fetch_as_traded, identity_from_events, resolve
from ingestion.jobs.listed import parse_listed, tickers_listed_on
from ingestion.polygon.parse import parse_aggs
from ingestion.polygon.rest import PolygonRESTClient
from ingestion.polygon.tickers import TickerChange, TickerEvents
from ingestion.rejects import ParseResult
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import PolygonRestServer, polygon_rest_server
from ingestion.simulators.reference_truth import DEFAULT_REFERENCE, ReferenceTruth
from ingestion.simulators.reference_truth import TickerChange as SimChange
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset

D = dt.date
CHANGE = D(2022, 6, 9)
TWTR_LAST = D(2022, 10, 27)
CLOCK = D(2023, 3, 31)
NOW = pd.Timestamp("2023-04-01 12:00", tz="UTC")  # every bar asked for is final


def _market(reference: ReferenceTruth = DEFAULT_REFERENCE) -> Market:
    # A small universe from 2022: quick to generate; TWTR comes with the default reference data.
    return Market(symbols=("META", "AAPL"), start=D(2022, 1, 3), as_of=CLOCK, reference=reference)


@contextmanager
def _polygon(market: Market) -> Iterator[tuple[PolygonRestServer, PolygonRESTClient]]:
    with polygon_rest_server(market) as server:
        client = PolygonRESTClient(POLYGON_SIM_KEY, server.url, use_cache=False)
        try:
            yield server, client
        finally:
            client.close()


def _plain(tmp_path: Path) -> Settings:
    return replace(settings({}), data_dir=tmp_path)


def _stored(s: Settings, dataset: str = OHLCV_DAILY.name) -> pd.DataFrame:
    ds = OHLCV_DAILY if dataset == OHLCV_DAILY.name else OHLCV_MINUTE
    frame = read_dataset(s.data_dir, ds).sort_values(["symbol", "window_start"]).reset_index(drop=True)
    assert count_duplicates(frame, dataset) == 0
    return frame


def _days(frame: pd.DataFrame) -> list[dt.date]:
    return list(frame["window_start"].dt.tz_convert(calendar.NEW_YORK).dt.date)


def _sessions(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return [d.date() for d in calendar.sessions(lo, hi)]


def test_meta_is_one_entity_across_its_ticker_change(make_applied_repo: Callable[[], Settings]) -> None:
    market = _market()
    s = make_applied_repo()
    sinks = Sinks.for_settings(s)
    lo, hi = D(2022, 4, 1), D(2022, 8, 31)
    with _polygon(market) as (server, client):
        summary = backfill_ohlcv(client, sinks, ["META"], lo, hi, "day", now=NOW)
        assert summary.ok and summary.notes == [], (summary.errors, summary.notes)
        stored = _stored(s)
        assert set(stored["symbol"]) == {"META"} and _days(stored) == _sessions(lo, hi)
        # FB's bars before the change, META's after: one price path, the security's truth.
        truth = market.daily_bars("META", lo, hi, adjusted=False)
        np.testing.assert_array_equal(stored["close"].to_numpy(), truth["close"].to_numpy())
        at = _days(stored).index(CHANGE)
        assert stored["return_1d"].iloc[at] == pytest.approx(
            stored["close"].iloc[at] / stored["close"].iloc[at - 1] - 1
        )
        assert stored["return_20d"].iloc[at : at + 3].notna().all()  # the window reaches back into FB's bars

        # The old name resolves to the same entity: nothing new is fetched or stored.
        bars_before = server.log.by_route["aggs"]
        again = backfill_ohlcv(client, sinks, ["FB"], lo, hi, "day", now=NOW)
        assert again.ok and sum(again.rows_written.values()) == 0 and again.api_calls == 0
        assert server.log.by_route["aggs"] == bars_before
        # A range only FB covers, asked as FB, lands under META.
        early = backfill_ohlcv(client, sinks, ["FB"], D(2022, 3, 1), D(2022, 3, 31), "day", now=NOW)
        assert early.ok and early.rows_written[OHLCV_DAILY.name] == len(_sessions(D(2022, 3, 1), D(2022, 3, 31)))
        assert set(_stored(s)["symbol"]) == {"META"}

    # What a model reads at 10:00 New York each day through stock get_historical_features: one continuous series.
    assert s.redis_url
    store = open_store(s, s.redis_url)
    days = _sessions(D(2022, 6, 1), D(2022, 6, 17))
    times = [pd.Timestamp(f"{d} 10:00", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days]
    entity = pd.DataFrame({"symbol": "META", "event_timestamp": times})
    frame = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    frame = frame.sort_values("event_timestamp").reset_index(drop=True)
    closes = dict(zip(_days(stored), stored["close"], strict=True))
    previous = [closes[_sessions(d - dt.timedelta(days=7), d - dt.timedelta(days=1))[-1]] for d in days]
    np.testing.assert_array_equal(frame["close"].to_numpy(), np.array(previous))  # the last published close
    assert frame["close"].notna().all()


def test_minute_bars_cross_the_change_under_one_entity(tmp_path: Path) -> None:
    s = _plain(tmp_path)
    with _polygon(_market()) as (_, client):
        summary = backfill_ohlcv(
            client, Sinks.for_settings(s), ["META"], D(2022, 6, 7), D(2022, 6, 10), "minute", now=NOW
        )
    assert summary.ok and summary.notes == []
    stored = _stored(s, OHLCV_MINUTE.name)
    assert set(stored["symbol"]) == {"META"} and sorted(set(_days(stored))) == _sessions(D(2022, 6, 7), D(2022, 6, 10))


def test_a_loosely_dated_change_still_gives_every_session(tmp_path: Path) -> None:
    """Polygon's real event dates META from 2022-06-11 (the capture), a Saturday after its first two sessions."""
    loose = replace(DEFAULT_REFERENCE.changes[0], reported=D(2022, 6, 11))
    market = _market(ReferenceTruth(changes=(loose,), delistings=DEFAULT_REFERENCE.delistings))
    s = _plain(tmp_path)
    with _polygon(market) as (_, client):
        identity, rejected = resolve(client, "META", (D(2022, 6, 1), D(2022, 6, 30)))
        assert rejected == [] and identity.segments == (
            Segment("FB", None, D(2022, 6, 10)),
            Segment("META", D(2022, 6, 11)),
        )
        summary = backfill_ohlcv(client, Sinks.for_settings(s), ["META"], D(2022, 6, 1), D(2022, 6, 30), "day", now=NOW)
    assert summary.ok
    stored = _stored(s)
    assert _days(stored) == _sessions(D(2022, 6, 1), D(2022, 6, 30))
    truth = market.daily_bars("META", D(2022, 6, 1), D(2022, 6, 30), adjusted=False)
    np.testing.assert_array_equal(stored["close"].to_numpy(), truth["close"].to_numpy())


def test_a_delisted_ticker_is_stored_to_its_last_day_and_then_proven_empty(tmp_path: Path) -> None:
    s = _plain(tmp_path)
    sinks = Sinks.for_settings(s)
    lo, hi = D(2022, 6, 1), D(2023, 2, 28)
    with _polygon(_market()) as (server, client):
        daily = backfill_ohlcv(client, sinks, ["TWTR"], lo, hi, "day", now=NOW)
        minute = backfill_ohlcv(client, sinks, ["TWTR"], D(2022, 10, 24), D(2022, 12, 31), "minute", now=NOW)
        assert daily.ok and minute.ok and daily.notes == minute.notes == []
        stored = _stored(s)
        assert set(stored["symbol"]) == {"TWTR"} and _days(stored) == _sessions(lo, TWTR_LAST)
        assert max(_days(_stored(s, OHLCV_MINUTE.name))) == TWTR_LAST
        # After the last day: covered (proven empty by delisted_utc), so a rerun asks for no bar.
        assert sinks.coverage.get(OHLCV_DAILY.name, "TWTR") == [(lo, hi)]
        assert sinks.coverage.get(OHLCV_MINUTE.name, "TWTR") == [(D(2022, 10, 24), D(2022, 12, 31))]
        bars = server.log.by_route["aggs"]
        for timespan, start in (("day", lo), ("minute", D(2022, 10, 24))):
            end = hi if timespan == "day" else D(2022, 12, 31)
            again = backfill_ohlcv(client, sinks, ["TWTR"], start, end, timespan, now=NOW)
            assert again.ok and again.api_calls == 0 and sum(again.rows_written.values()) == 0
        assert server.log.by_route["aggs"] == bars


def test_universe_listed_on_a_date_is_survivorship_free(tmp_path: Path) -> None:
    assert parse_listed("listed:2022-01-03") == D(2022, 1, 3) and parse_listed("all") is None
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_listed("listed:")
    with pytest.raises(ConfigError, match="not a date"):
        parse_listed("listed:2022-13-01")
    s = _plain(tmp_path)
    with _polygon(_market()) as (_, client):
        listed = tickers_listed_on(client, D(2022, 1, 3))
        assert listed == ["AAPL", "FB", "TWTR"]  # as called that day; TWTR delisted later, META then named FB
        assert tickers_listed_on(client, CLOCK) == ["AAPL", "META"]
        summary = backfill_ohlcv(client, Sinks.for_settings(s), listed, D(2022, 1, 3), D(2022, 1, 31), "day", now=NOW)
    assert summary.ok
    stored = _stored(s)
    assert set(stored["symbol"]) == {"AAPL", "META", "TWTR"}
    assert stored.groupby("symbol").size().to_dict() == dict.fromkeys(("AAPL", "META", "TWTR"), 20)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ({"symbols": "AAPL", "universe": "listed:2022-01-03"}, "either --symbols"),
        ({"symbols": None, "universe": None}, "either --symbols"),
        ({"symbols": None, "universe": "sp500"}, "not a universe"),
        ({"symbols": None, "universe": "listed:2022-01-03", "source": "flow"}, "backfill ohlcv"),
    ],
)
def test_the_universe_flag_says_how_to_fix_a_mistake(argv: dict[str, str | None], message: str) -> None:
    args = argparse.Namespace(**{"source": "ohlcv", **argv})
    with pytest.raises(ConfigError, match=message):
        _listed_day(args)
    assert _listed_day(argparse.Namespace(source="ohlcv", symbols=None, universe="listed:2022-01-03")) == D(2022, 1, 3)


# -- pure identity -----------------------------------------------------------------------------------------------------


def _bars(ticker: str, days: list[dt.date], close: float) -> ParseResult:
    stamps = [int(pd.Timestamp(d).tz_localize(calendar.NEW_YORK).value // 1_000_000) for d in days]
    body = {
        "status": "OK",
        "ticker": ticker,
        "results": [{"o": close, "h": close, "l": close, "c": close, "v": 1.0, "t": t} for t in stamps],
    }
    return parse_aggs(json.dumps(body), symbol=ticker, timespan="day", multiplier=1, adjusted=False, endpoint="aggs")


def test_fetch_as_traded_prefers_the_ticker_whose_segment_holds_the_day() -> None:
    events = TickerEvents("Meta", "BBG1", None, (TickerChange("FB", D(2012, 5, 18)), TickerChange("META", CHANGE)))
    identity = identity_from_events(events, "FB")
    assert identity == Identity("META", (Segment("FB", None, D(2022, 6, 8)), Segment("META", CHANGE)), "BBG1", ("FB",))
    assert identity.traded_as(D(2022, 6, 8)) == "FB" and identity.traded_as(CHANGE) == "META"
    asked: list[tuple[str, dt.date, dt.date]] = []
    both = _sessions(D(2022, 6, 6), D(2022, 6, 10))

    def fetch(ticker: str, lo: dt.date, hi: dt.date) -> ParseResult:
        asked.append((ticker, lo, hi))
        # A vendor answering the change days under both tickers: the segment's own ticker wins each day.
        return _bars(ticker, [d for d in both if lo <= d <= hi], 1.0 if ticker == "FB" else 2.0)

    joined = fetch_as_traded(identity, (D(2022, 6, 6), D(2022, 6, 10)), fetch).frame
    assert asked == [("FB", D(2022, 6, 6), D(2022, 6, 10)), ("META", D(2022, 6, 6), D(2022, 6, 10))]
    assert list(joined["close"]) == [1.0, 1.0, 1.0, 2.0, 2.0] and set(joined["symbol"]) == {"META"}
    asked.clear()
    fetch_as_traded(identity, (D(2023, 1, 3), D(2023, 1, 31)), fetch)
    assert asked == [("META", D(2023, 1, 3), D(2023, 1, 31))]  # far from the change: one ticker, one request
    plain = fetch_as_traded(Identity.single("AAPL"), (D(2022, 6, 6), D(2022, 6, 10)), fetch).frame
    assert set(plain["symbol"]) == {"AAPL"} and len(plain) == 5


def test_the_simulators_change_is_the_real_one() -> None:
    change = DEFAULT_REFERENCE.change_of("META")
    assert isinstance(change, SimChange) and (change.old, change.first_session) == ("FB", CHANGE)


class _RefusingVendor:
    """A vendor whose events hold a malformed change beside a good one (the simulator only sends good ones)."""

    def __init__(self) -> None:
        self.body = {
            "status": "OK",
            "results": {
                "name": "Meta",
                "composite_figi": "BBG1",
                "events": [
                    {"type": "ticker_change", "date": "2022-06-09", "ticker_change": {"ticker": "META"}},
                    {"type": "ticker_change", "date": "2012-05-18", "ticker_change": {"ticker": "FB"}},
                    {"type": "ticker_change", "date": "someday", "ticker_change": {"ticker": "FBOOK"}},
                ],
            },
        }

    def get_ticker_events(self, ident: str, types: str = "ticker_change") -> TickerEvents | None:
        from ingestion.polygon.tickers import parse_ticker_events

        return parse_ticker_events(json.dumps(self.body), endpoint="ticker_events") if ident == "META" else None


def test_refused_events_are_quarantined_and_the_good_ones_used(tmp_path: Path) -> None:
    from ingestion.jobs.backfill import OhlcvSource
    from ingestion.jobs.identity import identities_to_fetch

    sinks = Sinks.for_settings(_plain(tmp_path))
    vendor = _RefusingVendor()
    source = OhlcvSource(vendor, "day")  # type: ignore[arg-type]
    found = identities_to_fetch(vendor, sinks, source, ["META"], (D(2022, 6, 1), D(2022, 6, 30)))  # type: ignore[arg-type]
    assert [s.ticker for s in found.get("META").segments] == ["FB", "META"]
    quarantined = sinks.quarantine.read()
    assert len(quarantined) == 1 and quarantined["dataset"].iloc[0] == "polygon_ticker_events"
    assert "not a YYYY-MM-DD date" in quarantined["reason"].iloc[0]
