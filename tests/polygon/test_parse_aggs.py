"""Aggregates pages -> the standard bar frame: real captures, time rules, empty pages, bad pages and bad rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from ingestion import datasets
from ingestion.errors import SchemaError
from ingestion.polygon import rows
from ingestion.polygon.parse import BAR_COLUMNS, PageInfo, page_info, parse_aggs, parse_grouped_daily, range_spec

RANGE = "v2/aggs/ticker/AAPL/range/1/day"
ENDPOINT = "/v2/aggs/ticker/{ticker}/range"
GROUPED_ENDPOINT = "/v2/aggs/grouped/locale/us/market/stocks"

EXPECTED_DTYPES = {
    "symbol": "object",
    "window_start": "datetime64[us, UTC]",
    "event_timestamp": "datetime64[us, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "vwap": "float64",
    "transactions": "Int64",
    "otc": "bool",
    "adjusted": "bool",
    "source": "object",
}


def captures(vendor: Path) -> Path:
    return vendor / "polygon" / "rest-captures"


def aggs(body: bytes | str, timespan: str = "day", multiplier: int = 1, symbol: str = "AAPL") -> Any:
    return parse_aggs(body, symbol=symbol, timespan=timespan, multiplier=multiplier, adjusted=True, endpoint=ENDPOINT)


def page(results: list[Any] | None, **envelope: Any) -> bytes:
    doc: dict[str, Any] = {"ticker": "AAPL", "adjusted": True, "status": "OK", "request_id": "r1", **envelope}
    if results is not None:
        doc["results"] = results
    return orjson.dumps(doc)


def bar(at: int, **fields: Any) -> dict[str, Any]:
    """A valid bar starting at ``at`` (epoch ms); ``fields`` override or break it."""
    row = {"o": 10.0, "h": 11.0, "l": 9.5, "c": 10.5, "v": 1000.0, "vw": 10.2, "n": 12, "t": at, **fields}
    return {k: v for k, v in row.items() if v is not None}


def assert_standard_frame(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == BAR_COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES


def assert_matches_raw(frame: pd.DataFrame, raw: list[dict[str, Any]]) -> None:
    """Every field of every raw row, compared one by one with the parsed frame."""
    assert len(frame) == len(raw)
    for (_, got), want in zip(frame.iterrows(), raw, strict=True):
        assert got["open"] == want["o"] and got["high"] == want["h"]
        assert got["low"] == want["l"] and got["close"] == want["c"]
        assert got["volume"] == want["v"]
        assert pd.isna(got["vwap"]) if "vw" not in want else got["vwap"] == want["vw"]
        assert got["transactions"] is pd.NA if "n" not in want else got["transactions"] == want["n"]
        assert got["otc"] is bool(want.get("otc", False))


# -- the standard columns ------------------------------------------------------------------------------------------


def test_bar_columns_are_the_dataset_columns_in_the_documented_order() -> None:
    assert tuple(EXPECTED_DTYPES) == BAR_COLUMNS
    assert set(BAR_COLUMNS) == set(datasets.OHLCV_MINUTE.column_names) - {datasets.CREATED_TS}


# -- real captures -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["2005-04-01", "2005-04-02"])
def test_range_capture_parses_to_the_values_in_the_file(vendor: Path, start: str) -> None:
    path = captures(vendor) / RANGE / start / "2005-04-04.json"
    body = path.read_bytes()
    raw = orjson.loads(body)["results"]
    result = aggs(body)
    assert result.ok and result.drift == set()
    assert_standard_frame(result.frame)
    assert_matches_raw(result.frame, raw)
    want_starts = pd.to_datetime([r["t"] for r in raw], unit="ms", utc=True)
    assert list(result.frame["window_start"]) == list(want_starts)
    # Literal spot checks, read off the file: the 2005-04-01 bar.
    first = result.frame.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (1.5032, 1.5064, 1.4489, 1.4604)
    assert first["volume"] == 642646396.0 and first["vwap"] == 1.469 and first["transactions"] == 82132
    assert (result.frame["symbol"] == "AAPL").all() and result.frame["adjusted"].all()


def test_daily_bar_times_across_the_dst_switch(vendor: Path) -> None:
    """2005-04-01 is EST (midnight 05:00Z, final 20:00 + 15 min = 01:15Z); 2005-04-04 is EDT after the 04-03 switch
    (04:00Z, 00:15Z): Polygon's day is final at 20:00 New York, plus the publication delay."""
    result = aggs((captures(vendor) / RANGE / "2005-04-01" / "2005-04-04.json").read_bytes())
    assert list(result.frame["window_start"]) == [
        pd.Timestamp("2005-04-01 05:00", tz="UTC"),
        pd.Timestamp("2005-04-04 04:00", tz="UTC"),
    ]
    assert list(result.frame["event_timestamp"]) == [
        pd.Timestamp("2005-04-02 01:15", tz="UTC"),
        pd.Timestamp("2005-04-05 00:15", tz="UTC"),
    ]


