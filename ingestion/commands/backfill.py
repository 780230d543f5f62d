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
    parser.add_argument("--symbols", help="comma-separated tickers, e.g. AAPL,MSFT (or --universe)")
    parser.add_argument(
        "--universe",
        help="instead of --symbols: listed:YYYY-MM-DD, every ticker listed that day (delisted or renamed since too); "
        "all: every ticker the vendor answers each session, daily bars through one grouped request per session",
    )
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

    if args.universe == "all":
        return _run_universe_all(args)
    listed = _listed_day(args)
    symbols = parse_symbols(args.symbols) if listed is None else []
    start, end = parse_range(args.start, args.end)
    with runtime(settings()) as rt:
        if listed is not None:
            symbols = listed_symbols(rt, listed)
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


def _run_universe_all(args: argparse.Namespace) -> int:
    """``--universe all``: daily bars of the whole market through grouped daily (:mod:`ingestion.jobs.universe`)."""
    from ingestion.config import settings
    from ingestion.jobs.args import parse_range
    from ingestion.jobs.runs import write_online
    from ingestion.jobs.universe_run import run_universe
    from ingestion.runtime import runtime

    if args.symbols is not None:
        raise ConfigError("--universe all already means every ticker; do not combine it with --symbols")
    if args.source != "ohlcv" or args.timespan != "day":
        raise ConfigError("--universe all backfills daily bars only: use it with 'ohlcv --timespan day'")
    start, end = parse_range(args.start, args.end)
    with runtime(settings()) as rt:
        summary = run_universe(rt, start, end, min(args.workers, 4), args.requests_per_minute)
        if not args.no_online:
            write_online(rt, summary)
    print(summary.table())
    return 0 if summary.ok else 1


def _listed_day(args: argparse.Namespace) -> Any:
    """The date of ``--universe listed:DATE`` (None with ``--symbols``); exactly one of the two must be given."""
    from ingestion.jobs.listed import parse_listed

    if (args.symbols is None) == (args.universe is None):
        raise ConfigError("pass either --symbols AAPL,MSFT or --universe listed:YYYY-MM-DD")
    if args.universe is None:
        return None
    day = parse_listed(args.universe)
    if day is None:
        raise ConfigError(f"--universe {args.universe!r} is not a universe: use listed:YYYY-MM-DD")
    if args.source != "ohlcv":
        raise ConfigError("--universe listed:DATE lists Polygon tickers: use it with backfill ohlcv")
    return day


def listed_symbols(rt: Any, day: Any) -> list[str]:
    """Every ticker listed on ``day`` (``--universe listed:DATE``), from Polygon's reference data."""
    from ingestion.jobs.landing import Sinks
    from ingestion.jobs.listed import tickers_listed_on
    from ingestion.jobs.runs import polygon_client

    rt.claim_data_dir("polygon")
    client = polygon_client(rt, on_rejected=Sinks.for_settings(rt.settings).quarantine.write)  # bad rows kept
    try:
        return tickers_listed_on(client, day)
    finally:
        client.close()


def check_simulated_symbols(rt: Any, source: str, symbols: list[str]) -> None:
    """On the built-in simulators, refuse symbols the simulated market does not list (a real vendor answers an
    unknown ticker with no rows, which a backfill cannot tell from a quiet one). An old name of a renamed ticker
    (FB) is known: the backfill resolves it to its entity."""
    unknown = rt.unknown_symbols(symbols, "polygon" if source == "ohlcv" else "uw")
    if unknown and source == "ohlcv":
        unknown = [s for s in unknown if not rt.stack.market.reference.knows(s)]
    if unknown:
        market = rt.stack.market
        raise ConfigError(f"not in the simulated market: {', '.join(unknown)}; use some of {', '.join(market.symbols)}")
