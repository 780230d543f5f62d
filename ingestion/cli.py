"""Command line: ``python -m ingestion <command>`` (also the ``ingestion`` console script).

Each command reads its settings from the environment when it runs. With no vendor keys set, the commands use the
built-in simulators and say so; with no ``REDIS_URL``, they start an embedded Redis for the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ingestion.config import settings
from ingestion.errors import ConfigError, IngestionError

log = logging.getLogger("ingestion")

Command = Callable[[argparse.Namespace], int]


def _cmd_apply(args: argparse.Namespace) -> int:
    from ingestion.store.feast_repo import feast_cli
    from ingestion.store.redis_server import redis_url_or_embedded

    s = settings()
    with redis_url_or_embedded(s.redis_url) as url:
        result = feast_cli(s, url, args.feast_command, capture=False)
    return result.returncode


def _cmd_demo(args: argparse.Namespace) -> int:
    from ingestion.demo import run_demo

    return run_demo(settings(), out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestion", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole chain on the simulators and an embedded Redis (no keys needed)")
    demo.set_defaults(func=_cmd_demo)

    for name, text in (("apply", "register the feature repo (feast apply)"), ("plan", "show what apply would change")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=_cmd_apply, feast_command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Feast logs every registry refresh at INFO; keep its chatter out of the command's output.
    logging.getLogger("feast").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except IngestionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
