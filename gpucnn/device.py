"""Devices: their names, the ``auto`` choice and the CUDA probe, moving arrays, the CuPy import.

The math in :mod:`gpucnn.functional` is written once against ``xp``, the array module of its
input (``numpy`` or ``cupy``), as Chainer and DeZero do.  CuPy is imported only through
:func:`import_cupy`, and only when CUDA is asked for: a CPU-only machine never imports it.

Devices are named ``"cpu"``, ``"cuda"`` or ``"auto"``; ``None`` means the ``GPUCNN_DEVICE``
environment variable, else ``"auto"``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from . import env

DEVICES = ("cpu", "cuda", "auto")
CUDA_INSTALL_HINT = (
    "install the CUDA extra that matches your driver: pip install 'gpucnn[cuda12]' "
    "or pip install 'gpucnn[cuda13]'"
)


class DeviceError(ValueError):
    """A device was asked for that this machine cannot provide, or its name is unknown."""


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Decided from the array's type, so calling this never imports CuPy.
    """
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return import_cupy()
    return np


def prepare_cupy_cache_dir() -> str:
    """Make sure CuPy's kernel cache directory is writable, before CuPy is imported.

    ``CUPY_CACHE_DIR`` is respected when set.  Otherwise, when the default (~/.cupy/kernel_cache)
    cannot be written -- a read-only home -- point ``CUPY_CACHE_DIR`` at a per-user directory under
    the system temp dir (CuPy >= 14 creates its cache directory when it is imported, and fails if
    it cannot).  Returns the directory in use.
    """
    if os.environ.get("CUPY_CACHE_DIR"):
        return os.environ["CUPY_CACHE_DIR"]
    default = os.path.expanduser("~/.cupy/kernel_cache")
    try:
        os.makedirs(default, exist_ok=True)
        with tempfile.TemporaryFile(dir=default):
            pass
        return default
    except OSError:
        fallback = os.path.join(tempfile.gettempdir(), f"gpucnn-cupy-cache-{os.getuid()}")
        os.makedirs(fallback, exist_ok=True)
        os.environ["CUPY_CACHE_DIR"] = fallback
        return fallback


def import_cupy():
    """``cupy``, imported once its cache directory is settled: the one place gpucnn imports it."""
    if "cupy" not in sys.modules:
        prepare_cupy_cache_dir()
    import cupy

    return cupy


@dataclass(frozen=True)
class CudaStatus:
    """Whether CUDA is usable here, and if not, why.

    ``reason`` is empty when ``available`` is true; otherwise it says what is missing and
    how to get it.  ``device_name`` and the versions are filled when they could be read.
    """

    available: bool
    reason: str = ""
    device_name: str = ""
    device_count: int = 0
    cupy_version: str = ""
    runtime_version: str = ""
    driver_version: str = ""


_cuda_status: CudaStatus | None = None


def cuda_status(refresh: bool = False) -> CudaStatus:
    """Probe CUDA once per process; never raises."""
    global _cuda_status
    if _cuda_status is None or refresh:
        _cuda_status = _probe_cuda()
    return _cuda_status


def _fmt_cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _probe_cuda() -> CudaStatus:
    try:
        cupy = import_cupy()
    except ImportError as e:
        return CudaStatus(False, f"CuPy is not installed ({e}); {CUDA_INSTALL_HINT}")
    except Exception as e:  # a broken CuPy install raises all sorts of things at import
        return CudaStatus(False, f"CuPy failed to import: {type(e).__name__}: {e}")
    version = getattr(cupy, "__version__", "?")
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception as e:
        return CudaStatus(False, f"no usable NVIDIA driver: {e}", cupy_version=version)
    if driver == 0:
        return CudaStatus(False, "no NVIDIA driver is installed", cupy_version=version)
    old_driver = _driver_too_old(cupy, driver)
    if old_driver:
        return CudaStatus(False, old_driver, cupy_version=version,
                          driver_version=_fmt_cuda_version(driver))
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return CudaStatus(False, f"CUDA sees no device: {e}", cupy_version=version,
                          driver_version=_fmt_cuda_version(driver))
    if count == 0:
        return CudaStatus(False, "CUDA sees no GPU (is CUDA_VISIBLE_DEVICES empty?)",
                          cupy_version=version, driver_version=_fmt_cuda_version(driver))
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        runtime = _fmt_cuda_version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as e:
        return CudaStatus(False, f"the GPU could not be queried: {e}", cupy_version=version,
                          device_count=count, driver_version=_fmt_cuda_version(driver))
    failed = _prove_cuda_path(cupy)
    if failed:
        return CudaStatus(False, failed, name, count, version, runtime, _fmt_cuda_version(driver))
    return CudaStatus(True, "", name, count, version, runtime, _fmt_cuda_version(driver))


