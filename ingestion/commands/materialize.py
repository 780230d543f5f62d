"""``materialize``: the latest offline row per symbol of each feature view into Redis, in Feast's bytes.

What ``feast materialize`` does, through the fast online writer (one pipeline per chunk of keys instead of a
registry lookup and a type check per row). It reads the Parquet files and writes Redis, and needs nothing else: no
vendor simulator is started (``runtime(..., vendors=False)``).
"""

from __future__ import annotations

import argparse

HELP = "write the latest offline values of each feature view to the online store (Redis)"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--views", default="", help="comma-separated views (default: every feature view)")


def run(args: argparse.Namespace) -> int:
    from ingestion import datasets
    from ingestion.config import settings
    from ingestion.errors import ConfigError
    from ingestion.runtime import runtime
    from ingestion.store.feast_repo import open_store
    from ingestion.store.online import materialize_latest

    names = [v.strip() for v in args.views.split(",") if v.strip()] or [d.name for d in datasets.FEATURE_DATASETS]
    unknown = [n for n in names if n not in datasets.DATASETS or not datasets.DATASETS[n].is_feature_view]
    if unknown:
        known = ", ".join(d.name for d in datasets.FEATURE_DATASETS)
        raise ConfigError(f"--views {unknown[0]!r} is not a feature view: choose from {known}")
    with runtime(settings(), vendors=False) as rt:
        store = open_store(rt.settings, rt.redis_url)
        for name in names:
            result = materialize_latest(store, name, rt.settings.offline_root)
            print(f"{name}: {result.keys} keys, {result.written} written, {result.keys_per_second:,.0f} keys/s")
    return 0
