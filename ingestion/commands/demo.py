"""``python -m ingestion demo``: the whole chain on a laptop with nothing configured.

With no vendor keys it runs against the built-in simulators; with no ``REDIS_URL`` it starts an embedded Redis.
Each step prints what it did, so the demo doubles as a smoke test of a fresh install.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ingestion.config import Settings, settings
from ingestion.errors import IngestionError

HELP = "run the whole chain on the simulators and an embedded Redis (no keys needed)"

DEMO_SYMBOLS = ("AAPL", "MSFT", "NVDA")


def run_demo(s: Settings, out: TextIO) -> int:
    from ingestion.store.feast_repo import feast_cli, open_store
    from ingestion.store.redis_server import redis_url_or_embedded

    if not s.has_vendor_keys:
        out.write("No vendor keys set (POLYGON_API_KEY, UW_API_TOKEN): using the built-in simulators.\n")
    with redis_url_or_embedded(s.redis_url) as redis_url:
        out.write(f"Redis: {'REDIS_URL' if s.redis_url else 'embedded server on ' + redis_url.rsplit('/', 1)[0]}\n")
        out.write(f"Data dir: {s.data_dir}\n")
        applied = feast_cli(s, redis_url, "apply")
        if applied.returncode != 0:
            raise IngestionError(f"feast apply failed:\n{applied.stdout}\n{applied.stderr}")
        out.write("feast apply: ok\n")
        store = open_store(s, redis_url)
        views = sorted(v.name for v in store.list_feature_views())
        services = sorted(fs.name for fs in store.list_feature_services())
        out.write(f"Feature views: {', '.join(views)}\nFeature services: {', '.join(services)}\n")
        for name in services:
            service = store.get_feature_service(name)
            frame = store.get_online_features(
                features=service, entity_rows=[{"symbol": sym} for sym in DEMO_SYMBOLS]
            ).to_df()
            present = int(frame.drop(columns=["symbol"]).notna().sum().sum())
            width = frame.shape[1] - 1
            out.write(f"Online {name}: {width} features x {len(frame)} symbols, {present} values present\n")
    return 0


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del parser, name  # no options yet


def run(args: argparse.Namespace) -> int:
    return run_demo(settings(), out=sys.stdout)
