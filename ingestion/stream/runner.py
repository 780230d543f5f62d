"""Running the stream bridge: what ``python -m ingestion stream`` (see :mod:`ingestion.commands.stream`), the demo
and the quickstart notebook share.

With no ``POLYGON_API_KEY`` it starts the simulators in-process (WebSocket replay of a session, REST for refills)
and says so; with a key it connects to ``POLYGON_WS_URL`` / ``POLYGON_BASE_URL``. With no ``REDIS_URL`` it starts an
embedded Redis. The feature repo is applied first when its registry does not exist yet. ``--seconds N`` stops after
N seconds; otherwise Ctrl-C (or SIGTERM) stops it cleanly, flushing every batch: while the bridge runs, the signals
ask it to stop (:func:`ingestion.shutdown.on_signals`) instead of interrupting it, and the run ends normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ingestion.shutdown import on_signals
from ingestion.stream.heap import freeze_startup_heap

if TYPE_CHECKING:
    from ingestion.config import Settings
    from ingestion.ops.health import Check, HealthReport
    from ingestion.runtime import Runtime
    from ingestion.store.offline import OfflineWriter
    from ingestion.stream.bridge import OnlineSink, StreamBridge
    from ingestion.stream.flow import FlowFeed
    from ingestion.stream.refill import Refiller

# Quotes of a live stream older than two minutes mean the stream is not flowing.
LIVE_QUOTE_MAX_AGE_S = 120.0


@dataclass
class BufferOptions:
    """``--buffer redis``: which role this process plays, and the buffer's name, partitions and lease."""

    role: str = "all"
    """``all`` (reader and bridge in this process, through the buffer), ``reader`` or ``bridge``."""
    consumer: str | None = None
    name: str = "ticks"
    partitions: int = 8
    lease_ms: int = 5_000


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
    flow: bool = False
    """Also run the Unusual Whales flow collector (:mod:`ingestion.stream.flow`) beside the WebSocket stream."""
    flow_interval_s: float = 5.0
    buffer: BufferOptions | None = None
    """Go through the durable tick buffer (Redis Streams, :mod:`ingestion.stream.buffered`) instead of in-process."""
    freeze_heap: bool = False
    """Take the heap built during setup out of full garbage collections before the loop
    (:func:`~ingestion.stream.heap.freeze_startup_heap`): for a process that only streams (the ``stream`` command),
    not for a caller that goes on (the demo, a notebook, tests), whose frozen objects would never be freed."""


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
    from ingestion.stream.bridge import StreamBridge, subscription_topics

    online, offline, refiller = build_sinks(s, redis_url, rest_url, key, opts)
    client = PolygonWebSocketClient(api_key=key, ws_url=ws_url)
    client.subscribe(subscription_topics(opts.symbols))
    return StreamBridge(
        client, online, offline, refiller, flush_interval_ms=opts.flush_ms, offline_interval_s=opts.offline_interval_s
    )


def build_sinks(
    s: Settings, redis_url: str, rest_url: str, key: str, opts: StreamOptions
) -> tuple[OnlineSink, OfflineWriter | None, Refiller | None]:
    """The online sink, the offline writer and the REST refiller of a bridge (in-process or buffer consumer)."""
    from ingestion.store.feast_repo import open_store
    from ingestion.store.offline import OfflineWriter
    from ingestion.store.online import OnlineWriter
    from ingestion.stream.bridge import FeastPushSink
    from ingestion.stream.refill import Refiller, rest_minute_fetcher

    store = open_store(s, redis_url)
    online: OnlineSink = FeastPushSink(store) if opts.online == "feast-push" else OnlineWriter(store)
    if not opts.offline:
        return online, None, None
    from ingestion.polygon.rest import PolygonRESTClient

    # No cache: a refill asks for minutes that were in progress a moment ago.
    fetcher = rest_minute_fetcher(PolygonRESTClient(api_key=key, base_url=rest_url, use_cache=False))
    return online, OfflineWriter(s.offline_root), Refiller(fetcher)