@pytest.mark.parametrize(
    "name", ["grouped/locale/us/market/stocks/2005-04-04&adjusted=true.json", "ticker/AAPL/prev.json"]
)
def test_grouped_and_prev_captures_parse_to_the_values_in_the_file(vendor: Path, name: str) -> None:
    body = (captures(vendor) / "v2" / "aggs" / name).read_bytes()
    raw = orjson.loads(body)["results"]
    result = parse_grouped_daily(body, adjusted=True, endpoint=GROUPED_ENDPOINT)
    assert result.ok and result.drift == set()
    assert_standard_frame(result.frame)
    assert_matches_raw(result.frame, raw)
    assert list(result.frame["symbol"]) == [r["T"] for r in raw]
    # Grouped rows stamp t at the session END; the bar is final when Polygon's day is (20:00 New York, plus the
    # 15-minute delay), and its window started at NY midnight.
    for (_, got), want in zip(result.frame.iterrows(), raw, strict=True):
        end = pd.Timestamp(want["t"], unit="ms", tz="UTC")
        day = end.tz_convert("America/New_York").normalize()
        assert got["event_timestamp"] == day + pd.Timedelta(hours=20, minutes=15)
        assert got["window_start"] == day.tz_convert("UTC")


def test_grouped_capture_literal_values(vendor: Path) -> None:
    body = (captures(vendor) / "v2/aggs/grouped/locale/us/market/stocks/2005-04-04&adjusted=true.json").read_bytes()
    row = parse_grouped_daily(body, adjusted=True, endpoint=GROUPED_ENDPOINT).frame.iloc[0]
    assert row["symbol"] == "GIK" and row["volume"] == 895345.0 and row["transactions"] == 96
    assert row["event_timestamp"] == pd.Timestamp("2020-10-14 20:15", tz="America/New_York")
    assert row["window_start"] == pd.Timestamp("2020-10-14 00:00", tz="America/New_York")


def test_page_info_of_captures(vendor: Path) -> None:
    body = (captures(vendor) / RANGE / "2005-04-01" / "2005-04-04.json").read_bytes()
    assert page_info(body, ENDPOINT) == PageInfo(None, "OK", "12afda77aab3b1936c5fb6ef4241ae42", 2)
    quotes = (captures(vendor) / "v3" / "quotes" / "AAPL.json").read_bytes()
    info = page_info(quotes, "/v3/quotes")
    assert info.next_url == orjson.loads(quotes)["next_url"] and info.results_count == 10


# -- time rules ----------------------------------------------------------------------------------------------------


