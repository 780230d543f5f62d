"""Command line: ``python -m ingestion <command>`` (also the ``ingestion`` console script).

Each command lives in ``ingestion/commands/<name>.py``, which exposes ``HELP`` (one line, or ``HELPS`` per name),
``add_arguments(parser, name)`` and ``run(args) -> int``. Modules are imported only to build the parser, so they
keep heavy imports (Feast, pandas) inside ``run``. Every command reads its settings from the environment when it
runs: with no vendor keys it uses the built-in simulators, with no ``REDIS_URL`` it starts an embedded Redis.

Every command runs under :func:`ingestion.shutdown.interrupt_on_signals`: SIGTERM stops it as Ctrl-C does, its
cleanups run (child processes stopped, files closed) and the exit code is 143 (130 for Ctrl-C). Mistakes end in one
line on stderr, never a traceback: usage errors (bad numbers and ports are argparse types, see
:mod:`ingestion.jobs.args`) and :class:`~ingestion.errors.ConfigError` exit 2, other ingestion errors exit 1, and a
malformed ``REDIS_URL`` is refused before any command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from ingestion.errors import ConfigError, IngestionError
from ingestion.shutdown import Interrupted, interrupt_on_signals

log = logging.getLogger("ingestion")

# Every command is the module ``ingestion.commands.<name>``; ``plan`` shares ``apply``'s module (the same Feast call).
COMMANDS: tuple[str, ...] = (
    "demo", "apply", "plan", "serve", "simulate", "backfill", "materialize", "compact", "stream", "health", "bench",
    "quarantine", "skew",
)  # fmt: skip
_SHARED = {"plan": "apply"}


def command_module(name: str) -> str:
    """The module implementing command ``name``."""
    return f"ingestion.commands.{_SHARED.get(name, name)}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line that says where the help is (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `python -m {self.prog} --help`)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, except where there is none to show (None, False, an empty value) or
    the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS or default in ("", [])
        if nothing or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def version_text() -> str:
    """``ingestion <ours> (feast <theirs>)``, read from the installed distributions (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"feast-market-data {of('feast-market-data')} (feast {of('feast')})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ingestion", description="Market-data ingestion for Feast.", formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--log-json", action="store_true", help="log as JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(command_module(name))
        helps = getattr(module, "HELPS", {})
        text = helps.get(name, module.HELP)
        p = sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)
        module.add_arguments(p, name)
        p.set_defaults(func=module.run, command=name)
    return parser


def configure_logging(verbose: bool, as_json: bool = False) -> None:
    # Through ops.logs, so every handler carries the redaction filter: with -v, libraries log at DEBUG what they send
    # (the websockets client logs the auth frame, key included).
    from ingestion.ops.logs import configure

    configure(verbose, as_json)


def check_environment() -> None:
    """Settings every command shares, checked before any command runs: a malformed ``REDIS_URL`` (an ``http://``
    one, say) is one line here instead of a traceback from whichever module parses it first."""
    from ingestion.config import settings
    from ingestion.store.redis_conn import parse_redis_url

    url = settings().redis_url
    if url:
        try:
            parse_redis_url(url)
        except ValueError as exc:  # its text names the accepted forms, never the URL (it may hold a password)
            raise ConfigError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_json)
    try:
        with interrupt_on_signals():
            check_environment()
            result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except IngestionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"stopped by {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
