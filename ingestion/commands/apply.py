"""``apply`` and ``plan``: the real Feast CLI on the feature repo, with the configured Redis and data dir."""

from __future__ import annotations

import argparse

HELP = "run feast apply / plan on the feature repo"
HELPS = {
    "apply": "register the feature repo with Feast (feast apply)",
    "plan": "show what feast apply would change (feast plan)",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.set_defaults(feast_command=name)


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_cli
    from ingestion.store.redis_server import redis_url_or_embedded

    s = settings()
    with redis_url_or_embedded(s.redis_url) as url:
        result = feast_cli(s, url, args.feast_command, capture=False)
    return result.returncode
