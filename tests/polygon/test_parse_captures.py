"""Every real capture of an endpoint we parse goes through its parser: no capture is left out, none loses a row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ingestion.polygon.parse import parse_aggs, parse_grouped_daily
from ingestion.polygon.reference import parse_news, parse_ticker_details
from ingestion.polygon.ticks import parse_quotes, parse_trades
from ingestion.rejects import ParseResult

Parser = Callable[[bytes], ParseResult]

# Capture folder (relative to rest-captures) -> the parser for every file in it.
PARSERS: dict[str, Parser] = {
    "v2/aggs/ticker/AAPL/range/1/day": lambda b: parse_aggs(
        b, symbol="AAPL", timespan="day", multiplier=1, adjusted=True, endpoint="range"
    ),
    "v2/aggs/grouped/locale/us/market/stocks": lambda b: parse_grouped_daily(b, adjusted=True, endpoint="grouped"),
    "v2/aggs/ticker/AAPL/prev.json": lambda b: parse_grouped_daily(b, adjusted=True, endpoint="prev"),
    "v3/trades/AAPL": lambda b: parse_trades(b, symbol="AAPL", endpoint="trades"),
    "v3/quotes/AAPL": lambda b: parse_quotes(b, symbol="AAPL", endpoint="quotes"),
    "v3/reference/tickers/AAPL": lambda b: parse_ticker_details(b, endpoint="details"),
    "v2/reference/news": lambda b: parse_news(b, endpoint="news"),
}


def files_of(root: Path) -> list[tuple[str, Path]]:
    out = []
    for prefix in PARSERS:
        base = root / prefix
        if base.is_file():
            out.append((prefix, base))
            continue
        # A folder, or a file name with a query part ("news&ticker=NFLX.json", "AAPL&date=...json").
        matches = sorted(p for p in root.rglob("*.json") if str(p.relative_to(root)).startswith(prefix))
        out += [(prefix, p) for p in matches]
    return out


def row_count(body: bytes) -> int:
    results: Any = orjson.loads(body).get("results")
    return len(results) if isinstance(results, list) else int(results is not None)


def test_every_capture_of_a_parsed_endpoint_parses_completely(vendor: Path) -> None:
    root = vendor / "polygon" / "rest-captures"
    found = files_of(root)
    assert len(found) == 10  # 2 range, grouped, prev, trades, 2 quotes, 2 ticker details, news
    for prefix, path in found:
        body = path.read_bytes()
        result = PARSERS[prefix](body)
        assert result.ok and result.drift == set(), path.name
        assert len(result.frame) == row_count(body) > 0, path.name


def test_pre_rebrand_captures_parse_to_the_same_frames(vendor: Path) -> None:
    """Files kept from before api.polygon.io became api.massive.com (those holding a URL): only URLs differ."""
    new, old = vendor / "polygon" / "rest-captures", vendor / "polygon" / "rest-captures-pre-rebrand"
    pairs = [(prefix, path, new / path.relative_to(old)) for prefix, path in files_of(old)]
    assert pairs  # quotes (next_url), ticker details (branding URLs), news (article URLs)
    for prefix, before, after in pairs:
        fa, fb = PARSERS[prefix](before.read_bytes()).frame, PARSERS[prefix](after.read_bytes()).frame
        assert list(fa.columns) == list(fb.columns) and len(fa) == len(fb) > 0
        urls = [c for c in fa.columns if c.endswith("url")]
        assert fa.drop(columns=urls).astype(str).equals(fb.drop(columns=urls).astype(str)), before.name