def ms(ts: str, tz: str = "UTC") -> int:
    return int(pd.Timestamp(ts, tz=tz).value // 1_000_000)


@pytest.mark.parametrize(
    ("timespan", "multiplier", "start", "end"),
    [
        ("minute", 1, "2024-03-11 13:30", "2024-03-11 13:31"),
        ("minute", 5, "2024-03-11 13:30", "2024-03-11 13:35"),
        ("second", 30, "2024-03-11 13:30", "2024-03-11 13:30:30"),
        ("hour", 1, "2024-03-11 13:00", "2024-03-11 14:00"),
    ],
)
def test_intraday_bars_end_at_start_plus_span(timespan: str, multiplier: int, start: str, end: str) -> None:
    frame = aggs(page([bar(ms(start))]), timespan, multiplier).frame
    assert frame["window_start"].iloc[0] == pd.Timestamp(start, tz="UTC")
    # Published at the window's end plus the minute bars' 15-second delay (late trades still change a bar).
    assert frame["event_timestamp"].iloc[0] == pd.Timestamp(end, tz="UTC") + pd.Timedelta(seconds=15)


@pytest.mark.parametrize(
    ("day", "close_utc"),
    [
        # Polygon's day is final at 20:00 New York (its volume counts extended hours), plus the 15-minute delay;
        # a half day too: 20:00 is safe after its 17:00 end of extended hours.
        ("2024-11-29", "2024-11-30 01:15"),  # day after Thanksgiving (EST)
        ("2024-11-27", "2024-11-28 01:15"),  # a normal EST day
        ("2024-03-08", "2024-03-09 01:15"),  # Friday before the DST switch (EST)
        ("2024-03-11", "2024-03-12 00:15"),  # Monday after it (EDT)
    ],
)
def test_daily_bar_event_time_is_when_polygons_day_is_final(day: str, close_utc: str) -> None:
    frame = aggs(page([bar(ms(day, "America/New_York"))])).frame
    assert frame["window_start"].iloc[0] == pd.Timestamp(day, tz="America/New_York")
    assert frame["event_timestamp"].iloc[0] == pd.Timestamp(close_utc, tz="UTC")


@pytest.mark.parametrize(
    ("timespan", "start_day", "close_utc"),
    [
        ("week", "2024-11-24", "2024-11-30 01:15"),  # week of Thanksgiving ends on the half day
        ("month", "2024-11-01", "2024-11-30 01:15"),  # November 2024's last session is that half day
        ("quarter", "2024-10-01", "2025-01-01 01:15"),
        ("year", "2024-01-01", "2025-01-01 01:15"),
    ],
)
def test_long_bars_end_at_the_last_session_close_of_their_window(timespan: str, start_day: str, close_utc: str) -> None:
    frame = aggs(page([bar(ms(start_day, "America/New_York"))]), timespan).frame
    assert frame["event_timestamp"].iloc[0] == pd.Timestamp(close_utc, tz="UTC")


def test_daily_bar_on_a_holiday_is_rejected_not_invented() -> None:
    result = aggs(page([bar(ms("2024-11-28", "America/New_York")), bar(ms("2024-11-29", "America/New_York"))]))
    assert len(result.frame) == 1 and len(result.rejected) == 1
    assert result.rejected[0].reason == "no NYSE session in the bar's window"
    assert result.rejected[0].dataset == datasets.OHLCV_DAILY.name


# -- empty and malformed pages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("results", [None, []])
def test_no_results_is_an_empty_frame_with_the_standard_dtypes(results: list[Any] | None) -> None:
    result = aggs(page(results, resultsCount=0))
    assert result.frame.empty and result.ok
    assert_standard_frame(result.frame)


def test_empty_grouped_page_has_the_standard_dtypes() -> None:
    result = parse_grouped_daily(page(None), adjusted=False, endpoint=GROUPED_ENDPOINT)
    assert_standard_frame(result.frame)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "JSON list, expected an object"),
        (b'{"status":"OK","results":{"o":1}}', "results is a JSON dict"),
        (b'{"status":"OK","results":"none"}', "results is a JSON str"),
        (b'{"status":"ERROR","request_id":"q","error":"API Key was not provided"}', "API Key was not provided"),
        (b'{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data"}', "not entitled"),
        (b'{"results":[]}', "status is None"),
        (b'{"status":"OK"}{"status":"OK"}', "not valid JSON"),
    ],
)
def test_malformed_page_raises_schema_error_naming_the_endpoint(body: bytes, match: str) -> None:
    with pytest.raises(SchemaError, match=match) as info:
        aggs(body)
    assert info.value.endpoint == ENDPOINT and ENDPOINT in str(info.value)
    assert info.value.vendor == "polygon"


