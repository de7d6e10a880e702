"""``gpucnn info`` and ``gpucnn check``: what this install is, and whether its gradients are right."""
from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .. import __version__, cpu, env
from ..config import TRAINING, combine
from ..cuda.kernels import kernel_dir
from ..device import DEVICES, cuda_status, resolve_device


def info_lines() -> list[str]:
    status = cuda_status()
    auto = "cuda" if status.available else "cpu"  # what resolve_device("auto") picks, unprinted
    why = "CUDA is usable" if status.available else status.reason
    kdir = kernel_dir()
    kernels = sorted(f for f in os.listdir(kdir) if f.endswith((".cu", ".cuh"))) if kdir else []
    lines = [
        f"gpucnn      {__version__}",
        f"python      {platform.python_version()} ({sys.executable})",
        f"numpy       {np.__version__}",
        f"platform    {platform.platform()}",
        f"auto device {auto} ({why})",
        f"GPUCNN_DEVICE={env.choice('GPUCNN_DEVICE', DEVICES, '(unset)')}",
        f"cupy        {status.cupy_version or 'not installed'}",
    ]
    if status.available:
        lines.append(f"gpu         {status.device_name} x{status.device_count} "
                     f"(CUDA runtime {status.runtime_version}, driver {status.driver_version})")
    lines.append("cpu paths   (op on a NumPy array -> what runs it)")
    lines += [f"            {op:<22} {path}" for op, path in cpu.op_paths().items()]
    lines.append(f"kernels     {kdir or 'NOT FOUND'}")
    if kernels:
        lines.append(f"            {', '.join(kernels)}")
    if status.available:
        from ..cuda.kernels import op_paths

        lines.append("gpu paths   (functional op on a CuPy array -> what runs it)")
        lines += [f"            {op:<22} {path}" for op, path in op_paths().items()]
    return lines


def run_info(args) -> int:
    env.choice("GPUCNN_DEVICE", DEVICES, "auto")  # every other command would refuse it
    print("\n".join(info_lines()))
    return 0


def run_check(args) -> int:
    from ..gradcheck import TOLERANCE, check_ops

    device = resolve_device(args.device)
    rows = check_ops(device, seed=args.seed)
    print(f"gradient check on {device}, float64, central differences; pass: rel error < {TOLERANCE:g}")
    print(f"{'op':<26} {'input':<6} {'rel error':>10}  result")
    failed = 0
    for op, arg, err in rows:
        ok = err < TOLERANCE
        failed += not ok
        print(f"{op:<26} {arg:<6} {err:>10.2e}  {'ok' if ok else 'FAIL'}")
    print(f"{len(rows) - failed} of {len(rows)} gradients pass")
    if device == "cuda":
        failed += _compare_cuda_with_numpy()
    return 1 if failed else 0


def _compare_cuda_with_numpy() -> int:
    """Print every CUDA primitive's difference from the NumPy path; return the failure count."""
    from ..compare import compare_cuda_with_numpy

    tolerances = {np.float32: 1e-4, np.float64: 1e-10}
    failed = 0
    print(f"\n{'CUDA primitive vs NumPy':<26} {'dtype':<8} {'max rel diff':>12}  result")
    for dtype, tol in tolerances.items():
        for op, diff in compare_cuda_with_numpy(dtype):
            ok = diff <= tol
            failed += not ok
            print(f"{op:<26} {np.dtype(dtype).name:<8} {diff:>12.2e}  {'ok' if ok else 'FAIL'}")
    return failed


def add_commands(sub) -> None:
    p = sub.add_parser("info", help="versions, the device 'auto' picks and why, kernel sources")
    p.set_defaults(func=run_info)
    p = sub.add_parser("check", help="gradient-check every op on the selected device")
    combine("check", TRAINING, only=("device",)).add_flags(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs (default 0)")
    p.set_defaults(func=run_check)
