"""Facts about the machine a benchmark ran on, and NumPy's BLAS threads."""
from __future__ import annotations

import ctypes
import datetime
import os
import platform

import numpy as np

from .. import __version__
from ..cpu_runtime import openblas as _openblas


def blas_threads() -> int | None:
    """OpenBLAS's thread count as it will run (None when NumPy's BLAS is not OpenBLAS)."""
    found = _openblas()
    if found is None:
        return None
    lib, prefix, suffix = found
    return int(getattr(lib, f"{prefix}_get_num_threads{suffix}")())



def set_blas_threads(n: int) -> None:
    """Run NumPy's BLAS with ``n`` threads from now on, and start child processes with the same.

    OpenBLAS is told directly (openblas_set_num_threads), so this works after NumPy is loaded;
    for another BLAS the thread variables must be set before Python starts.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(n)
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        getattr(lib, f"{prefix}_set_num_threads{suffix}")(ctypes.c_int(n))
        return
    raise ValueError(f"--threads={n}: NumPy's BLAS is not OpenBLAS, so its threads cannot be set "
                     f"after start-up; run with OMP_NUM_THREADS={n} MKL_NUM_THREADS={n} instead")



def blas_info() -> dict:
    """NumPy's BLAS (from numpy.show_config) and, for OpenBLAS, the kernels it runs."""
    info = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas}
    except Exception as e:  # older NumPy has no mode="dicts"
        info["error"] = f"numpy.show_config: {type(e).__name__}: {e}"
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
        if corename is not None:
            corename.restype = ctypes.c_char_p
            info["corename"] = corename().decode()
        info["threads"] = blas_threads()
    return info



def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()



def machine_info(device: str, torch_mod) -> dict:
    env = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "OPENBLAS_CORETYPE", "MALLOC_MMAP_THRESHOLD_")}
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(), "platform": platform.platform(), "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(), "device": device, "python": platform.python_version(),
        "gpucnn": __version__, "numpy": np.__version__, "blas": blas_info(), "env": env,
        "torch": getattr(torch_mod, "__version__", None),
    }
    if torch_mod is not None:
        info["torch_threads"] = torch_mod.get_num_threads()
    if device == "cuda":
        from ..device import cuda_status

        st = cuda_status()
        info.update(gpu=st.device_name, cupy=st.cupy_version, cuda_runtime=st.runtime_version,
                    cuda_driver=st.driver_version)
    return info
