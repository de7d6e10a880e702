"""Atomic file writes that leave nothing behind, and the sweep of what a killed writer left.

A file is written to a temporary name in its destination folder, fsync'ed, then renamed over the
destination with ``os.replace``: a crash mid-write leaves the previous file intact.  Temporary
names carry the writer's process id (``.<name>.<pid>.<random><suffix>``), so the next start can
tell a stale one (its writer is gone) from one another live process is still writing, and remove
it.  Files get the mode ``open()`` would give them (0666 less the umask), not mkstemp's 0600: a
checkpoint in a shared results folder must be readable by whoever can read its history.json.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile


PROBE_PREFIX = ".gpucnn-probe."  # the file check_folder creates and removes at once


def check_folder(path: str, label: str, shown: str | None = None) -> str:
    """Prove that ``path`` is a folder this user can write, or one that can be created there,
    before the work whose results it will hold; creates nothing, so a command that stops
    before writing (an error, Ctrl-C, a closed pipe) leaves no empty folder behind.  Writing a
    probe file is the only sure test (mode bits lie for root, read-only mounts and quotas); it
    goes in ``path`` or, when that does not exist yet, in its nearest existing parent.  Errors
    are one ValueError line naming ``label`` (a flag or keyword) and the value the user gave
    (``shown``, default ``path``)."""
    where = f"{label}={shown or path}"
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{label}={path!r}: expected a folder name")
    target = os.path.abspath(os.fspath(path))
    existing = target
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if existing == target and not os.path.isdir(target):
        raise ValueError(f"{where}: expected a folder, found a file")
    if not os.path.isdir(existing):
        raise ValueError(f"{where}: not writable: the folder cannot be created ({existing} is "
                         f"a file)")
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        what = "" if existing == target else f" (the folder cannot be created in {existing})"
        raise ValueError(f"{where}: not writable{what} ({e.strerror or e}): expected a folder "
                         f"this user can write") from None
    return os.fspath(path)


def writable_folder(path: str, flag: str, shown: str | None = None) -> str:
    """:func:`check_folder`, then create the folder."""
    check_folder(path, flag, shown)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{flag}={shown or path}: not writable: the folder cannot be created "
                         f"({e.strerror or e})") from None
    return path


def check_file(label: str, path: str, overwrite: bool = True,
               overwrite_label: str = "--overwrite") -> str:
    """Check, before the work whose result it will hold, that the file ``path`` can be written:
    a file name (not a folder) in a folder :func:`check_folder` accepts.  An existing file is
    refused unless ``overwrite`` (``overwrite_label`` names the way to ask for it), and when it
    is read-only."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{label}={path!r}: expected a file name")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{label}={path}: expected a file name, found a folder")
    folder = os.path.dirname(os.path.abspath(path))
    check_folder(folder, label, shown=f"{path} (its folder {folder})")
    if os.path.lexists(path):
        if not overwrite:
            raise ValueError(f"{label}={path}: exists; give {overwrite_label} to replace it, "
                             f"or another {label}")
        if not os.access(path, os.W_OK):
            raise ValueError(f"{label}={path}: expected a writable file: permission denied")
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return mask


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temps(path: str, suffix: str = ".tmp") -> list[str]:
    """Delete the temporary files of ``path`` whose writer process no longer runs; returns them."""
    folder, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[^.]+{re.escape(suffix)}$")
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry)
        if m and not _writer_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, entry))
                removed.append(os.path.join(folder, entry))
    return removed


@contextlib.contextmanager
def atomic_write(path: str, suffix: str = ".tmp"):
    """``with atomic_write(path) as fh:`` write binary data to ``fh``; on success it replaces
    ``path`` (fsync'ed, mode 0666 & ~umask); on any exception ``path`` is untouched and the
    temporary file is gone."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
