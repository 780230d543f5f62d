"""``python -m ingestion simulate``: run the vendor simulators on loopback until interrupted.

It prints ``POLYGON_BASE_URL=...``, ``POLYGON_WS_URL=...`` and ``UW_BASE_URL=...`` lines (flushed at once) that the
other commands, or a parent process, read; SIGINT and SIGTERM stop it cleanly with exit code 0
(:func:`ingestion.shutdown.on_signals`). A port given and in use is a one-line error. ``--as-of YYYY-MM-DD`` sets
the market clock: only sessions up to that date, and corporate actions announced by then, exist. ``--universe-size N``
lists N tickers: the real ones, then synthetic daily-only ones (:mod:`ingestion.simulators.universe`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from functools import partial

from ingestion.errors import ConfigError
from ingestion.jobs.args import check_port_free, listening, parse_date, port, whole_number
from ingestion.shutdown import on_signals

HELP = "run the Polygon and Unusual Whales simulators on loopback and print their URLs"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    any_port = port(any_free=True)
    parser.add_argument("--polygon-port", type=any_port, default=0, help="Polygon REST port (0 = any free port)")
    parser.add_argument("--ws-port", type=any_port, default=0, help="Polygon WebSocket port (0 = any free port)")
    parser.add_argument("--uw-port", type=any_port, default=0, help="Unusual Whales port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated market")
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="YYYY-MM-DD",
        help="market clock: serve only sessions and corporate actions known up to this date (default: no clock)",
    )
    parser.add_argument(
        "--universe-size",
        type=whole_number("tickers"),
        default=None,
        help="list this many tickers: the real ones, then synthetic daily-only ones (default: the real ones only)",
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="WebSocket replay rate, events per second (0 = as fast as possible)"
    )


def run(args: argparse.Namespace) -> int:
    from ingestion.simulators.market import Market
    from ingestion.simulators.polygon_ws import Replay
    from ingestion.simulators.stack import SimulatorStack

    for flag, number in (
        ("--polygon-port", args.polygon_port),
        ("--ws-port", args.ws_port),
        ("--uw-port", args.uw_port),
    ):
        if number:
            listening(flag, number, partial(check_port_free, "127.0.0.1", number))
    as_of = parse_date(args.as_of, "--as-of") if args.as_of else None
    stop = threading.Event()
    replay = Replay(rate=args.rate or None)
    stack = SimulatorStack(
        Market(seed=args.seed, as_of=as_of, universe_size=_universe_size(args.universe_size)),
        polygon_port=args.polygon_port,
        ws_port=args.ws_port,
        uw_port=args.uw_port,
        replay=replay,
        record_ws=False,  # serving for hours: keep no per-event ground-truth log
    )
    with on_signals(lambda _signum: stop.set()), stack:
        env = stack.env()
        for name in ("POLYGON_BASE_URL", "POLYGON_WS_URL", "UW_BASE_URL"):
            if name in env:
                print(f"{name}={env[name]}")
        if "UW_BASE_URL" not in env:
            print("# Unusual Whales simulator not available in this build", file=sys.stderr)
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0


def _universe_size(size: int | None) -> int | None:
    """``--universe-size``: at least the real tickers (a smaller universe would drop real ones)."""
    from ingestion.simulators.market import DEFAULT_SYMBOLS

    if size is not None and size < len(DEFAULT_SYMBOLS):
        real = len(DEFAULT_SYMBOLS)
        raise ConfigError(f"--universe-size {size} is below the {real} real tickers: use {real} or more")
    return size