class StreamHealth:
    """What ``GET /health`` of a running stream reports (:func:`ingestion.ops.health.serve_health` serves it).

    Until the bridge runs (and after it stopped) the one check is "stream: not running". While it runs: Redis and
    the registry, as the stream resolved them (the embedded server's URL, not the unset ``REDIS_URL``), the
    WebSocket connection, and on a live feed the age of the newest quote. A replayed session's quotes carry that
    session's times, so their age says nothing about this stream; the connection check covers it instead.
    """

    def __init__(self, symbols: list[str], max_quote_age_s: float = LIVE_QUOTE_MAX_AGE_S) -> None:
        # '*' has no symbol list to look the newest quote up by: only the connection is checked then.
        self.symbols = [] if symbols == ["*"] else list(symbols)
        self.max_quote_age_s = max_quote_age_s
        self._running: tuple[Runtime, StreamBridge] | None = None
        self._flow: FlowFeed | None = None

    def attach(self, rt: Runtime, bridge: StreamBridge, flow: FlowFeed | None = None) -> None:
        """The bridge (and the flow collector, with ``--flow``) is about to run on ``rt``."""
        self._running = (rt, bridge)
        self._flow = flow

    def detach(self) -> None:
        """The bridge has stopped."""
        self._running = None

    def report(self) -> HealthReport:
        from ingestion.ops.health import Check, HealthReport, run_health

        running = self._running
        if running is None:
            return HealthReport([Check("stream", False, "not running (starting up or stopped)")])
        rt, bridge = running
        live = not rt.simulated_polygon and bool(self.symbols)
        max_age = {"realtime_quotes": self.max_quote_age_s} if live else {}
        report = run_health(rt.settings, self.symbols, max_age, vendors=False)
        report.checks.append(_connection(bridge))
        if self._flow is not None:
            from ingestion.stream.flow import flow_health

            report.checks.append(flow_health(self._flow))
        return report


def _connection(bridge: StreamBridge) -> Check:
    from ingestion.ops.health import Check

    stats = bridge.stats
    if bridge.client.connected:
        return Check("stream", True, f"connected; {stats.online_rows} rows online in {stats.flushes} flushes")
    attempts = bridge.client.stats.connect_attempts
    return Check("stream", False, f"not connected to the WebSocket: reconnecting ({attempts} attempts so far)")


def run_stream(s: Settings, opts: StreamOptions, out: TextIO, *, health: StreamHealth | None = None) -> int:
    """Run the bridge with ``opts`` on the real vendor (with a key) or a replayed simulator session (without);
    ``health`` (served by the caller) follows it."""
    from ingestion.runtime import runtime

    with runtime(s, replay=sim_replay(opts)) as rt:
        return stream_with(rt, opts, out, health=health)


def stream_with(rt: Runtime, opts: StreamOptions, out: TextIO, *, health: StreamHealth | None = None) -> int:
    """Stream on an already resolved runtime (the ``stream`` command, the demo and the quickstart notebook)."""
    if opts.buffer is not None:
        from ingestion.stream.buffered import stream_buffered

        return stream_buffered(rt, opts, opts.buffer, out)
    unknown = rt.unknown_symbols(opts.symbols)
    if unknown:
        out.write(f"Not in the simulated market (no ticks will come): {', '.join(unknown)}\n")
    if opts.offline:
        rt.claim_data_dir("polygon")  # its quotes and minute bars land in the data dir
    bridge = build_bridge(
        rt.settings, rt.redis_url, rt.settings.polygon_ws_url, rt.settings.polygon_base_url, rt.polygon_key, opts
    )
    duration = "until stopped" if opts.seconds is None else f"{opts.seconds:g} s"
    out.write(f"Streaming {', '.join(opts.symbols)} ({duration})\n")
    flow = start_flow(rt, opts, out) if opts.flow else None
    if health is not None:
        health.attach(rt, bridge, flow)
    if opts.freeze_heap:
        freeze_startup_heap()
    try:
        # A signal asks the bridge to stop, and it flushes every batch before run() returns.
        with on_signals(lambda _signum: bridge.stop()):
            stats = bridge.run(seconds=opts.seconds)
    finally:
        if flow is not None:
            flow.stop()  # the last batch is landed and its watermark saved
        if health is not None:
            health.detach()
    _report(bridge, stats, out)
    if flow is not None:
        out.write(flow.report())
    return 0


def start_flow(rt: Runtime, opts: StreamOptions, out: TextIO) -> FlowFeed:
    """The flow collector of ``--flow``, started (its alerts land in the same data dir as the stream's rows)."""
    from ingestion.stream.flow import FlowOptions, flow_feed

    rt.claim_data_dir("uw")
    symbols = None if opts.symbols == ["*"] else list(opts.symbols)
    feed = flow_feed(rt, FlowOptions(interval_s=opts.flow_interval_s, symbols=symbols))
    feed.start()
    out.write(f"Collecting Unusual Whales flow alerts every {opts.flow_interval_s:g} s\n")
    return feed


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
