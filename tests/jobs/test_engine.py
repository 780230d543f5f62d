"""The unit-of-work driver on its own, with a scripted source: resume, coverage, isolation, hooks and counts.

The sinks are real (Parquet offline writer, quarantine and coverage files under ``tmp_path``); only the source is a
stand-in, so that a unit can be made to fail at will.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from ingestion import calendar, publication
from ingestion.datasets import CREATED_TS, OHLCV_DAILY, OHLCV_MINUTE, OPTIONS_FLOW_DAILY, Dataset
from ingestion.errors import ServerError
from ingestion.jobs.coverage import Coverage, Interval
from ingestion.jobs.engine import calendar_units, last_complete_day, run_units
from ingestion.jobs.landing import Batch, Landing, Sinks, land
from ingestion.jobs.listing import Listing, listing_from_details
from ingestion.jobs.quality import QualityReport
from ingestion.jobs.summary import JobSummary
from ingestion.rejects import Rejected
from ingestion.store.offline import OfflineWriter, read_dataset
from ingestion.store.quarantine import Quarantine

D = dt.date
NY = calendar.NEW_YORK
NOW = pd.Timestamp("2024-03-20 15:00", tz="America/New_York").tz_convert("UTC")  # Mar 20 still trading


@dataclass
class Scripted:
    """One refused row per unit; ``fail`` maps a symbol to the unit start at which its fetch raises."""

    fail: dict[str, dt.date] = field(default_factory=dict)
    error: type[Exception] = ServerError
    fetched: list[tuple[str, Interval]] = field(default_factory=list)
    core: Any = field(default_factory=lambda: SimpleNamespace(on_response=[], cache=None))
    job: str = "scripted"

    @property
    def datasets(self) -> Sequence[Dataset]:
        return (OPTIONS_FLOW_DAILY,)

    @property
    def http(self) -> Sequence[Any]:
        return (self.core,)

    def units(self, span: Interval) -> list[Interval]:
        return calendar_units(span, "month")

    def fetch(self, symbol: str, unit: Interval, now: pd.Timestamp) -> Batch:
        if self.fail.get(symbol) == unit[0]:
            raise self.error("scripted failure")
        self.fetched.append((symbol, unit))
        for hook in self.core.on_response:
            hook(None)
        refused = Rejected("scripted_raw", "scripted", "bad: scripted", {"symbol": symbol, "unit": str(unit[0])})
        return Batch("scripted", rejected=[refused])


def _sinks(tmp_path: Path) -> Sinks:
    offline = OfflineWriter(tmp_path, fsync=False)
    return Sinks(offline, Quarantine(tmp_path, writer=offline), Coverage(tmp_path / "state"))


def test_resume_isolation_and_coverage_up_to_the_last_knowable_day(tmp_path: Path) -> None:
    sinks, span = _sinks(tmp_path), (D(2024, 1, 15), D(2024, 3, 31))
    source = Scripted(fail={"MSFT": D(2024, 2, 1)})
    ticks: list[int] = []
    summary = run_units(source, sinks, ["AAPL", "MSFT"], span, now=NOW, workers=2, progress=ticks.append)

    assert summary.errors == {"MSFT": "scripted failure"} and not summary.ok
    assert sorted(source.fetched) == [
        ("AAPL", (D(2024, 1, 15), D(2024, 1, 31))),
        ("AAPL", (D(2024, 2, 1), D(2024, 2, 29))),
        ("AAPL", (D(2024, 3, 1), D(2024, 3, 31))),
        ("MSFT", (D(2024, 1, 15), D(2024, 1, 31))),
    ]
    assert len(ticks) == 4 and summary.api_calls == 4
    assert summary.quarantined["scripted_raw"] == 4 and len(sinks.quarantine.read()) == 4
    # Coverage ends at the last day whose rows are all knowable; the failed symbol keeps its completed unit.
    assert last_complete_day(NOW) == D(2024, 3, 19)
    assert sinks.coverage.get(OPTIONS_FLOW_DAILY.name, "AAPL") == [(D(2024, 1, 15), D(2024, 3, 19))]
    assert sinks.coverage.get(OPTIONS_FLOW_DAILY.name, "MSFT") == [(D(2024, 1, 15), D(2024, 1, 31))]

    # A rerun fetches only what is missing: MSFT from February on, AAPL's still-forming days of March.
    source.fail.clear()
    source.fetched.clear()
    again = run_units(source, sinks, ["AAPL", "MSFT"], span, now=NOW, workers=2)
    assert again.ok and again.chunks_skipped == 3
    assert sorted(source.fetched) == [
        ("AAPL", (D(2024, 3, 20), D(2024, 3, 31))),
        ("MSFT", (D(2024, 2, 1), D(2024, 2, 29))),
        ("MSFT", (D(2024, 3, 1), D(2024, 3, 31))),
    ]
    # The counting hook is installed for the run only.
    assert source.core.on_response == []


def test_the_counting_hook_goes_even_when_a_source_breaks(tmp_path: Path) -> None:
    source = Scripted(fail={"AAPL": D(2024, 1, 1)}, error=RuntimeError)
    with pytest.raises(RuntimeError):
        run_units(source, _sinks(tmp_path), ["AAPL"], (D(2024, 1, 1), D(2024, 1, 31)), now=NOW)
    assert source.core.on_response == []


def test_summary_counts_from_many_threads_add_up() -> None:
    summary = JobSummary("threads")

    def work() -> None:
        for _ in range(2_000):
            summary.add_calls()
            summary.add_skipped(1)
            summary.add_rows(
                written={"a": 1}, quarantined={"q": 1}, duplicates={}, fallback={}, failures={}, missing_minutes=1
            )

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert summary.api_calls == summary.chunks_skipped == summary.missing_minutes == 16_000
    assert summary.rows_written["a"] == summary.quarantined["q"] == 16_000


def _minute_bars(volumes: list[float]) -> pd.DataFrame:
    starts = pd.date_range("2024-03-04 14:30", periods=len(volumes), freq="min", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": "AAPL",
            "window_start": starts,
            "event_timestamp": starts + pd.Timedelta(minutes=1),
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": 10.5,
            "volume": volumes,
            "vwap": 10.2,
            "transactions": 3,
            "otc": False,
            "adjusted": False,
            "source": "polygon",
        }
    )


def test_land_checks_quarantines_stamps_and_counts(tmp_path: Path) -> None:
    bars = _minute_bars([100.0, -1.0, 50.0, 70.0])
    bars = pd.concat([bars, bars.iloc[[3]]], ignore_index=True)  # a duplicate minute
    parsed_away = Rejected(OHLCV_MINUTE.name, "parser", "bad: not a number", {"o": "x"})
    source_report = QualityReport(missing_minutes={("AAPL", "2024-03-04"): 386})
    batch = Batch("test aggs", {OHLCV_MINUTE.name: bars}, [parsed_away], {OHLCV_MINUTE.name: source_report})
    summary = JobSummary("land")
    created = pd.Timestamp("2024-03-05 01:00", tz="UTC")
    landing = Landing.for_writer(OfflineWriter(tmp_path, fsync=False))

    landed = land(landing, batch, summary, created)

    stored = read_dataset(tmp_path, OHLCV_MINUTE.name)
    assert list(stored["volume"]) == [100.0, 50.0, 70.0] and (stored[CREATED_TS] == created).all()
    assert landed.written[OHLCV_MINUTE.name] == 3 and len(landed.frames[OHLCV_MINUTE.name]) == 3
    reasons = sorted(landing.quarantine.read()["reason"])
    assert reasons == ["bad: not a number", "negative_volume: volume must be >= 0"]
    assert summary.quarantined[OHLCV_MINUTE.name] == landed.quarantined[OHLCV_MINUTE.name] == 2
    assert summary.duplicates_skipped[OHLCV_MINUTE.name] == 1
    assert summary.quality_failures["negative_volume"] == 1 and summary.missing_minutes == 386


# -------------------------------------------------------------------------------- empty answers and final days


def _bars(symbol: str, unit: Interval) -> pd.DataFrame:
    days = calendar.sessions(*unit)
    starts = pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC")
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "window_start": starts,
            "event_timestamp": publication.published_days(OHLCV_DAILY, days).to_numpy(),
            **{c: 10.0 for c in ("open", "high", "low", "close")},
            "volume": 100.0,
            "vwap": 10.0,
            "transactions": 5,
            "otc": False,
            "adjusted": True,
            "source": "polygon",
        }
    )
    for column in OHLCV_DAILY.column_names:
        if column not in frame and column != "created_timestamp":
            frame[column] = float("nan")  # derived features: not what these tests are about
    return frame


@dataclass
class Flaky(Scripted):
    """Daily bars by month; ``empty_first`` answers nothing the first time a unit is asked, data after; units
    before ``listed`` are always empty (the vendor has nothing before a listing)."""

    listed: dt.date = dt.date(2000, 1, 3)
    empty_first: bool = False

    @property
    def datasets(self) -> Sequence[Dataset]:
        return (OHLCV_DAILY,)

    def fetch(self, symbol: str, unit: Interval, now: pd.Timestamp) -> Batch:
        first_time = (symbol, unit) not in self.fetched
        self.fetched.append((symbol, unit))
        if (self.empty_first and first_time) or unit[1] < self.listed:
            return Batch("flaky", {OHLCV_DAILY.name: _bars(symbol, unit).iloc[:0]})
        frame = _bars(symbol, (max(unit[0], self.listed), unit[1]))
        return Batch("flaky", {OHLCV_DAILY.name: frame[frame["event_timestamp"] <= now]})


LATE_MARCH = pd.Timestamp("2024-03-28 12:00", tz=NY).tz_convert("UTC")


def test_a_transient_empty_answer_is_retried_and_the_data_lands(tmp_path: Path) -> None:
    sinks, source, span = _sinks(tmp_path), Flaky(empty_first=True), (D(2024, 1, 1), D(2024, 2, 29))
    listing = Listing(D(1980, 12, 12))
    first = run_units(source, sinks, ["AAPL"], span, now=LATE_MARCH, listings=lambda _: listing)
    assert sinks.coverage.get(OHLCV_DAILY.name, "AAPL") == []
    assert read_dataset(tmp_path, OHLCV_DAILY.name).empty
    assert len(first.notes) == 2 and all("retried on the next run" in n for n in first.notes)
    assert "ohlcv_daily AAPL 2024-01-01..2024-01-31" in first.notes[0]

    second = run_units(source, sinks, ["AAPL"], span, now=LATE_MARCH, listings=lambda _: listing)
    assert second.notes == [] and second.rows_written[OHLCV_DAILY.name] == len(calendar.sessions(*span))
    assert sinks.coverage.get(OHLCV_DAILY.name, "AAPL") == [span]
    assert len(read_dataset(tmp_path, OHLCV_DAILY.name)) == len(calendar.sessions(*span))


def test_a_range_before_the_listing_is_fetched_once(tmp_path: Path) -> None:
    sinks = _sinks(tmp_path)
    source = Flaky(listed=D(2012, 5, 18))
    span = (D(2012, 3, 1), D(2012, 6, 30))
    asked: list[str] = []

    def listings(symbol: str) -> Listing:
        asked.append(symbol)
        return Listing(D(2012, 5, 18))

    first = run_units(source, sinks, ["META"], span, now=LATE_MARCH, listings=listings)
    assert first.notes == [] and asked == ["META"]  # asked once, at the first empty answer
    assert sinks.coverage.get(OHLCV_DAILY.name, "META") == [span]
    again = run_units(source, sinks, ["META"], span, now=LATE_MARCH, listings=listings)
    assert again.chunks_skipped == 4 and len(source.fetched) == 4  # nothing fetched twice


def test_without_a_listing_an_empty_range_is_never_recorded(tmp_path: Path) -> None:
    sinks, source = _sinks(tmp_path), Flaky(listed=D(2030, 1, 1))
    summary = run_units(source, sinks, ["NEW"], (D(2024, 1, 1), D(2024, 1, 31)), now=LATE_MARCH)
    assert sinks.coverage.get(OHLCV_DAILY.name, "NEW") == [] and len(summary.notes) == 1


def test_a_bar_is_covered_only_once_final(tmp_path: Path) -> None:
    """Polygon's day is final at 20:00 New York (plus the delay): a bar fetched at 16:05 is fetched again later."""
    sinks, source, span = _sinks(tmp_path), Flaky(), (D(2024, 3, 1), D(2024, 3, 31))
    listing = Listing(D(1980, 12, 12))
    after_close = pd.Timestamp("2024-03-28 16:05", tz=NY).tz_convert("UTC")
    run_units(source, sinks, ["AAPL"], span, now=after_close, listings=lambda _: listing)
    assert sinks.coverage.get(OHLCV_DAILY.name, "AAPL") == [(D(2024, 3, 1), D(2024, 3, 27))]
    assert read_dataset(tmp_path, OHLCV_DAILY.name)["window_start"].max() < pd.Timestamp("2024-03-28", tz=NY)
    final = pd.Timestamp("2024-03-28 20:15", tz=NY).tz_convert("UTC")
    run_units(source, sinks, ["AAPL"], span, now=final - pd.Timedelta(microseconds=1), listings=lambda _: listing)
    assert sinks.coverage.get(OHLCV_DAILY.name, "AAPL") == [(D(2024, 3, 1), D(2024, 3, 27))]
    run_units(source, sinks, ["AAPL"], span, now=final, listings=lambda _: listing)
    assert sinks.coverage.get(OHLCV_DAILY.name, "AAPL") == [(D(2024, 3, 1), D(2024, 3, 28))]
    stored = read_dataset(tmp_path, OHLCV_DAILY.name)
    assert len(stored) == len(calendar.sessions(D(2024, 3, 1), D(2024, 3, 28)))
    assert stored["event_timestamp"].max() == final


def test_listing_from_polygon_details() -> None:
    assert listing_from_details({"list_date": D(2012, 5, 18)}) == Listing(D(2012, 5, 18))
    gone = listing_from_details({"list_date": D(2001, 1, 2), "delisted_utc": pd.Timestamp("2023-06-09T04:00Z")})
    assert gone == Listing(D(2001, 1, 2), D(2023, 6, 9))
    assert listing_from_details({}) is None
    assert gone is not None and gone.outside((D(2000, 6, 1), D(2024, 1, 31))) == [
        (D(2000, 6, 1), D(2001, 1, 1)),
        (D(2023, 6, 10), D(2024, 1, 31)),
    ]
