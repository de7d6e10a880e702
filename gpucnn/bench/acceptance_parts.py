"""The acceptance run's measuring parts, each run in a child process
(``python -m gpucnn.bench.acceptance --part NAME --out DIR``) that writes DIR/NAME.json:
``versions`` (GPU, driver, CUDA, CuPy, PyTorch, NCCL, MPI), ``train`` (training steps against
PyTorch + cuDNN, peak memory), ``kernels`` (a convolution's kernels at batch 256, every product
of a step).  An error in one config is recorded and the next one measured."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import traceback

import numpy as np

from ..files import atomic_write

# Sizes: on a GPU the issue's; rehearsing on the stand-in, small ones through the same code.
SIZES = {
    "gpu": {"configs": "a128,a512,b64,b512", "rounds": 5, "steps": 10, "warmup": 3,
            "conv": (256, None), "products": "a512,b512", "reps": 20},
    "rehearse": {"configs": "a2x12,b2x12", "rounds": 1, "steps": 1, "warmup": 1,
                 "conv": (2, 12), "products": "a2x12", "reps": 1},
}


def _guarded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or {"error": one line, "traceback": ...} when it raises."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one config's failure must not stop the others
        return {"error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}",
                "traceback": traceback.format_exc()}


def _torch(rehearse: bool):
    """(torch or None, its device, why not): PyTorch on the GPU (on the CPU when rehearsing)."""
    from .torch_twins import import_torch

    torch = import_torch("cpu", os.cpu_count() or 1)
    if torch is None:
        return None, None, "PyTorch is not installed"
    if rehearse:
        return torch, "cpu", "rehearsal: PyTorch on the CPU"
    if not torch.cuda.is_available():
        return None, None, f"PyTorch {torch.__version__} has no CUDA (torch.version.cuda=" \
                           f"{torch.version.cuda})"
    torch.backends.cudnn.benchmark = True
    return torch, "cuda", ""


def versions(rehearse: bool, save) -> dict:
    """Saved after each section (``save(out)``): a section that hangs keeps the others."""
    from .. import native

    out = {"host": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "numpy": np.__version__,
           "native_cpu_kernels": native.isa if native.available else native.reason}
    if shutil.which("nvidia-smi"):
        smi = _guarded(subprocess.run, ["nvidia-smi", "--query-gpu=name,driver_version,"
                                        "memory.total,compute_cap", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=30)
        out["nvidia_smi"] = smi if isinstance(smi, dict) else (smi.stdout or smi.stderr).strip()
    for name, section in (("cuda", _cupy_versions), ("torch", _torch_versions),
                          ("mpi", _mpi_versions)):
        save(out)
        out[name] = _guarded(section)
    return out


def _cupy_versions() -> dict:
    from ..device import cuda_status, import_cupy

    cupy, st = import_cupy(), cuda_status()
    info = {"cupy": cupy.__version__, "available": st.available, "reason": st.reason,
            "gpu": st.device_name, "gpus": st.device_count, "runtime": st.runtime_version,
            "driver": st.driver_version}
    if st.available:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info.update(memory_gib=round(props.get("totalGlobalMem", 0) / 2**30, 1),
                    sms=props.get("multiProcessorCount"),
                    compute_capability=f"{props.get('major')}.{props.get('minor')}")
    from cupy.cuda import nccl

    info["nccl"] = nccl.get_version() if getattr(nccl, "available", False) else "unavailable"
    return info


def _torch_versions() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(), cudnn=torch.backends.cudnn.version(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def _mpi_versions() -> dict:
    import mpi4py

    mpi4py.rc.initialize = False  # the library's version needs no MPI_Init (MPI-3)
    from mpi4py import MPI

    return {"mpi4py": mpi4py.__version__,
            "library": MPI.Get_library_version().strip().splitlines()[0]}


def train(rehearse: bool, save) -> dict:
    from .cuda_parts import STEP_VARIANTS, train_row
    from .nets import parse_config

    size = SIZES["rehearse" if rehearse else "gpu"]
    torch, device, why = _torch(rehearse)
    result = {"variants": STEP_VARIANTS, "torch": why, "rows": [],
              "method": f"float32, {size['rounds']} rounds of {size['warmup']} untimed then "
                        f"{size['steps']} timed consecutive steps per variant, order "
                        f"alternating; CUDA events; medians"}
    for config in size["configs"].split(","):  # saved after each: a stopped part keeps its rows
        result["rows"].append(_guarded(train_row, parse_config(config), np.float32, torch,
                                       device, size["rounds"], size["steps"], size["warmup"]))
        save(result)
    return result


def kernels(rehearse: bool, save) -> dict:
    from .cuda_parts import conv_rows, product_rows
    from .nets import NETS, parse_config

    size = SIZES["rehearse" if rehearse else "gpu"]
    torch, device, why = _torch(rehearse)
    batch, px = size["conv"]
    conv = {net: _guarded(conv_rows, net, batch, px or NETS[net].size, np.float32, torch, device,
                          size["reps"]) for net in ("a", "b")}
    products = {c: _guarded(product_rows, parse_config(c), np.float32, size["reps"])
                for c in size["products"].split(",")}
    return {"torch": why, "conv_batch": batch, "conv": conv, "products": products}


def run_measuring_part(name: str, out: str, rehearse: bool) -> int:
    """Measure part ``name`` and write OUT/NAME.json; 1 if a measurement failed (versions only
    report what they find)."""
    def save(result):
        with atomic_write(os.path.join(out, f"{name}.json")) as fh:
            fh.write(json.dumps(result, indent=1, default=str).encode())

    result = {"versions": versions, "train": train, "kernels": kernels}[name](rehearse, save)
    save(result)
    return int(name != "versions" and '"error": ' in json.dumps(result, default=str))