# The oldest Linux driver of each CUDA major version, for its minor-version compatibility
# (docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html).
DRIVER_FOR_CUDA = {12: 525, 13: 580}


def _driver_too_old(cupy, driver: int) -> str:
    """One line naming the driver CuPy's CUDA runtime needs and the extra that fits the driver
    there is, when the driver's CUDA major version is older than the runtime's; else "".  CUDA
    reports this as cudaErrorInsufficientDriver at the first call that needs the driver
    (getDeviceCount), which said only "CUDA sees no device"."""
    try:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Exception:  # noqa: BLE001 - then getDeviceCount's error says what it can
        return ""
    need, have = runtime // 1000, driver // 1000
    if have >= need:
        return ""
    fix = (f"or install gpucnn for CUDA {have}: pip install 'gpucnn[cuda{have}]' (in place of "
           f"the cuda{need} extra)" if have in DRIVER_FOR_CUDA else
           f"no gpucnn extra runs on a CUDA {have} driver")
    return (f"the NVIDIA driver supports CUDA {_fmt_cuda_version(driver)} but CuPy "
            f"{cupy.__version__} runs on the CUDA {_fmt_cuda_version(runtime)} runtime, which "
            f"needs a driver for CUDA {need}.0 or newer (Linux driver >= "
            f"{DRIVER_FOR_CUDA.get(need, '?')}): update the driver, {fix}")


_PROBE_KERNEL = 'extern "C" __global__ void gpucnn_probe(float* a) { a[threadIdx.x] += 1.0f; }'
_LIBS_HINT = ("CuPy's CUDA libraries are missing: " + CUDA_INSTALL_HINT + " (they bring NVRTC "
              "and cuBLAS), or put a CUDA toolkit's lib64 on LD_LIBRARY_PATH")


def _prove_cuda_path(cupy) -> str:
    """Run what training will run: NVRTC, a compiled kernel, a cuBLAS matmul.  A driver and a
    device are not enough: without the NVRTC or cuBLAS libraries the first conv would crash.
    Returns "" when all pass, else one line naming the failed step and the fix."""
    steps = (
        ("NVRTC (the kernel compiler) did not load", lambda: cupy.cuda.nvrtc.getVersion()),
        ("a trivial kernel did not compile and run", lambda: _run_probe_kernel(cupy)),
        ("a 2x2 matmul (cuBLAS) did not run", lambda: _run_probe_matmul(cupy)),
    )
    for what, step in steps:
        try:
            step()
        except Exception as e:  # DynamicLibNotFoundError, ImportError, CUDARuntimeError, ...
            first_line = (str(e).strip().splitlines() or [""])[0]
            return f"{what} ({type(e).__name__}: {first_line}); {_LIBS_HINT}"
    return ""


def _run_probe_kernel(cupy) -> None:
    a = cupy.zeros(4, dtype=cupy.float32)
    cupy.RawModule(code=_PROBE_KERNEL).get_function("gpucnn_probe")((1,), (4,), (a,))
    if a.get().tolist() != [1.0] * 4:
        raise RuntimeError(f"the probe kernel wrote {a.get().tolist()}, expected [1.0] * 4")


def _run_probe_matmul(cupy) -> None:
    m = cupy.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=cupy.float32)
    got = (m @ m).get().tolist()
    if got != [[7.0, 10.0], [15.0, 22.0]]:
        raise RuntimeError(f"the probe matmul gave {got}, expected [[7, 10], [15, 22]]")


_auto_fallback_warned = False


