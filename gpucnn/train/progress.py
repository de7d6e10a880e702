"""The progress bar of a training epoch: shown where someone watches (a terminal, or a Jupyter
notebook through ``tqdm.auto``'s widget), never in a log file or a pipe."""
from __future__ import annotations

import sys


def interactive() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or this is a notebook kernel."""
    if sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def epoch_bar(wanted: bool, total: int, initial: int, desc: str, leave: bool):
    """A ``tqdm.auto`` bar over an epoch's iterations, or None when not ``wanted`` or nobody
    watches.  ``leave`` keeps it on screen after the epoch (with the epoch's metrics: the
    Python Trainer's default); the command line prints a table row instead."""
    if not (wanted and interactive()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=leave, dynamic_ncols=True)
