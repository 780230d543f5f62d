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
    """Feast's CLI in a child (:func:`ingestion.store.feast_repo.feast_cli`); this process only waits for it, so it
    imports nothing heavy: its start-up is part of what a team's CI pays for every ``apply``."""
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_cli

    s = settings()
    if s.redis_url:
        # CI's case: Redis is configured, so there is no embedded server to start, and redis-py (a quarter of a
        # second of import) stays out of this process. Nothing here logs the URL; the child has it in its env.
        return feast_cli(s, s.redis_url, args.feast_command, capture=False).returncode
    from ingestion.store.redis_server import redis_url_or_embedded

    with redis_url_or_embedded(None) as url:
        return feast_cli(s, url, args.feast_command, capture=False).returncode
