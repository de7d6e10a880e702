"""Ctrl-C and SIGTERM (what a batch scheduler sends before killing) stop training after the
current iteration, with a checkpoint; a second one interrupts at once."""
from __future__ import annotations

import contextlib
import signal
import threading

# Each signal with what a second one does (and what it is reset to when no Python handler was
# installed before).
STOP_SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


@contextlib.contextmanager
def stop_signals(request_stop):
    """Inside the block the first Ctrl-C or SIGTERM calls ``request_stop()`` and puts the
    signal's default back; the previous handlers return after it.  Only the main thread can
    handle signals: elsewhere nothing changes."""
    previous = {}

    def handler(signum, frame):
        request_stop()
        signal.signal(signum, STOP_SIGNALS[signum])

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, STOP_SIGNALS[sig] if old is None else old)
