"""Keep the garbage collector's full passes off a stream process's hot loop.

A stream process holds a large, long-lived heap from its start (Feast and pandas imports, the registry, the exchange
calendar) and allocates many short-lived objects per tick (decoded events, rows). CPython's full collection
(generation 2) runs now and then on that allocation rate and walks the whole heap: measured in a bridge consumer
process, one pass took 124-139 ms during a 2 s run at 100k ticks/s, which delays every tick queued behind it and was
most of the p99 (buffer + 2 consumers: p99 346 ms with it, 167-174 ms without). ``gc.freeze()`` moves every object
alive at that moment to a permanent generation the collector no longer walks; objects made later are collected as
before, so reference cycles created by the loop are still reclaimed.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def freeze_startup_heap() -> None:
    """Collect once, then take everything still alive out of later full collections (call after setup, before the
    loop: what is frozen is never freed, so freeze long-lived state only)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The heap frozen for the ``with`` block only (a benchmark's timed run inside a process that goes on)."""
    freeze_startup_heap()
    try:
        yield
    finally:
        gc.unfreeze()


__all__ = ["freeze_startup_heap", "frozen_heap"]
