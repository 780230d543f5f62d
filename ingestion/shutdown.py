"""How a command stops on SIGTERM or Ctrl-C: both unwind the program like Python's Ctrl-C, so every ``with`` block
and ``finally`` runs.

Python's default action for SIGTERM ends the process on the spot, skipping every cleanup: the children a command
started (the embedded redis-server, gunicorn and its workers) were left running. :func:`interrupt_on_signals`, which
the command line installs around every command, turns SIGTERM and SIGINT into :class:`Interrupted` (a
``KeyboardInterrupt``) raised in the main thread, and the process then exits with ``128 + signal number`` (143 for
SIGTERM, 130 for SIGINT), as a shell reports a process ended by that signal.

Only the main thread can be interrupted. Worker threads (a backfill's symbols) ask :func:`stop_requested` before each
unit of work: the unit under way completes and lands (so coverage stays exact) and no new one starts, instead of the
thread pool running every queued symbol to the end before the process may exit.

Commands with a graceful stop of their own (the stream flushes every batch, the simulators close their servers) use
:func:`on_signals` with their stop function instead, and end normally.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final

SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

_requested = threading.Event()
_depth = 0  # nesting of on_signals blocks; touched by the main thread only


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: raised in the main thread so that the program unwinds."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """``128 + signum``: what a shell reports for a process ended by the signal (143 SIGTERM, 130 SIGINT)."""
        return 128 + self.signum


def stop_requested() -> bool:
    """True once SIGTERM or SIGINT has arrived, until the outermost :func:`on_signals` block ends (for worker
    threads to poll)."""
    return _requested.is_set()


@contextlib.contextmanager
def on_signals(stop: Callable[[int], object]) -> Iterator[None]:
    """Call ``stop(signum)`` on SIGINT and SIGTERM while the block runs; the previous handlers come back after.

    It runs in the main thread, between two bytecodes of whatever the main thread is doing. Elsewhere than the main
    thread (where Python cannot install handlers) the block runs without any.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        _requested.set()
        stop(signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for sig, old in previous.items():
            signal.signal(sig, old)
        if _depth == 0:
            # The request belonged to this command; what runs next in the process (tests run many) starts afresh.
            # The worker threads that polled it were joined inside the block.
            _requested.clear()


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Raise :class:`Interrupted` in the main thread on the first SIGINT or SIGTERM while the block runs.

    Later signals are noted but raise nothing: the cleanup the first one started (stopping child processes, closing
    files) must not itself be cut short. SIGKILL still ends a process whose cleanup hangs.
    """
    raised = False

    def interrupt(signum: int) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Interrupted(signum)

    with on_signals(interrupt):
        yield
