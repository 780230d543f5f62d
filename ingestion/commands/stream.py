"""``python -m ingestion stream --symbols AAPL,MSFT`` (or ``'*'``): run the stream bridge.

The running itself is :mod:`ingestion.stream.runner` (shared with the demo and the quickstart notebook).

With no ``POLYGON_API_KEY`` it replays a simulated session; with no ``REDIS_URL`` it starts an embedded Redis.
``--seconds N`` stops after N seconds; otherwise Ctrl-C (or SIGTERM) stops it cleanly, flushing every batch.
``--flow`` also runs the Unusual Whales flow collector (:mod:`ingestion.stream.flow`) beside the WebSocket stream,
under the same signals, metrics and ``/health``; a SIGTERM lands its last batch before the command ends.
``--metrics-port`` and ``--health-port`` are bound before anything starts, so a port in use is a one-line error;
``/health`` answers 503 ("not running") until the bridge runs (see :class:`~ingestion.stream.runner.StreamHealth`).
``--buffer redis`` goes through the durable tick buffer; ``--role reader|bridge`` splits the reader and the bridge
consumers into processes (:mod:`ingestion.stream.buffered`).
"""

from __future__ import annotations

import argparse
import sys

from ingestion.errors import ConfigError
from ingestion.jobs.args import listening, parse_date, port, whole_number

HELP = "stream Polygon trades and quotes into the online (Redis) and offline (Parquet) stores"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--symbols", default="AAPL,MSFT", help="comma-separated symbols, or '*' for all")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: run)")
    parser.add_argument(
        "--flush-ms", type=whole_number("milliseconds"), default=100, help="online micro-batch interval (default 100)"
    )
    parser.add_argument("--offline-interval", type=float, default=2.0, help="seconds between offline part files")
    parser.add_argument(
        "--online", choices=("fast", "feast-push"), default="fast", help="online writer: fast (default) or feast-push"
    )
    parser.add_argument("--no-offline", action="store_true", help="online only: no Parquet, no REST refill")
    parser.add_argument("--sim-rate", type=float, default=5_000.0, help="simulator replay rate, events/s")
    parser.add_argument("--sim-day", default=None, help="simulator session to replay, YYYY-MM-DD (default: the latest)")
    parser.add_argument("--metrics-port", type=port(), default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--health-port", type=port(), default=None, help="serve GET /health on this port")
    parser.add_argument(
        "--flow",
        action="store_true",
        help="also collect Unusual Whales flow alerts (flow_alerts, options_flow_intraday) beside the stream",
    )
    parser.add_argument(
        "--flow-interval", type=positive_seconds, default=5.0, help="seconds between flow-alert polls (default 5)"
    )
    buffer = parser.add_argument_group("durable tick buffer (Redis Streams; see ingestion.stream.buffered)")
    buffer.add_argument(
        "--buffer", choices=("none", "redis"), default="none", help="redis: reader -> Redis Streams -> bridge consumers"
    )
    buffer.add_argument(
        "--role",
        choices=("all", "reader", "bridge"),
        default="all",
        help="with --buffer redis: all (one process, default), reader (WebSocket -> buffer) or bridge (a consumer)",
    )
    buffer.add_argument("--consumer", default=None, help="the bridge consumer's name (stable across restarts)")
    buffer.add_argument("--buffer-name", default="ticks", help="key prefix of the buffer (default ticks)")
    buffer.add_argument(
        "--buffer-partitions", type=whole_number("partitions"), default=8, help="fixed per buffer (default 8)"
    )
    buffer.add_argument(
        "--lease-ms",
        type=whole_number("milliseconds"),
        default=5_000,
        help="a dead consumer's partitions move to the others after this long (default 5000)",
    )


def positive_seconds(text: str) -> float:
    """A poll interval: a positive number of seconds (the vendor allows 120 requests a minute: keep it >= 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of seconds")
    return value


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.stream.runner import BufferOptions, StreamHealth, StreamOptions, parse_symbols, run_stream

    if args.buffer == "none" and (args.role != "all" or args.consumer is not None):
        raise ConfigError("--role and --consumer need --buffer redis")
    buffer = None
    if args.buffer == "redis":
        buffer = BufferOptions(
            role=args.role,
            consumer=args.consumer,
            name=args.buffer_name,
            partitions=args.buffer_partitions,
            lease_ms=args.lease_ms,
        )
    opts = StreamOptions(
        symbols=parse_symbols(args.symbols),
        seconds=args.seconds,
        flush_ms=args.flush_ms,
        offline_interval_s=args.offline_interval,
        online=args.online,
        offline=not args.no_offline,
        sim_rate=args.sim_rate,
        sim_day=None if args.sim_day is None else parse_date(args.sim_day, "--sim-day").isoformat(),
        flow=args.flow,
        flow_interval_s=args.flow_interval,
        buffer=buffer,
        freeze_heap=True,  # this process only streams (ingestion.stream.heap)
    )
    if args.metrics_port is not None:
        from ingestion.ops.metrics import serve_metrics

        listening("--metrics-port", args.metrics_port, lambda: serve_metrics(args.metrics_port))
    health: StreamHealth | None = None
    if args.health_port is not None:
        from ingestion.ops.health import serve_health

        health = StreamHealth(opts.symbols)
        report = health.report
        listening("--health-port", args.health_port, lambda: serve_health(report, args.health_port))
    return run_stream(settings(), opts, sys.stdout, health=health)
