"""Backend dispatch: which device an array lives on, device choice, moving arrays, random streams.

The math in :mod:`gpucnn.functional` is written once against ``xp``, the array module of its
input (``numpy`` or ``cupy``), as Chainer and DeZero do.  CuPy is imported lazily: a CPU-only
machine never imports it unless CUDA is asked for.

Devices are named ``"cpu"``, ``"cuda"`` or ``"auto"``; ``None`` means the ``GPUCNN_DEVICE``
environment variable, else ``"auto"``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

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
            import cupy

            return cupy
    return np


def device_of(x) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if get_array_module(x) is not np else "cpu"


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
    from .cuda_launch import prepare_cupy_cache_dir

    try:
        prepare_cupy_cache_dir()  # CuPy >= 14 fails at import when its cache dir is unwritable
        import cupy
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
    return CudaStatus(True, "", name, count, version, runtime, _fmt_cuda_version(driver))


_auto_fallback_warned = False


def resolve_device(device: str | None = None) -> str:
    """Turn ``"cpu" | "cuda" | "auto" | None`` into ``"cpu"`` or ``"cuda"``.

    ``None`` reads ``GPUCNN_DEVICE`` (default ``"auto"``).  ``"auto"`` picks CUDA when it is
    usable, else the CPU with one warning per process saying why.  ``"cuda"`` where CUDA is
    unusable raises :class:`DeviceError` with the reason and the install hint.
    """
    source = "device"
    if device is None:
        device = os.environ.get("GPUCNN_DEVICE", "auto") or "auto"
        source = "GPUCNN_DEVICE"
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise DeviceError(f"{source}={device!r}: expected one of {', '.join(DEVICES)}")
    device = device.lower()
    if device == "cpu":
        return "cpu"
    status = cuda_status()
    if device == "cuda":
        if not status.available:
            raise DeviceError(f"{source}='cuda' but CUDA is unusable: {status.reason}. "
                              f"Use device='cpu', or {CUDA_INSTALL_HINT}.")
        return "cuda"
    if status.available:
        return "cuda"
    global _auto_fallback_warned
    if not _auto_fallback_warned:
        _auto_fallback_warned = True
        warnings.warn(f"device='auto' is using the CPU: {status.reason}", RuntimeWarning,
                      stacklevel=2)
    return "cpu"


def xp_for(device: str):
    """The array module for a resolved device name."""
    if device == "cuda":
        import cupy

        return cupy
    if device == "cpu":
        return np
    raise DeviceError(f"device={device!r}: expected 'cpu' or 'cuda' (resolve 'auto' first)")


def to_device(x, device: str):
    """Return ``x`` as an array on ``device`` ("cpu", "cuda" or "auto"); no copy if already there."""
    device = resolve_device(device)
    if device == "cpu":
        if get_array_module(x) is not np:
            return x.get()
        return np.asarray(x)
    import cupy

    return cupy.asarray(x)


def to_numpy(x) -> np.ndarray:
    """A NumPy copy (or view) of any array, wherever it lives."""
    return to_device(x, "cpu")


# --- counter-based random numbers -------------------------------------------------------------
#
# Dropout masks come from a counter-based generator: element i of draw k is a pure function of
# (seed, stream, counter + i).  The same arithmetic runs in NumPy here and in kernels/dropout.cu,
# so one seed gives bit-identical masks on the CPU and the GPU, and the generator's whole state
# is three integers (easy to checkpoint).  The mixer is SplitMix64's finaliser, which passes
# BigCrush when fed a Weyl sequence, as it is here.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
UNIFORM_BITS = 24  # a float32 carries exactly 24 bits of uniform mantissa


def splitmix64(z):
    """SplitMix64 finaliser applied elementwise to a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """The 64-bit key of one random stream, mixed from (seed, stream) on the host."""
    z = np.array([(seed * 0x9E3779B97F4A7C15 + stream) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int(splitmix64(z + _GOLDEN)[0])


def random_bits(key: int, counter: int, n: int, xp=np):
    """``n`` uniform 24-bit integers (as uint64) for counters ``counter .. counter + n - 1``."""
    idx = xp.arange(n, dtype=xp.uint64)
    idx += xp.uint64((counter + key) & 0xFFFFFFFFFFFFFFFF)
    idx *= _GOLDEN
    return splitmix64(idx) >> np.uint64(64 - UNIFORM_BITS)


def drop_threshold(p: float) -> int:
    """An element is kept when its 24-bit draw is >= this integer (so P(drop) = p to 2^-24)."""
    return int(round(p * (1 << UNIFORM_BITS)))


class Generator:
    """A seeded random stream on one device.

    ``keep_mask`` draws dropout masks from the counter-based generator above (bit-identical on
    CPU and GPU); ``host`` is a NumPy ``Generator`` for draws made on the host (initialisation,
    shuffling).  ``state()`` / ``set_state()`` round-trip everything, for checkpoints.
    """

    def __init__(self, seed: int | None = None, stream: int = 0, device: str = "cpu"):
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed={seed!r}: expected a non-negative integer or None")
        self.seed = int(seed)
        self.stream = int(stream)
        self.device = resolve_device(device)
        self.key = stream_key(self.seed, self.stream)
        self.counter = 0
        self.host = np.random.default_rng([self.seed, self.stream])

    def keep_mask(self, shape, p: float, xp=None):
        """Boolean mask of ``shape``: True (keep) with probability ``1 - p``; advances the counter."""
        xp = xp if xp is not None else xp_for(self.device)
        n = int(np.prod(shape, dtype=np.int64))
        mask = _keep_mask(self.key, self.counter, n, drop_threshold(p), xp).reshape(shape)
        self.counter += n
        return mask

    def spawn(self, stream: int) -> "Generator":
        """An independent stream with the same seed (e.g. one per dropout layer or per rank)."""
        return Generator(self.seed, stream, self.device)

    def state(self) -> dict:
        return {"seed": self.seed, "stream": self.stream, "counter": self.counter,
                "host": self.host.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed, self.stream = int(state["seed"]), int(state["stream"])
        self.key = stream_key(self.seed, self.stream)
        self.counter = int(state["counter"])
        self.host.bit_generator.state = state["host"]


def _keep_mask(key: int, counter: int, n: int, threshold: int, xp):
    if xp is not np:
        from . import cuda

        return cuda.dropout_keep_mask(key, counter, n, threshold)
    with np.errstate(over="ignore"):
        return random_bits(key, counter, n, xp) >= np.uint64(threshold)
