"""Ticker details and news pages: real captures field by field, UTC times, bad rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from ingestion.errors import SchemaError
from ingestion.polygon.reference import NEWS_COLUMNS, TICKER_DETAILS_COLUMNS, parse_news, parse_ticker_details

DETAILS = "/v3/reference/tickers/{ticker}"
NEWS = "/v2/reference/news"


def capture(vendor: Path, name: str) -> bytes:
    return (vendor / "polygon" / "rest-captures" / name).read_bytes()


@pytest.mark.parametrize("name", ["v3/reference/tickers/AAPL.json", "v3/reference/tickers/AAPL&date=2020-10-01.json"])
def test_ticker_details_captures_field_by_field(vendor: Path, name: str) -> None:
    body = capture(vendor, name)
    raw = orjson.loads(body)["results"]
    result = parse_ticker_details(body, endpoint=DETAILS)
    assert result.ok and result.drift == set()
    assert tuple(result.frame.columns) == TICKER_DETAILS_COLUMNS and len(result.frame) == 1
    row = result.frame.iloc[0]
    for name_, value in raw.items():
        if name_ in ("address", "branding"):
            continue
        if name_ == "list_date":
            assert row[name_] == dt.date.fromisoformat(value)
        else:
            assert row[name_] == value, name_
    assert row["symbol"] == "AAPL" and row["market_cap"] == raw["market_cap"]


def test_ticker_details_literal_values(vendor: Path) -> None:
    row = parse_ticker_details(capture(vendor, "v3/reference/tickers/AAPL.json"), endpoint=DETAILS).frame.iloc[0]
    assert row["name"] == "Apple Inc." and row["cik"] == "0000320193" and row["total_employees"] == 154000
    assert row["list_date"] == dt.date(1980, 12, 12) and row["delisted_utc"] is pd.NaT


def test_ticker_details_bad_and_empty() -> None:
    missing = parse_ticker_details(b'{"status":"OK","results":{"ticker":"X","name":"X"}}', endpoint=DETAILS)
    assert missing.frame.empty and [r.reason for r in missing.rejected] == ["missing required field 'market'"]
    assert tuple(missing.frame.columns) == TICKER_DETAILS_COLUMNS
    ok = {"ticker": "x", "name": "X", "market": "stocks", "locale": "us", "active": True, "currency_name": "usd"}
    bad_date = parse_ticker_details(
        orjson.dumps({"status": "OK", "results": {**ok, "list_date": "12/12/1980"}}), endpoint=DETAILS
    )
    assert [r.reason for r in bad_date.rejected] == ["list_date '12/12/1980' is not a valid list_date time"]
    good = parse_ticker_details(orjson.dumps({"status": "OK", "results": {**ok, "logo": 1}}), endpoint=DETAILS)
    assert good.frame["symbol"].iloc[0] == "X" and good.drift == {"results.logo"}
    with pytest.raises(SchemaError, match="expected an object"):
        parse_ticker_details(b'{"status":"OK","results":[]}', endpoint=DETAILS)


def test_news_capture_field_by_field(vendor: Path) -> None:
    body = capture(vendor, "v2/reference/news&ticker=NFLX.json")
    raw = orjson.loads(body)["results"]
    result = parse_news(body, endpoint=NEWS)
    assert result.ok and result.drift == set()
    assert tuple(result.frame.columns) == NEWS_COLUMNS and len(result.frame) == len(raw)
    for (_, got), want in zip(result.frame.iterrows(), raw, strict=True):
        for name in ("id", "title", "author", "article_url", "description", "amp_url", "image_url"):
            assert got[name] == want.get(name), name
        assert list(got["tickers"]) == want["tickers"]
        assert got["publisher_name"] == want["publisher"]["name"]
        assert got["published_utc"] == pd.Timestamp(want["published_utc"])
        assert got["event_timestamp"] == got["published_utc"]
    assert result.frame["published_utc"].iloc[0] == pd.Timestamp("2022-04-28 17:08", tz="UTC")
    assert str(result.frame["published_utc"].dtype) == "datetime64[us, UTC]"


def article(**fields: Any) -> dict[str, Any]:
    row = {
        "id": "a",
        "publisher": {"name": "P"},
        "title": "t",
        "author": "me",
        "published_utc": "2024-03-11T13:30:00Z",
        "article_url": "https://x",
        "tickers": ["AAPL"],
        **fields,
    }
    return {k: v for k, v in row.items() if v is not None}


def test_news_times_offsets_and_bad_articles() -> None:
    raw = [
        article(id="1", published_utc="2024-03-11T09:30:00-04:00"),
        article(id="2", published_utc="yesterday"),
        article(id="3", publisher="P"),
        article(id="4", tickers="AAPL"),
        article(id="5", insights=[{"ticker": "AAPL", "sentiment": "positive", "sentiment_reasoning": "r"}]),
        article(id="6", title=None),
    ]
    result = parse_news(orjson.dumps({"status": "OK", "results": raw}), endpoint=NEWS)
    assert len(result.frame) + len(result.rejected) == len(raw)
    assert list(result.frame["id"]) == ["1", "5"]
    assert result.frame["published_utc"].iloc[0] == pd.Timestamp("2024-03-11 13:30", tz="UTC")
    assert result.frame["insights"].iloc[1][0]["sentiment"] == "positive"
    assert sorted(r.reason for r in result.rejected) == sorted(
        [
            "published_utc 'yesterday' is not a valid published time",
            "publisher is not an object with a name",
            "field 'tickers' is string 'AAPL', expected an array",
            "missing required field 'title'",
        ]
    )


def test_empty_news_page_has_the_columns() -> None:
    result = parse_news(b'{"status":"OK","results":[],"count":0}', endpoint=NEWS)
    assert result.frame.empty and tuple(result.frame.columns) == NEWS_COLUMNS
    assert str(result.frame["event_timestamp"].dtype) == "datetime64[us, UTC]"
