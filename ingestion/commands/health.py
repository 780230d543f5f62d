"""``health``: exit 0 when Redis, the registry, the vendors and the online data are healthy; otherwise say why.

Every feature view is checked by the rule of its kind (:mod:`ingestion.ops.freshness_rules`); ``--max-age VIEW=AGE``
replaces a view's rule by an age limit. A bad ``--max-age`` is one line and exit 2, before anything is opened.
"""

from __future__ import annotations

import argparse

from ingestion.errors import ConfigError

HELP = "check vendors, Redis, the Feast registry and feature freshness; non-zero exit with reasons when unhealthy"

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_age(text: str) -> tuple[str, float]:
    """``ohlcv_daily=4d`` -> ("ohlcv_daily", 345600.0); the view and the sign are checked by
    :func:`~ingestion.ops.freshness_rules.rule_with_limit`."""
    view, sep, amount = text.partition("=")
    amount = amount.strip()
    if not sep or not view.strip() or not amount or amount[-1] not in _UNITS:
        raise ConfigError(f"--max-age {text!r}: use VIEW=AGE with s, m, h or d, e.g. --max-age ohlcv_daily=4d")
    try:
        return view.strip(), float(amount[:-1]) * _UNITS[amount[-1]]
    except ValueError:
        raise ConfigError(f"--max-age {text!r}: the age must be a number, e.g. 4d") from None


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--symbols", default="AAPL,MSFT,SPY", help="symbols whose online values are checked")
    parser.add_argument(
        "--max-age",
        action="append",
        default=[],
        metavar="VIEW=AGE",
        help="an age limit replacing a view's rule, with s, m, h or d, e.g. realtime_quotes=2m (repeatable; by "
        "default daily views must hold the last closed session, quotes be at most 2 min old while the market is open)",
    )
    parser.add_argument("--no-vendors", action="store_true", help="skip the vendor reachability checks")
    parser.add_argument(
        "--skew", action="store_true", help="also compare the symbols' online values with offline ones (`skew`)"
    )


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.jobs.args import parse_symbols
    from ingestion.ops.freshness_rules import default_rules, rule_with_limit
    from ingestion.ops.health import run_health

    rules = default_rules()
    rules.update((view, rule_with_limit(view, seconds)) for view, seconds in map(parse_age, args.max_age))
    report = run_health(settings(), parse_symbols(args.symbols), rules, vendors=not args.no_vendors, skew=args.skew)
    print(report.text())
    return 0 if report.ok else 1
