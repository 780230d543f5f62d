"""``backfill``: ``python -m ingestion backfill ohlcv|flow --symbols AAPL,MSFT --from 2024-01-01 --to 2024-06-30``.

Vendor history into the Parquet offline store, then the latest values into Redis. Re-running is safe: completed
ranges are skipped, and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from typing import Any

from ingestion.errors import ConfigError
from ingestion.jobs.args import whole_number

HELP = "backfill vendor history into the offline (Parquet) and online (Redis) stores"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("source", choices=["ohlcv", "flow"], help="ohlcv (Polygon bars) or flow (Unusual Whales)")
    parser.add_argument("--symbols", required=True, help="comma-separated tickers, e.g. AAPL,MSFT")
    parser.add_argument("--from", dest="start", required=True, help="first date, YYYY-MM-DD (New York)")
    parser.add_argument("--to", dest="end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--timespan", choices=["day", "minute"], default="day", help="bar size for ohlcv")
    parser.add_argument("--workers", type=whole_number("workers"), default=4, help="symbols fetched in parallel")
    parser.add_argument("--no-online", action="store_true", help="skip writing the latest values to Redis")
    parser.add_argument(
        "--requests-per-minute",
        type=whole_number("requests", hint="; leave the option out for no client-side limit"),
        default=None,
        help="client-side budget (5 on free plans; default: none)",
    )
    parser.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail rather than take bars from Unusual Whales when Polygon is down",
    )


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.jobs.args import parse_range, parse_symbols
    from ingestion.runtime import runtime

    symbols = parse_symbols(args.symbols)
    start, end = parse_range(args.start, args.end)
    with runtime(settings()) as rt:
        check_simulated_symbols(rt, args.source, symbols)
        if args.source == "ohlcv":
            from ingestion.jobs.runs import run_ohlcv

            summary = run_ohlcv(
                rt, symbols, start, end, args.timespan, args.workers, args.requests_per_minute, not args.no_fallback
            )
        else:
            from ingestion.jobs.runs import run_flow

            summary = run_flow(rt, symbols, start, end, args.workers)
        if not args.no_online:
            from ingestion.jobs.runs import write_online

            write_online(rt, summary)
    print(summary.table())
    return 0 if summary.ok else 1


def check_simulated_symbols(rt: Any, source: str, symbols: list[str]) -> None:
    """On the built-in simulators, refuse symbols the simulated market does not list (a real vendor answers an
    unknown ticker with no rows, which a backfill cannot tell from a quiet one)."""
    unknown = rt.unknown_symbols(symbols, "polygon" if source == "ohlcv" else "uw")
    if unknown:
        market = rt.stack.market
        raise ConfigError(f"not in the simulated market: {', '.join(unknown)}; use some of {', '.join(market.symbols)}")
