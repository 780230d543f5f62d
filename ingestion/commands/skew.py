"""``skew``: online values against the point-in-time offline values at the same instant; exit 1 on a difference.

For a sample of symbols (``--symbols``, else ``--sample`` drawn from the offline ``ohlcv_daily`` files), each
FeatureService is read online (its pre-computed vector) and offline (``get_historical_features`` at the same read
instant), and every feature of every view is compared (:mod:`ingestion.ops.skew`). Prints one table line per
feature; exit 0 when none differs, 1 otherwise.
"""

from __future__ import annotations

import argparse

HELP = "compare online values with point-in-time offline values at the same instant; non-zero exit on a difference"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--symbols", default="", help="comma-separated symbols (default: a seeded sample)")
    parser.add_argument("--sample", type=int, default=20, help="symbols drawn from the offline data without --symbols")
    parser.add_argument("--services", default="daily_model,intraday_model", help="comma-separated FeatureServices")
    parser.add_argument("--at", default="", help="the read instant, ISO 8601 (default: now)")


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.errors import ConfigError
    from ingestion.ops.skew import measure_skew, sample_symbols
    from ingestion.runtime import runtime
    from ingestion.store.feast_repo import open_store

    at = None
    if args.at:
        import pandas as pd

        try:
            at = pd.Timestamp(args.at).tz_localize("UTC") if pd.Timestamp(args.at).tz is None else pd.Timestamp(args.at)
        except ValueError:
            raise ConfigError(f"--at {args.at!r}: use an ISO 8601 instant, e.g. 2024-03-05T21:00:00Z") from None
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    with runtime(settings(), vendors=False) as rt:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        symbols = symbols or sample_symbols(rt.settings.offline_root, args.sample)
        store = open_store(rt.settings, rt.redis_url)
        report = measure_skew(store, symbols, services=services, at=at.to_pydatetime() if at is not None else None)
    print(report.table())
    return 0 if report.differences == 0 else 1
