"""Peak memory of a framework's training steps: resident set of a fresh process (CPU), the
allocator's peak (CUDA)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from .machine import blas_threads
from .nets import Config, gpucnn_step, parse_config
from .torch_twins import torch_step

CHILD_ENV = "GPUCNN_BENCH_CHILD"  # set in re-run children so they never re-run themselves


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MiB: VmRSS (resident now) or VmHWM (peak resident).

    VmHWM belongs to this process image; getrusage's ru_maxrss would not do, because Linux
    carries it over from the parent across fork and exec.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} line (peak memory needs Linux)")



def probe_cpu_memory(framework: str, config: str, dtype: str, steps: int) -> dict:
    """Run in a fresh process: build, then ``steps`` training steps; resident memory in MiB.

    -> {"base_mb": RSS after imports and setup, "peak_mb": peak RSS of the whole process}.
    """
    cfg = parse_config(config)
    if framework == "torch":
        import torch

        torch.set_num_threads(blas_threads() or os.cpu_count())
        step = torch_step(cfg, np.dtype(dtype), "cpu")
    else:
        step, _ = gpucnn_step(cfg, np.dtype(dtype), "cpu")
    base = _status_mb("VmRSS")
    for _ in range(steps):
        step()
    return {"base_mb": base, "peak_mb": _status_mb("VmHWM")}



def cpu_peak_memory(framework: str, cfg: Config, dtype, steps: int = 3) -> dict:
    """:func:`probe_cpu_memory` in a child process with this process's environment."""
    config = f"{cfg.net}{cfg.batch}x{cfg.spec.size}"
    cmd = [sys.executable, "-m", "gpucnn.bench", "--probe-memory", framework, config,
           np.dtype(dtype).name, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, CHILD_ENV: "1"})
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {' '.join(cmd[2:])} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])



def cuda_peak_memory(framework: str, step) -> dict:
    """Peak device memory of one step in MiB: torch's max_memory_allocated, or for CuPy the
    pool's total after one step from an emptied pool (an upper bound on the peak in use)."""
    if framework == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20}
    import cupy

    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    pool.free_all_blocks()
    step()
    cupy.cuda.Device().synchronize()
    return {"peak_mb": pool.total_bytes() / 2**20}
