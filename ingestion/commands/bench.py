"""``python -m ingestion bench [--quick] [--only NAMES]``: every benchmark side by side with its baselines
(:mod:`ingestion.bench.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run every benchmark side by side with its baselines; write JSON and a Markdown table"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (what CI runs)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", default="bench-results", help="directory for results.json and results.md")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per benchmark")


def run(args: argparse.Namespace) -> int:
    from ingestion.bench.runner import BENCHMARKS, run_all

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    return run_all(names, bool(args.quick), args.timeout, Path(args.out))
