"""``compact``: merge each month's small Parquet part files into one, de-duplicated on the dataset key."""

from __future__ import annotations

import argparse

HELP = "merge small offline part files per month without changing a row (duplicates by key removed)"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--datasets", default="", help="comma-separated datasets (default: all)")
    parser.add_argument("--months", default="", help="comma-separated YYYY-MM partitions (default: all)")


def run(args: argparse.Namespace) -> int:
    from ingestion import datasets
    from ingestion.config import settings
    from ingestion.errors import ConfigError
    from ingestion.store.compact import compact

    names = [d.strip() for d in args.datasets.split(",") if d.strip()] or list(datasets.DATASETS)
    for name in names:
        if name not in datasets.DATASETS:
            raise ConfigError(f"--datasets {name!r} is unknown: choose from {', '.join(datasets.DATASETS)}")
    months = [m.strip() for m in args.months.split(",") if m.strip()] or None
    s = settings()
    if s.store_url:
        # Merging on object storage needs a manifest that retires the merged files (ingestion.store.offline_objects).
        raise ConfigError(f"compact works on a local data dir only; FEAST_DATA_DIR is {s.store_url}")
    data_dir = s.data_dir
    for name in names:
        r = compact(data_dir, name, only=months)
        print(
            f"{name}: {r.partitions_compacted} months compacted, files {r.files_before} -> {r.files_after}, "
            f"rows {r.rows_before} -> {r.rows_after} ({r.duplicates_removed} duplicates removed)"
        )
    return 0
