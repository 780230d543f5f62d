"""Polygon reference pages: ticker details and news, to frames (pure functions, same validation style).

These pages are small (one object; at most 1000 articles), so they take the exact path only: orjson, then a check of
every row. Times: news ``published_utc`` is an ISO-8601 instant and becomes ``datetime64[us, UTC]``, which is also
the article's ``event_timestamp`` (the moment the market could read it). A ticker's ``list_date`` is a New York
calendar date and stays a date.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion import datasets
from ingestion.polygon import envelope, rows
from ingestion.polygon.parse import to_frame
from ingestion.rejects import ParseResult, Rejected

__all__ = ["NEWS_COLUMNS", "TICKER_DETAILS_COLUMNS", "parse_news", "parse_ticker_details"]

_S, _F = pa.string(), pa.float64()

DETAILS = rows.RowSpec(
    "polygon_ticker_details",
    (
        ("ticker", _S),
        ("name", _S),
        ("market", _S),
        ("locale", _S),
        ("active", pa.bool_()),
        ("currency_name", _S),
        ("primary_exchange", _S),
        ("type", _S),
        ("cik", _S),
        ("composite_figi", _S),
        ("share_class_figi", _S),
        ("market_cap", _F),
        ("sic_code", _S),
        ("sic_description", _S),
        ("ticker_root", _S),
        ("ticker_suffix", _S),
        ("homepage_url", _S),
        ("phone_number", _S),
        ("description", _S),
        ("total_employees", _F),
        ("list_date", _S),
        ("delisted_utc", _S),
        ("share_class_shares_outstanding", _F),
        ("weighted_shares_outstanding", _F),
        ("round_lot", _F),
    ),
    frozenset({"ticker", "name", "market", "locale", "active", "currency_name"}),
    frozenset({"address", "branding"}),  # nested contact and logo objects: documented, not kept
)
TICKER_DETAILS_COLUMNS: tuple[str, ...] = (datasets.ENTITY_KEY, *(n for n, _ in DETAILS.fields))

NEWS = rows.RowSpec(
    "polygon_news",
    (
        ("id", _S),
        ("published_utc", _S),
        ("title", _S),
        ("author", _S),
        ("article_url", _S),
        ("tickers", pa.list_(_S)),
        ("description", _S),
        ("keywords", pa.list_(_S)),
        ("amp_url", _S),
        ("image_url", _S),
    ),
    frozenset({"id", "published_utc", "title", "article_url", "tickers"}),
    frozenset({"publisher", "insights"}),  # checked and flattened by hand below
)
_INSIGHTS = pa.list_(pa.struct([("ticker", _S), ("sentiment", _S), ("sentiment_reasoning", _S)]))
NEWS_COLUMNS: tuple[str, ...] = (
    datasets.EVENT_TS,
    *(n for n, _ in NEWS.fields),
    "publisher_name",
    "publisher_homepage_url",
    "insights",
)


def parse_ticker_details(body: bytes | str, *, endpoint: str) -> ParseResult:
    """Parse ``/v3/reference/tickers/{ticker}``: a one-row frame in :data:`TICKER_DETAILS_COLUMNS` (``symbol`` is
    the upper-cased ticker; ``list_date`` a date; ``delisted_utc`` UTC). No ``results`` gives an empty frame."""
    doc = envelope.decode(body, endpoint)
    result = doc.get("results")
    if result is not None and not isinstance(result, dict):
        raise envelope.schema_error(f"results is a JSON {type(result).__name__}, expected an object", endpoint)
    raw = [] if result is None else [result]
    good, rejected, drift = _check(raw, DETAILS, endpoint)
    drift |= {k for k in doc if k not in envelope.ENVELOPE_KEYS}
    good, bad = _convert(good, "list_date", lambda s: pd.to_datetime(s, format="%Y-%m-%d"), "list_date")
    good, bad2 = _convert(good, "delisted_utc", lambda s: pd.to_datetime(s, utc=True, format="ISO8601"), "delisted")
    rejected += [Rejected(DETAILS.dataset, f"{envelope.VENDOR} {endpoint}", r, p) for r, p in (*bad, *bad2)]
    values = pa.array(good, type=DETAILS.struct)
    table = pa.Table.from_arrays(values.flatten(), names=[n for n, _ in DETAILS.fields])
    table = table.add_column(0, datasets.ENTITY_KEY, pc.utf8_upper(table.column("ticker")))
    frame = to_frame(table)
    frame["list_date"] = pd.to_datetime(frame["list_date"], format="%Y-%m-%d").dt.date
    frame["delisted_utc"] = pd.to_datetime(frame["delisted_utc"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    return ParseResult(frame=frame, rejected=rejected, drift=drift)


def parse_news(body: bytes | str, *, endpoint: str) -> ParseResult:
    """Parse one page of ``/v2/reference/news``: columns :data:`NEWS_COLUMNS`, ``event_timestamp`` =
    ``published_utc`` (UTC, us). ``publisher`` is flattened to its name and homepage; ``insights`` is kept as a list
    of ``{ticker, sentiment, sentiment_reasoning}``. An article whose time does not parse is rejected."""
    doc = envelope.decode(body, endpoint)
    raw = envelope.results_list(doc, endpoint)
    good, rejected, drift = _check(raw, NEWS, endpoint)
    drift |= {k for k in doc if k not in envelope.ENVELOPE_KEYS}
    source = f"{envelope.VENDOR} {endpoint}"
    kept: list[dict[str, Any]] = []
    for row in good:
        reason = _news_problem(row)
        if reason:
            rejected.append(Rejected(NEWS.dataset, source, reason, row))
        else:
            kept.append(row)
    kept, bad = _convert(kept, "published_utc", lambda s: pd.to_datetime(s, utc=True, format="ISO8601"), "published")
    rejected += [Rejected(NEWS.dataset, source, r, p) for r, p in bad]
    values = pa.array(kept, type=NEWS.struct)
    table = pa.Table.from_arrays(values.flatten(), names=[n for n, _ in NEWS.fields])
    publishers = [row["publisher"] for row in kept]
    table = table.append_column("publisher_name", pa.array([p.get("name") for p in publishers], _S))
    table = table.append_column("publisher_homepage_url", pa.array([p.get("homepage_url") for p in publishers], _S))
    table = table.append_column("insights", pa.array([row.get("insights") for row in kept], _INSIGHTS))
    frame = to_frame(table)
    published = pd.to_datetime(frame["published_utc"], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    frame["published_utc"] = published
    frame.insert(0, datasets.EVENT_TS, published)
    return ParseResult(frame=frame[list(NEWS_COLUMNS)], rejected=rejected, drift=drift)


def _check(raw: list[Any], spec: rows.RowSpec, endpoint: str) -> tuple[list[dict[str, Any]], list[Rejected], set[str]]:
    source = f"{envelope.VENDOR} {endpoint}"
    good: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    drift: set[str] = set()
    for row in raw:
        reason = rows.row_problem(row, spec)
        if reason is None:
            good.append(row)
        else:
            rejected.append(Rejected(spec.dataset, source, reason, row))
        if isinstance(row, dict):
            drift |= {f"results.{k}" for k in row if k not in spec.names}
    return good, rejected, drift


def _news_problem(row: dict[str, Any]) -> str | None:
    publisher = row.get("publisher")
    if not isinstance(publisher, dict) or not isinstance(publisher.get("name"), str):
        return "publisher is not an object with a name"
    insights = row.get("insights")
    if insights is not None:
        if not isinstance(insights, list) or not all(isinstance(i, dict) for i in insights):
            return "insights is not an array of objects"
        try:
            pa.array([insights], _INSIGHTS)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return "insights fields are not strings"
    return None


def _convert(
    good: list[dict[str, Any]], field: str, parse: Any, what: str
) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """Keep rows whose optional time field parses; the rest come back as (reason, payload)."""
    kept: list[dict[str, Any]] = []
    bad: list[tuple[str, Any]] = []
    for row in good:
        value = row.get(field)
        if value is None:
            kept.append(row)
            continue
        try:
            parse(value)
        except (ValueError, TypeError):
            bad.append((f"{field} {value!r:.40} is not a valid {what} time", row))
        else:
            kept.append(row)
    return kept, bad
