"""``python -m ingestion stream --buffer redis [--role all|reader|bridge] [--consumer NAME]``: the stream through the
durable tick buffer (:mod:`ingestion.stream.buffer`).

* ``--role all`` (default): the reader and one consumer in this process, through Redis; at the end (``--seconds``,
  Ctrl-C, SIGTERM) the reader stops first, the consumer drains what is left, closes the last minute and refills the
  pending windows, as the in-process bridge does.
* ``--role reader``: WebSocket -> buffer only. One per API key (the vendor allows one connection per key).
* ``--role bridge --consumer NAME``: buffer -> online and offline stores. Run as many as needed; they share the
  partitions. A SIGTERM commits and hands the partitions over; ``kill -9`` leaves them pending for the next owner
  (this NAME restarted takes them back at once; another consumer after ``--lease-ms``).

Separate roles need one Redis for every process: ``REDIS_URL`` must be set (an embedded server lives and dies with
its process).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from ingestion.errors import ConfigError
from ingestion.shutdown import on_signals
from ingestion.stream.heap import freeze_startup_heap

if TYPE_CHECKING:
    from ingestion.runtime import Runtime
    from ingestion.stream.buffer import TickBuffer
    from ingestion.stream.consumer import BufferConsumer
    from ingestion.stream.reader import BufferReader
    from ingestion.stream.runner import BufferOptions, StreamOptions


def stream_buffered(rt: Runtime, opts: StreamOptions, buf: BufferOptions, out: TextIO) -> int:
    """Run this process's role (see the module docstring)."""
    from ingestion.config import settings
    from ingestion.store.redis_conn import connect
    from ingestion.stream.buffer import TickBuffer

    # The runtime always has a Redis; only a configured REDIS_URL is one other processes can reach.
    if buf.role != "all" and not settings().redis_url:
        raise ConfigError(f"--role {buf.role} needs REDIS_URL: every process of the stream must share one Redis")
    buffer = TickBuffer(connect(rt.redis_url), buf.name, buf.partitions)
    buffer.setup()
    duration = "until stopped" if opts.seconds is None else f"{opts.seconds:g} s"
    out.write(f"Buffer {buf.name!r} ({buf.partitions} partitions), role {buf.role} ({duration})\n")
    if buf.role == "reader":
        reader = make_reader(rt, opts, buffer)
        if opts.freeze_heap:
            freeze_startup_heap()
        with on_signals(lambda _signum: reader.stop()):
            stats = reader.run(seconds=opts.seconds)
        out.write(f"Reader: {json.dumps(vars(stats))}\n")
        return 0
    if opts.offline:
        rt.claim_data_dir("polygon")  # its quotes and minute bars land in the data dir
    consumer = make_consumer(rt, opts, buf, buffer)
    if buf.role == "bridge":
        if opts.freeze_heap:
            freeze_startup_heap()
        with on_signals(lambda _signum: consumer.stop()):
            consumer.run(seconds=opts.seconds)
        out.write(f"Consumer: {json.dumps(consumer.summary())}\n")
        return 0
    return _both(rt, opts, buffer, consumer, out)


def _both(rt: Runtime, opts: StreamOptions, buffer: TickBuffer, consumer: BufferConsumer, out: TextIO) -> int:
    reader = make_reader(rt, opts, buffer)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            reader.run()
        except BaseException as exc:  # re-raised on the main thread after the drain
            failure.append(exc)
        finally:
            consumer.stop()

    thread = threading.Thread(target=read, name="stream-reader", daemon=True)
    if opts.freeze_heap:
        freeze_startup_heap()
    with on_signals(lambda _signum: consumer.stop()):
        thread.start()
        try:
            consumer.loop(None if opts.seconds is None else time.monotonic() + opts.seconds)
        finally:
            reader.stop()
            thread.join(60)
            # Everything the reader buffered is consumed; the last minute closes and pending windows are refilled.
            consumer.drain()
    r, c = reader.stats, consumer.summary()
    out.write(
        f"Ticks: {r.trades} trades, {r.quotes} quotes buffered in {r.entries} entries; {r.gaps} gaps; "
        f"duplicates dropped {reader.client.stats.duplicates}\n"
        f"Consumer: {c['entries']} entries, {c['ticks']} ticks committed in {c['commits']} commits; online "
        f"{c['online_rows']} rows; offline {c['offline_quote_rows']} quote rows, {c['offline_bar_rows']} minute bars; "
        f"refills {c['refill_windows']} windows, {c['refill_minutes']} minute bars, {c['refill_errors']} errors\n"
        f"Freshness receive -> online (ms): p50 {c['recv_p50_ms']} p99 {c['recv_p99_ms']}\n"
    )
    if failure:
        raise failure[0]
    return 0


def make_reader(rt: Runtime, opts: StreamOptions, buffer: TickBuffer) -> BufferReader:
    from ingestion.polygon.websocket import PolygonWebSocketClient
    from ingestion.stream.bridge import subscription_topics
    from ingestion.stream.reader import BufferReader

    client = PolygonWebSocketClient(api_key=rt.polygon_key, ws_url=rt.settings.polygon_ws_url)
    client.subscribe(subscription_topics(opts.symbols))
    return BufferReader(client, buffer)


def make_consumer(rt: Runtime, opts: StreamOptions, buf: BufferOptions, buffer: TickBuffer) -> BufferConsumer:
    from ingestion.store.redis_conn import connect
    from ingestion.stream.buffer import TickBuffer
    from ingestion.stream.consumer import BufferConsumer
    from ingestion.stream.runner import build_sinks

    online, offline, refiller = build_sinks(
        rt.settings, rt.redis_url, rt.settings.polygon_base_url, rt.polygon_key, opts
    )
    # Its own connection: in the single-process mode the reader's thread uses the other one.
    own = TickBuffer(connect(rt.redis_url), buffer.name, buffer.partitions)
    kwargs: dict[str, Any] = {"flush_interval_ms": opts.flush_ms, "commit_interval_s": opts.offline_interval_s}
    return BufferConsumer(own, buf.consumer or default_consumer_name(), online, offline, refiller,
                          lease_ms=buf.lease_ms, **kwargs)  # fmt: skip


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique, but a restart gets a new name (pass ``--consumer`` to resume at once)."""
    return f"{socket.gethostname()}-{os.getpid()}"


__all__ = ["default_consumer_name", "make_consumer", "make_reader", "stream_buffered"]
