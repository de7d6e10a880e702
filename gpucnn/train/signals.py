"""Ctrl-C and SIGTERM (what a batch scheduler sends before killing) stop training after the
current iteration, with a checkpoint; a second one interrupts at once.  Either way the
:class:`TrainingInterrupted` raised says which checkpoint to resume and carries the signal."""
from __future__ import annotations

import contextlib
import signal
import threading

# Each signal with what a second one does (and what it is reset to when no Python handler was
# installed before).
STOP_SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


@contextlib.contextmanager
def stop_signals(request_stop):
    """Inside the block the first Ctrl-C or SIGTERM calls ``request_stop(signum)`` (so the
    interruption can exit as the signal asks: 130, 143) and puts the signal's default back; the
    previous handlers return after it.  Only the main thread can handle signals: elsewhere
    nothing changes."""
    previous = {}

    def handler(signum, frame):
        request_stop(signum)
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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the signal ``signum``) stopped training; ``checkpoint`` is where the state of
    completed update ``iteration`` was saved (None when nothing was)."""

    def __init__(self, message: str, checkpoint: str | None, iteration: int,
                 signum: int = signal.SIGINT):
        super().__init__(message)
        self.checkpoint, self.iteration, self.signum = checkpoint, iteration, signum


def interrupted(where: str | None, epoch: int, iteration: int, signum: int):
    """The stop a signal asked for, after update ``iteration`` of epoch ``epoch`` (0-based),
    with the checkpoint just written at ``where`` (None: no checkpoint_dir)."""
    done = f"epoch {epoch + 1}, iteration {iteration}"
    if where is None:
        msg = (f"training interrupted at {done}; no checkpoint_dir was given, so nothing was "
               f"saved (calling train() again on this Trainer continues)")
    else:
        msg = (f"training interrupted at {done}; checkpoint written to {where}. Resume with "
               f"Trainer.from_checkpoint({where!r}, model, data).train()")
    return TrainingInterrupted(msg, where, iteration, signum)


def stopped_at_once(saved: tuple | None, iteration: int, signum: int):
    """A second Ctrl-C stopped a step midway: resume the last checkpoint written, ``saved``
    (path, iteration) (a write it interrupted left the previous file whole)."""
    path, at = saved or (None, iteration)
    how = f"; resume with Trainer.from_checkpoint({path!r}, model, data)" if path else ""
    return TrainingInterrupted(f"training stopped at once by an interrupt; last checkpoint: "
                               f"{path} (after iteration {at}){how}", path, at, signum)
