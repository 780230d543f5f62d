"""``ingestion.shutdown``: SIGTERM and SIGINT become one interrupt in the main thread (the exit code names the signal),
a second signal does not cut the cleanup short, and a graceful stop replaces the interrupt where a command has one.
The signals are real, sent to this process."""

from __future__ import annotations

import signal
import threading

import pytest

from ingestion.shutdown import Interrupted, interrupt_on_signals, on_signals, stop_requested


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_interrupts_the_main_thread_once(sig: signal.Signals, code: int) -> None:
    before = signal.getsignal(sig)
    cleaned_up = False
    requested = []
    with pytest.raises(Interrupted) as info, interrupt_on_signals():
        try:
            signal.raise_signal(sig)  # the handler has run when this returns
        finally:
            requested.append(stop_requested())  # what worker threads poll
            signal.raise_signal(sig)  # a second signal during the cleanup raises nothing
            cleaned_up = True
    assert cleaned_up and info.value.exit_code == code and str(info.value) == sig.name
    assert requested == [True] and not stop_requested()  # it belonged to that block
    assert signal.getsignal(sig) is before


def test_a_graceful_stop_replaces_the_interrupt_and_the_handlers_come_back() -> None:
    stops: list[int] = []
    with interrupt_on_signals():
        with on_signals(stops.append):
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
        assert stops == [signal.SIGTERM, signal.SIGINT] and stop_requested()
        with pytest.raises(Interrupted):  # the outer interrupt is back in place
            signal.raise_signal(signal.SIGTERM)


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    seen: list[object] = []

    def worker() -> None:
        with on_signals(seen.append):
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