def requested_device(device: str | None = None) -> tuple[str, str]:
    """(``"cpu" | "cuda" | "auto"``, where it came from): ``device``, else ``GPUCNN_DEVICE``,
    else ``"auto"``; a DeviceError naming the source for anything else.  Probes nothing."""
    source = "device"
    if device is None:
        try:
            device, source = env.choice("GPUCNN_DEVICE", DEVICES, "auto"), "GPUCNN_DEVICE"
        except ValueError as e:
            raise DeviceError(str(e)) from None
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise DeviceError(f"{source}={device!r}: expected one of {', '.join(DEVICES)}")
    return device.lower(), source


def visible_gpus() -> int:
    """How many GPUs CUDA shows this process (after CUDA_VISIBLE_DEVICES); 0 where CuPy does
    not import or CUDA sees none.  Creates no context on any GPU."""
    try:
        return int(import_cupy().cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: none to use
        return 0


def use_gpu(ordinal: int) -> None:
    """Make GPU ``ordinal`` this process's current device.  Since CUDA 12 this creates its
    context, so call it before anything touches a GPU (the probe included): every later
    allocation, kernel and library handle then lives there."""
    import_cupy().cuda.Device(ordinal).use()


def gpu_identity(ordinal: int) -> str:
    """The physical identity of GPU ``ordinal`` (its UUID, or PCI bus id): the same for two
    processes on one GPU whatever their CUDA_VISIBLE_DEVICES.  Creates no context."""
    runtime = import_cupy().cuda.runtime
    uuid = runtime.getDeviceProperties(ordinal).get("uuid")
    return uuid.hex() if uuid else runtime.deviceGetPCIBusId(ordinal)


def resolve_device(device: str | None = None) -> str:
    """Turn ``"cpu" | "cuda" | "auto" | None`` into ``"cpu"`` or ``"cuda"``.

    ``None`` reads ``GPUCNN_DEVICE`` (default ``"auto"``).  ``"auto"`` picks CUDA when it is
    usable, else the CPU, printing one line per process to stderr that says why.  ``"cuda"``
    where CUDA is unusable raises :class:`DeviceError` with that same reason, which names the
    failed step and how to fix it.
    """
    device, source = requested_device(device)
    if device == "cpu":
        return "cpu"
    status = cuda_status()
    if device == "cuda":
        if not status.available:
            raise DeviceError(f"{source}='cuda' but CUDA is unusable: {status.reason} "
                              f"(or use the CPU: device 'cpu')")
        return "cuda"
    if status.available:
        return "cuda"
    global _auto_fallback_warned
    if not _auto_fallback_warned:
        _auto_fallback_warned = True
        print(f"gpucnn: device 'auto' is using the CPU: {status.reason}", file=sys.stderr)
    return "cpu"


def xp_for(device: str):
    """The array module for a resolved device name."""
    if device == "cuda":
        return import_cupy()
    if device == "cpu":
        return np
    raise DeviceError(f"device={device!r}: expected 'cpu' or 'cuda' (resolve 'auto' first)")


def device_of(x) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "cuda" if type(x).__module__.startswith("cupy") else "cpu"


def to_device(x, device: str):
    """Return ``x`` as an array on ``device`` ("cpu", "cuda" or "auto"); no copy if already there."""
    device = resolve_device(device)
    if device == "cpu":
        return x.get() if device_of(x) == "cuda" else np.asarray(x)
    return import_cupy().asarray(x)


class DeviceScalar:
    """A (1,) device array mirroring a host number that kernels read, such as the learning rate:
    :meth:`sync` uploads only when the number differs from what the array holds (``known``), so
    a step pays an upload only after a change, and a replayed CUDA graph, whose kernels read
    the array, sees every change."""

    def __init__(self, xp, dtype):
        self.array = xp.empty(1, dtype=dtype)
        self.known = None

    def sync(self, value):
        """The array, holding ``value``."""
        if value != self.known:
            self.array.set(np.array([value], dtype=self.array.dtype))
            self.known = value
        return self.array


def to_numpy(x) -> np.ndarray:
    """A NumPy copy (or view) of any array, wherever it lives."""
    return to_device(x, "cpu")
