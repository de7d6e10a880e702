"""csrc/pool.h, the native kernels' worker threads: any number of parts gives the result of its
ranges run one by one (test_native_conv.py checks it per mode); here, how the pool behaves
beside other threads and processes: two callers at once, a forked child, a sleeping worker
and its caller's CPU, a worker that gets no CPU time.  The scheduling cases run in a
subprocess that pins its own threads.
"""
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gpucnn import native
from test_native import _conv_inputs, isa, native_kernels, needs_native  # noqa: F401


@native_kernels
def test_the_pool_serves_two_callers_at_once_and_a_forked_child():
    """Two Python threads in pooled kernels at once (the second runs its parts itself), then a
    fork()ed child, which starts without the parent's workers, uses the pool."""
    x, w, b, _, stride, pad = _conv_inputs((16, 8, 12, 12, 16, 3, 3, 1, 1), np.float32)
    want = native.conv2d_forward(x, w, b, stride, pad)
    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(lambda _: native.conv2d_forward(x, w, b, stride, pad, parts=2), range(40)))
    for out in outs:
        np.testing.assert_array_equal(out, want)
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    with warnings.catch_warnings():  # forking a threaded process is the case under test
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: exit 0 when the pool gave the right result
        ok = np.array_equal(native.conv2d_forward(x, w, b, stride, pad, parts=3), want)
        os._exit(0 if ok else 1)
    os.close(write)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# Each scheduling script starts with this: x and w, the pool's worker (the one thread the first
# two-part call adds), and busy processes pinned to a CPU that stop with the script, even one
# that fails.
_PREAMBLE = r"""
import os
import subprocess
import sys
import time
import numpy as np
from gpucnn import native
x = np.random.default_rng(0).standard_normal((8, 8, 16, 16)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((8, 8, 3, 3)).astype(np.float32)
allowed = os.sched_getaffinity(0)
before = set(os.listdir("/proc/self/task"))
native.conv2d_forward(x, w, None, 1, 1, parts=2)
(worker,) = {int(t) for t in set(os.listdir("/proc/self/task")) - before}
def spin_on(cpu):  # returns once the loop runs there
    proc = subprocess.Popen([sys.executable, "-c", "import os, sys\n"
                             f"os.sched_setaffinity(0, {{{cpu}}})\n"
                             "print(flush=True)\n"
                             f"while os.getppid() == {os.getpid()}: pass"], stdout=subprocess.PIPE)
    proc.stdout.readline()
    return proc
"""

_WOKEN = _PREAMBLE + r"""
cpu = min(allowed)
os.sched_setaffinity(0, {cpu})  # the caller on one CPU
# the worker kept from running once woken, unless on the caller's CPU: wherever else it may
# go a busy process runs, which a SCHED_IDLE thread yields to
os.sched_setscheduler(worker, os.SCHED_IDLE, os.sched_param(0))
busy = [spin_on(c) for c in allowed - {cpu}]
time.sleep(0.3)  # the worker asleep
for _ in range(2):  # wakes it, twice before it can run: the mask it had is the one put back
    native.conv2d_forward(x, w, None, 1, 1, parts=2)
woken = os.sched_getaffinity(worker)
for proc in busy:
    proc.kill()
    proc.wait()
time.sleep(0.05)  # it runs, and sleeps again
print(woken == allowed - {cpu}, os.sched_getaffinity(worker) == allowed)
"""


@needs_native
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs this process may use")
def test_a_worker_asleep_on_its_callers_cpu_wakes_on_another(tmp_path):
    """csrc/pool.h: a worker woken on the caller's CPU waited there, runnable, while the caller
    ran the job's parts alone; the caller takes its CPU out of a sleeping worker's affinity as
    it wakes it (seen while the worker cannot run yet), and the worker puts its mask back."""
    assert _run(_WOKEN, tmp_path).split() == ["True", "True"]


def _run(script, cwd):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",  # no BLAS threads: the one new is the worker
               PYTHONPATH=os.path.dirname(os.path.dirname(native.__file__)))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True, cwd=cwd, timeout=120).stdout


_STARVED = _PREAMBLE + r"""
mine, its = sorted(allowed)[:2]
os.sched_setaffinity(0, {mine})
os.sched_setaffinity(worker, {its})  # the worker alone on its CPU with a busy process, which
os.sched_setscheduler(worker, os.SCHED_IDLE, os.sched_param(0))  # it yields to
busy = spin_on(its)
time.sleep(0.3)
want = native.conv2d_forward(x, w, None, 1, 1)
def seconds(parts):
    t = time.perf_counter()
    for _ in range(20):
        got = native.conv2d_forward(x, w, None, 1, 1, parts=parts)
        assert np.array_equal(got, want)
    return time.perf_counter() - t
print(min(seconds(2) / seconds(1) for _ in range(3)))
busy.kill()
"""


@needs_native
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs this process may use")
def test_the_caller_runs_the_parts_a_starved_worker_has_not_begun(tmp_path):
    """csrc/pool.h: threads claim parts, so a worker the scheduler keeps off its CPU (SCHED_IDLE
    beside a busy process) holds up nothing: two parts take about one part's time twice, where
    a part fixed to the worker waited 15-19 ms a call for it (2-vCPU VM: 200x one part)."""
    assert float(_run(_STARVED, tmp_path)) < 5
