"""``compact``: merge each month's small Parquet part files into one, de-duplicated on the dataset key."""

from __future__ import annotations

import argparse

from ingestion.jobs.args import whole_number

HELP = "merge small offline part files per month without changing a row (duplicates by key removed)"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--datasets", default="", help="comma-separated datasets (default: all)")
    parser.add_argument("--months", default="", help="comma-separated YYYY-MM partitions (default: all)")
    parser.add_argument(
        "--purge-after",
        type=whole_number("minutes", minimum=0),
        default=60,
        help="on s3:// only: delete the files a compaction replaced this many minutes after it (default 60)",
    )


def run(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from ingestion import datasets
    from ingestion.config import settings
    from ingestion.errors import ConfigError
    from ingestion.store.compact import compact

    names = [d.strip() for d in args.datasets.split(",") if d.strip()] or list(datasets.DATASETS)
    for name in names:
        if name not in datasets.DATASETS:
            raise ConfigError(f"--datasets {name!r} is unknown: choose from {', '.join(datasets.DATASETS)}")
    months = [m.strip() for m in args.months.split(",") if m.strip()] or None
    root = settings().offline_root
    for name in names:
        r = compact(root, name, only=months, purge_after=timedelta(minutes=args.purge_after))
        print(
            f"{name}: {r.partitions_compacted} months compacted, files {r.files_before} -> {r.files_after}, "
            f"rows {r.rows_before} -> {r.rows_after} ({r.duplicates_removed} duplicates removed)"
            + (f", {r.purged} replaced objects purged" if r.purged else "")
        )
    return 0
