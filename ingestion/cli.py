"""Command line: ``python -m ingestion <command>`` (also the ``ingestion`` console script).

Each command lives in its own module, which exposes ``HELP`` (one line, or ``HELPS`` per name),
``add_arguments(parser, name)`` and ``run(args) -> int``. Modules are imported only to build the parser, so they
keep heavy imports (Feast, pandas) inside ``run``. Every command reads its settings from the environment when it
runs: with no vendor keys it uses the built-in simulators, with no ``REDIS_URL`` it starts an embedded Redis.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from ingestion.errors import ConfigError, IngestionError

log = logging.getLogger("ingestion")

# Command name -> module implementing it. Modules not written yet are skipped, so the CLI never breaks on them.
COMMANDS: dict[str, str] = {
    "demo": "ingestion.commands.demo",
    "apply": "ingestion.commands.feast_cmd",
    "plan": "ingestion.commands.feast_cmd",
    "serve": "ingestion.commands.serve",
    "simulate": "ingestion.simulators.cli",
    "backfill": "ingestion.jobs.cli",
    "materialize": "ingestion.jobs.materialize_cli",
    "compact": "ingestion.jobs.compact_cli",
    "stream": "ingestion.stream.cli",
    "health": "ingestion.ops.health_cli",
    "bench": "ingestion.bench.cli",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line that says where the help is (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `python -m {self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ingestion", description="Market-data ingestion for Feast.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--log-json", action="store_true", help="log as JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        helps = getattr(module, "HELPS", {})
        p = sub.add_parser(name, help=helps.get(name, module.HELP), description=helps.get(name, module.HELP))
        module.add_arguments(p, name)
        p.set_defaults(func=module.run, command=name)
    return parser


def configure_logging(verbose: bool, as_json: bool = False) -> None:
    # Through ops.logs, so every handler carries the redaction filter: with -v, libraries log at DEBUG what they send
    # (the websockets client logs the auth frame, key included).
    from ingestion.ops.logs import configure

    configure(verbose, as_json)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_json)
    try:
        result: int = args.func(args)
        return result
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
