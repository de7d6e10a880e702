"""``gpucnn bench --parts suite``: each case of :mod:`.suite_nets` timed beside PyTorch twice,
both frameworks in one process ("together") and each in its own ("apart").

In one process the frameworks share what is loaded (OpenBLAS, PyTorch's OpenMP runtime, the
native kernels' threads) and can slow or flatter each other: an idle pool that spins steals
the other's cores.  Apart, each process holds only its own framework.  Both ways the
steady-state method of :func:`.timing.steady_rounds` applies: rounds in which the frameworks
take turns (order alternating), warm-up steps then consecutive timed steps each turn, the
median of per-round ratios, rounds disturbed by other processes left out (the workers' own
CPU time is not "other").  Every measuring process is a :mod:`.suite_worker` that imports
NumPy before gpucnn, as most scripts do; this process only directs them.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

from .suite_nets import Case
from .suite_worker import WORKER_MAIN
from .timing import steady_rounds

FRAMEWORKS = ("gpucnn", "torch")


def worker_env(threads: int) -> dict:
    """The workers' environment: this one with every framework at ``threads`` threads, less
    OPENBLAS_THREAD_TIMEOUT (which ``import gpucnn`` sets for itself when it comes before NumPy;
    the suite measures scripts that import NumPy first)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GPUCNN_CPU_THREADS"):
        env[var] = str(threads)
    return env


class Worker:
    """A :mod:`.suite_worker` process holding ``frameworks``' steps for ``case``."""

    def __init__(self, case: Case, frameworks, dtype: str, threads: int):
        spec = {"case": case.name, "frameworks": list(frameworks), "dtype": dtype, "threads": threads}
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER_MAIN, json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, env=worker_env(threads))
        self.pid = self._read()["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        msg = json.loads(line) if line.strip() else {}
        if "error" in msg or not msg:
            self._err.seek(0)
            tail = self._err.read().strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"bench worker {self.proc.args[-1]}: {msg.get('error') or tail[0]}")
        return msg

    def run(self, framework: str, warmup: int, steps: int) -> list[float]:
        self.proc.stdin.write(json.dumps({"run": framework, "warmup": warmup, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self._read()["times"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self._err.close()


def _measure(workers: dict, reps: int, steps: int, warmup: int, pause: float) -> dict:
    """steady_rounds over {framework: Worker}."""
    pids = sorted({w.pid for w in workers.values()})
    try:
        return steady_rounds(list(workers), lambda fw: {fw: workers[fw].run(fw, warmup, steps)},
                             reps, pause, pids=pids)
    finally:
        for w in set(workers.values()):
            w.close()


def bench_case(case: Case, dtype: str, threads: int, with_torch: bool, reps: int, steps: int,
               warmup: int, pause: float) -> dict:
    """One suite row: the case, and for "together" and "apart" the :func:`steady_rounds`
    result (times per framework, the per-round ratio); without PyTorch, gpucnn alone."""
    frameworks = FRAMEWORKS if with_torch else ("gpucnn",)
    row = {"case": case.name, "net": case.net.name, "role": case.net.role, "what": case.net.what,
           "batch": case.batch, "mode": case.mode, "input": list(case.net.input_dim)}
    both = Worker(case, frameworks, dtype, threads)
    row["together"] = _measure(dict.fromkeys(frameworks, both), reps, steps, warmup, pause)
    if with_torch:
        apart = {fw: Worker(case, (fw,), dtype, threads) for fw in frameworks}
        row["apart"] = _measure(apart, reps, steps, warmup, pause)
    return row


_SPIN = "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    pass"  # the parent's pid


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes spinning in a Python loop while the block runs (it gets their pids): the
    measurements of a machine shared with other work (``gpucnn bench --busy``), killed however
    the block ends; one whose parent is gone (killed by a signal) stops by itself."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid())],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
