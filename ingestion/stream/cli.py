"""``python -m ingestion stream --symbols AAPL,MSFT`` (or ``'*'``): run the stream bridge.

With no ``POLYGON_API_KEY`` it starts the simulators in-process (WebSocket replay of a session, REST for refills)
and says so; with a key it connects to ``POLYGON_WS_URL`` / ``POLYGON_BASE_URL``. With no ``REDIS_URL`` it starts an
embedded Redis. The feature repo is applied first when its registry does not exist yet. ``--seconds N`` stops after
N seconds; otherwise Ctrl-C (or SIGTERM) stops it cleanly, flushing every batch.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from ingestion.errors import ConfigError

if TYPE_CHECKING:
    from ingestion.config import Settings
    from ingestion.runtime import Runtime
    from ingestion.stream.bridge import StreamBridge

HELP = "stream Polygon trades and quotes into the online (Redis) and offline (Parquet) stores"


@dataclass
class StreamOptions:
    """What to stream and how. ``seconds`` None = until stopped; ``sim_rate`` is events/s of the simulator replay."""

    symbols: list[str] = field(default_factory=lambda: ["AAPL", "MSFT"])
    seconds: float | None = None
    flush_ms: int = 100
    offline_interval_s: float = 2.0
    online: str = "fast"
    offline: bool = True
    sim_rate: float = 5_000.0
    sim_day: str | None = None
    sim_start_minute: int = 30


def parse_symbols(raw: str) -> list[str]:
    """``"AAPL, msft"`` -> ``["AAPL", "MSFT"]``; ``"*"`` -> ``["*"]`` (every symbol)."""
    from ingestion.jobs.args import parse_symbols as parse

    return parse(raw, allow_all=True)


def sim_replay(opts: StreamOptions) -> Any:
    """The simulator's replay for these options: a past session from ``sim_start_minute``, at ``sim_rate`` events/s."""
    from ingestion.simulators.polygon_ws import Replay

    symbols = None if opts.symbols == ["*"] else tuple(opts.symbols)
    return Replay(day=opts.sim_day, symbols=symbols, start_minute=opts.sim_start_minute, rate=opts.sim_rate)


def build_bridge(
    s: Settings, redis_url: str, ws_url: str, rest_url: str, key: str, opts: StreamOptions
) -> StreamBridge:
    """Client, writers and refiller for these settings (the registry must be applied)."""
    from ingestion.polygon.websocket import PolygonWebSocketClient
    from ingestion.store.feast_repo import open_store
    from ingestion.store.offline import OfflineWriter
    from ingestion.store.online import OnlineWriter
    from ingestion.stream.bridge import FeastPushSink, OnlineSink, StreamBridge, subscription_topics
    from ingestion.stream.refill import Refiller, rest_minute_fetcher

    store = open_store(s, redis_url)
    online: OnlineSink = FeastPushSink(store) if opts.online == "feast-push" else OnlineWriter(store)
    client = PolygonWebSocketClient(api_key=key, ws_url=ws_url)
    client.subscribe(subscription_topics(opts.symbols))
    refiller = None
    offline = None
    if opts.offline:
        from ingestion.polygon.rest import PolygonRESTClient

        offline = OfflineWriter(s.data_dir)
        # No cache: a refill asks for minutes that were in progress a moment ago.
        refiller = Refiller(rest_minute_fetcher(PolygonRESTClient(api_key=key, base_url=rest_url, use_cache=False)))
    return StreamBridge(
        client, online, offline, refiller, flush_interval_ms=opts.flush_ms, offline_interval_s=opts.offline_interval_s
    )


def run_stream(s: Settings, opts: StreamOptions, out: TextIO) -> int:
    """Run the bridge with ``opts`` on the real vendor (with a key) or a replayed simulator session (without)."""
    from ingestion.runtime import runtime

    with runtime(s, replay=sim_replay(opts)) as rt:
        return stream_with(rt, opts, out)


