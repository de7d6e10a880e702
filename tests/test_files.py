"""Atomic writes: nothing half-written, nothing left behind, the umask honoured."""
import os
import stat
import subprocess
import sys

import pytest

from gpucnn.files import atomic_write, remove_stale_temps


def _package_root() -> str:
    """The folder holding the gpucnn under test, so a child process imports the same one."""
    import gpucnn

    return os.path.dirname(os.path.dirname(gpucnn.__file__))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_replaces_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with atomic_write(str(path)) as fh:
        fh.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as fh:
            fh.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_honours_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_write(str(tmp_path / "f")) as fh:
            fh.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == mode


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "checkpoint.npz"
    stale = tmp_path / f".checkpoint.npz.{_dead_pid()}.x1y2.tmp"
    live = tmp_path / f".checkpoint.npz.{os.getppid()}.z3.tmp"
    other = tmp_path / f".weights.npz.{_dead_pid()}.q.tmp"  # another file's: not ours to judge
    for f in (stale, live, other):
        f.write_bytes(b"")
    assert remove_stale_temps(str(target)) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name])


WRITER = """
import sys, numpy as np
from gpucnn.train.checkpoint import save_npz
path, i = sys.argv[1], 0
w = np.random.default_rng(0).standard_normal(1_000_000)  # 8 MB: kills land mid-write
print("ready", flush=True)
while True:
    i += 1
    save_npz(path, {"w": w + i}, {"format": "checkpoint", "step": i})
"""


def test_kill_9_during_checkpoint_writes_never_corrupts_and_leaves_no_temp(tmp_path):
    import random
    import signal
    import time

    from gpucnn.train.checkpoint import load_npz, save_npz

    path = str(tmp_path / "checkpoint.npz")
    save_npz(path, {"w": __import__("numpy").zeros(1)}, {"format": "checkpoint", "step": 0})
    rng, steps, temps_seen = random.Random(0), [], 0
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": _package_root()})
        child.stdout.readline()
        time.sleep(rng.uniform(0.02, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        temps_seen += len([f for f in os.listdir(tmp_path) if f.endswith(".tmp")])
        _, meta = load_npz(path, "checkpoint")  # never corrupt: the last complete write
        steps.append(meta["step"])
    save_npz(path, {"w": __import__("numpy").zeros(1)}, {"format": "checkpoint", "step": -1})
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # the next start swept every stale temp
    assert temps_seen > 0, "no kill landed mid-write: the test proved nothing"
    assert max(steps) > 0
