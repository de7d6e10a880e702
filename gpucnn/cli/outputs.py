"""Output paths checked before any work: a run that fails at its end has wasted its training.

:func:`prepare_output` creates a command's output folder, proves it writable with a probe file
and refuses one that holds a previous run unless ``--overwrite`` was given; :func:`check_file`
does the same for a single output file (``bench --json``, ``export --output``).  Errors are one
line naming the flag.
"""
from __future__ import annotations

import os

from ..files import writable_folder


def prepare_output(flag: str, path: str, marks: tuple[str, ...], overwrite: bool,
                   resume_hint: bool = False) -> str:
    """Create the folder ``path``, check it is writable and refuse it when it holds any of the
    files ``marks`` (a previous run's results) unless ``overwrite``; returns ``path``."""
    writable_folder(path, flag)
    found = [m for m in marks if os.path.exists(os.path.join(path, m))]
    if found and not overwrite:
        way = f"--resume {path} to continue it or " if resume_hint else ""
        raise ValueError(f"{flag}={path}: holds a previous run ({found[0]}); give {way}"
                         f"--overwrite to replace it, or another {flag}")
    return path


def check_file(flag: str, path: str, overwrite: bool = True) -> str:
    """Check that the file ``path`` can be written (its folder created), before the work whose
    results it will hold; an existing file is replaced at the end, as asked, or with
    ``overwrite=False`` refused (the command's ``--overwrite`` replaces it)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{flag}={path}: expected a file name, found a folder")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{flag}={path}: exists; give --overwrite to replace it, or another "
                         f"{flag}")
    writable_folder(folder, flag, shown=f"{path} (its folder {folder})")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{flag}={path}: expected a writable file: permission denied")
    return path
