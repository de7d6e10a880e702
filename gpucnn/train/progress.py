"""The progress bar of a training epoch: shown where someone watches (a terminal, or a Jupyter
notebook through ``tqdm.auto``'s widget), never in a log file or a pipe."""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (whose stderr is no terminal, yet is watched)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def interactive() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or this is a notebook."""
    return sys.stderr.isatty() or in_notebook()


def epoch_bar(wanted: bool, total: int, initial: int, desc: str, leave: bool):
    """A ``tqdm.auto`` bar over an epoch's iterations, or None when not ``wanted`` or nobody
    watches.  ``leave`` keeps it after the epoch, with the epoch's metrics (a notebook's
    default; on a terminal the next epoch's bar takes its line)."""
    if not (wanted and interactive()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=leave, dynamic_ncols=True)