def test_page_for_another_ticker_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="'MSFT'"):
        aggs(page([bar(ms("2024-11-29", "America/New_York"))], ticker="MSFT"))


def test_page_info_refuses_an_error_page() -> None:
    with pytest.raises(SchemaError, match="ERROR"):
        page_info(b'{"status":"ERROR","error":"x"}', ENDPOINT)


# -- bad rows ------------------------------------------------------------------------------------------------------

T0 = ms("2024-03-11 13:30")
BAD_ROWS: list[tuple[Any, str]] = [
    ({"h": 1.0, "l": 1.0, "c": 1.0, "v": 1.0, "t": T0}, "missing required field 'o'"),
    (bar(T0, t=None), "missing required field 't'"),
    (bar(T0, o="10.0"), "field 'o' is string '10.0', expected a number"),
    (bar(T0, v=True), "field 'v' is boolean True, expected a number"),
    (bar(T0, t=1.7e12), "field 't' is number 1700000000000.0, expected an integer"),
    (bar(T0, n=1.5), "field 'n' is number 1.5, expected an integer"),
    (bar(T0, otc="yes"), "field 'otc' is string 'yes', expected a boolean"),
    (bar(T0, l=10.6), "low above open or close"),
    (bar(T0, h=10.4), "high below open or close"),
    (bar(T0, v=-1.0), "negative volume"),
    (bar(T0, n=-3), "negative transactions"),
    ([1, 2, 3], "row is a JSON list, expected an object"),
    ("bar", "row is a JSON str, expected an object"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_bad_row_is_rejected_with_its_reason_and_the_rest_parses(row: Any, reason: str) -> None:
    good = [bar(T0 + 60_000 * i) for i in range(3)]
    result = aggs(page([good[0], row, good[1], good[2]]), "minute")
    assert [r.reason for r in result.rejected] == [reason]
    assert result.rejected[0].payload == row
    assert result.rejected[0].source == f"polygon {ENDPOINT}"
    assert result.rejected[0].dataset == datasets.OHLCV_MINUTE.name
    assert_matches_raw(result.frame, good)
    assert_standard_frame(result.frame)


def test_all_bad_rows_together_counts_add_up() -> None:
    good = [bar(T0 + 60_000 * i, otc=(i % 2 == 0)) for i in range(7)]
    raw = good[:3] + [r for r, _ in BAD_ROWS] + good[3:]
    result = aggs(page(raw), "minute")
    assert len(result.frame) + len(result.rejected) == len(raw)
    assert sorted(r.reason for r in result.rejected) == sorted(reason for _, reason in BAD_ROWS)
    assert_matches_raw(result.frame, good)


def test_optional_fields_absent_become_nulls_and_false() -> None:
    row = {"o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "v": 0, "t": T0}
    frame = aggs(page([row, bar(T0 + 60_000, otc=True)]), "minute").frame
    assert pd.isna(frame["vwap"].iloc[0]) and frame["transactions"].iloc[0] is pd.NA
    assert list(frame["otc"]) == [False, True]
    assert_standard_frame(frame)


def test_unknown_fields_are_tolerated_and_reported_as_drift() -> None:
    body = page([bar(T0, zz=1, extra={"a": 1}), bar(T0 + 60_000)], new_field="x")
    result = aggs(body, "minute")
    assert result.ok and len(result.frame) == 2
    assert result.drift == {"new_field", "results.zz", "results.extra"}


def test_pretty_printed_and_str_bodies_parse_the_same() -> None:
    raw = [bar(T0 + 60_000 * i) for i in range(5)]
    compact = page(raw)
    pretty = orjson.dumps(orjson.loads(compact), option=orjson.OPT_INDENT_2)
    a, b, c = aggs(compact, "minute"), aggs(pretty, "minute"), aggs(pretty.decode(), "minute")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.frame, c.frame)


# -- the fast path and the exact path agree ------------------------------------------------------------------------


def random_page(seed: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        o, c = rng.uniform(50, 150, 2)
        row: dict[str, Any] = {
            "o": float(o),
            "c": float(c),
            "h": float(max(o, c) + rng.uniform(0, 2)),
            "l": float(min(o, c) - rng.uniform(0, 2)),
            "v": float(rng.integers(0, 10**6)) if i % 3 else int(rng.integers(0, 10**6)),
            "t": T0 + 60_000 * i,
        }
        if i % 4:
            row["vw"] = float((o + c) / 2)
        if i % 5:
            row["n"] = int(rng.integers(1, 500))
        if i % 7 == 0:
            row["otc"] = True
        out.append(row)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_and_exact_paths_read_the_same_rows(seed: int) -> None:
    raw = random_page(seed, 300)
    body = page(raw)
    spec = range_spec("minute", 1)
    fast = rows.fast(body, spec)
    assert fast is not None  # a clean page takes the fast path
    exact = rows.exact(orjson.loads(body), spec, ENDPOINT)
    assert fast.values.equals(exact.values)
    assert fast.drift == exact.drift == set() and fast.rejected == exact.rejected == []
    assert_matches_raw(aggs(body, "minute").frame, raw)


def test_a_page_with_one_bad_row_gives_the_clean_page_frame() -> None:
    """The exact path (taken because of the bad row) builds the same frame as the fast path on the clean rows."""
    raw = random_page(9, 200)
    clean = aggs(page(raw), "minute")
    dirty = aggs(page([*raw[:50], bar(T0, o="x"), *raw[50:]]), "minute")
    pd.testing.assert_frame_equal(clean.frame, dirty.frame)
    assert len(dirty.rejected) == 1


def test_fast_path_declines_what_it_cannot_check() -> None:
    spec = range_spec("minute", 1)
    assert rows.fast(page([bar(T0, o="1")]), spec) is None
    assert rows.fast(page([{"t": T0}]), spec) is None
    assert rows.fast(b'{"status":"ERROR"}', spec) is None
    assert rows.fast(b"nope", spec) is None


MUTATIONS: list[Any] = [None, "1", True, -1, 1.5, [], {}, 10**30]


@pytest.mark.parametrize("seed", range(5))
def test_seeded_fuzz_rows_are_parsed_or_rejected_never_lost(seed: int) -> None:
    """Random field deletions and type swaps: every row ends in the frame or in `rejected`, and nothing raises."""
    rng = np.random.default_rng(seed)
    raw: list[Any] = random_page(seed, 120)
    for row in raw:
        if rng.random() < 0.3:
            key = str(rng.choice(["o", "h", "l", "c", "v", "vw", "n", "t", "otc"]))
            value = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
            if value is None:
                row.pop(key, None)
            else:
                row[key] = value
    # json, not orjson: 10**30 is beyond orjson's 64-bit integers (it reads one back as a float).
    body = json.dumps({"ticker": "AAPL", "status": "OK", "results": raw})
    result = aggs(body, "minute")
    assert len(result.frame) + len(result.rejected) == len(raw)
    assert all(r.reason for r in result.rejected)
    assert_standard_frame(result.frame)
    assert (result.frame["low"] <= result.frame[["open", "close"]].min(axis=1)).all()
    assert (result.frame["high"] >= result.frame[["open", "close"]].max(axis=1)).all()