def stream_with(rt: Runtime, opts: StreamOptions, out: TextIO) -> int:
    """Stream on an already resolved runtime (the ``stream`` command, the demo and the quickstart notebook)."""
    unknown = rt.unknown_symbols(opts.symbols)
    if unknown:
        out.write(f"Not in the simulated market (no ticks will come): {', '.join(unknown)}\n")
    bridge = build_bridge(
        rt.settings, rt.redis_url, rt.settings.polygon_ws_url, rt.settings.polygon_base_url, rt.polygon_key, opts
    )
    duration = "until stopped" if opts.seconds is None else f"{opts.seconds:g} s"
    out.write(f"Streaming {', '.join(opts.symbols)} ({duration})\n")
    with _stop_on_signals(bridge):
        stats = bridge.run(seconds=opts.seconds)
    _report(bridge, stats, out)
    return 0


@contextlib.contextmanager
def _stop_on_signals(bridge: StreamBridge) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        bridge.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(bridge: StreamBridge, stats: Any, out: TextIO) -> None:
    c = bridge.client.stats
    agg = bridge.aggregator
    fresh = bridge.freshness()
    out.write(
        f"Ticks: {agg.trades} trades, {agg.quotes} quotes; duplicates dropped {c.duplicates}, "
        f"sequence anomalies {c.sequence_anomalies}, rejected {c.rejected}, late trades {agg.late_trades}\n"
        f"Connection: {c.connections} connection(s), {c.reconnects} reconnect(s), frames dropped {c.frames_dropped}, "
        f"max queue depth {c.max_queue_depth}\n"
        f"Online: {stats.online_rows} rows in {stats.flushes} flushes; offline: {stats.offline_quote_rows} quote rows, "
        f"{stats.offline_bar_rows} minute bars; refills: {stats.refill_windows} windows, {stats.refill_minutes} "
        f"minute bars, {stats.refill_errors} errors\n"
        f"Freshness tick -> online (ms): receive p50 {fresh['recv_p50_ms']} p99 {fresh['recv_p99_ms']}; "
        f"SIP p50 {fresh['sip_p50_ms']} p99 {fresh['sip_p99_ms']}"
        f"{' (replayed session: SIP times are not live)' if stats.ticks_not_live else ''}\n"
    )
    if bridge.last_rows is not None and len(bridge.last_rows):
        cols = ["symbol", "event_timestamp", "last_price", "bid", "ask", "volume_1m", "vwap_1m", "day_volume"]
        out.write(bridge.last_rows.loc[:, cols].to_string(index=False) + "\n")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--symbols", default="AAPL,MSFT", help="comma-separated symbols, or '*' for all")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: run)")
    parser.add_argument("--flush-ms", type=int, default=100, help="online micro-batch interval in ms (default 100)")
    parser.add_argument("--offline-interval", type=float, default=2.0, help="seconds between offline part files")
    parser.add_argument(
        "--online", choices=("fast", "feast-push"), default="fast", help="online writer: fast (default) or feast-push"
    )
    parser.add_argument("--no-offline", action="store_true", help="online only: no Parquet, no REST refill")
    parser.add_argument("--sim-rate", type=float, default=5_000.0, help="simulator replay rate, events/s")
    parser.add_argument("--sim-day", default=None, help="simulator session to replay (default: the latest)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--health-port", type=int, default=None, help="serve GET /health on this port")


def run(args: argparse.Namespace) -> int:
    from ingestion.config import settings

    opts = StreamOptions(
        symbols=parse_symbols(args.symbols),
        seconds=args.seconds,
        flush_ms=args.flush_ms,
        offline_interval_s=args.offline_interval,
        online=args.online,
        offline=not args.no_offline,
        sim_rate=args.sim_rate,
        sim_day=args.sim_day,
    )
    if opts.flush_ms <= 0:
        raise ConfigError("--flush-ms must be a positive number of milliseconds")
    s = settings()
    if args.metrics_port is not None:
        from ingestion.ops.metrics import serve_metrics

        serve_metrics(args.metrics_port)
    if args.health_port is not None:
        from ingestion.ops.health import run_health, serve_health

        symbols = [] if opts.symbols == ["*"] else opts.symbols
        # Quotes of a live stream older than two minutes mean the stream is not flowing.
        serve_health(lambda: run_health(s, symbols, {"realtime_quotes": 120.0}, vendors=False), args.health_port)
    return run_stream(s, opts, sys.stdout)
