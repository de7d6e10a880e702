"""Output folders checked before any work: a run that fails at its end has wasted its training.

:func:`prepare_output` checks a command's output folder (writable, or creatable: it is created
only when the first result is written) and refuses one that holds a previous run unless
``--overwrite`` was given; :func:`check_file` (from :mod:`gpucnn.files`, which the Python API
shares) does the same for a single output file (``bench --json``, ``visualize-filters
--output``).  Errors are one line naming the flag.  Training runs' folders are checked by
:func:`gpucnn.train.folder.check_run_folder`, which the Trainer shares.
"""
from __future__ import annotations

import os

from ..files import check_file, check_folder

__all__ = ["check_file", "prepare_output"]  # check_file is the Python API's too (gpucnn.files)


def prepare_output(flag: str, path: str, marks: tuple[str, ...], overwrite: bool) -> str:
    """Check that the folder ``path`` can be written and refuse it when it holds any of the
    files ``marks`` (a previous run's results) unless ``overwrite``; returns ``path``."""
    check_folder(path, flag)
    found = [m for m in marks if os.path.exists(os.path.join(path, m))]
    if found and not overwrite:
        raise ValueError(f"{flag}={path}: holds a previous run ({found[0]}); give "
                         f"--overwrite to replace it, or another {flag}")
    return path
