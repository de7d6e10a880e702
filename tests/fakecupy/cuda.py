"""``cupy.cuda`` of the stand-in: one fake device, streams, events, pinned memory, and the
``runtime``, ``nvrtc``, ``memory`` and ``compiler`` submodules gpucnn touches."""
from __future__ import annotations

import types

from . import _stream
from ._memory import DEVICE_MEMORY as TOTAL_MEMORY
from ._graph import Graph  # noqa: F401
from ._memory import (MemoryPool, OutOfMemoryError, PinnedMemoryPointer,  # noqa: F401
                      alloc_pinned_memory, using_allocator)
from ._rawmodule import CompileException
from ._stream import Event, Stream, get_current_stream, get_elapsed_time  # noqa: F401

DEVICE_NAME = b"gpucnn stand-in GPU (NumPy + g++ kernel emulation)"


def _module(name, doc, **attrs):
    mod = types.ModuleType(f"cupy.cuda.{name}", doc)
    vars(mod).update(attrs)
    return mod


runtime = _module(
    "runtime", "The CUDA runtime of one fake device (CUDA 12.4 driver and runtime).",
    driverGetVersion=lambda: 12040,
    runtimeGetVersion=lambda: 12040,
    getDeviceCount=lambda: 1,
    getDevice=lambda: 0,
    getDeviceProperties=lambda device: {"name": DEVICE_NAME, "totalGlobalMem": TOTAL_MEMORY,
                                        "major": 9, "minor": 0, "multiProcessorCount": 1},
    CUDARuntimeError=RuntimeError,
)
nvrtc = _module("nvrtc", "The kernel compiler's version (the g++ emulation stands in for it).",
                getVersion=lambda: (12, 4))
memory = _module("memory", "Device memory errors.", OutOfMemoryError=OutOfMemoryError)
compiler = _module("compiler", "Kernel compilation errors.", CompileException=CompileException)


class Device:
    """``cupy.cuda.Device``: only device 0 exists."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"device={device!r}: expected 0, the stand-in's only device "
                               f"(cudaErrorInvalidDevice)")

    compute_capability = "90"

    @property
    def mem_info(self):
        from ._memory import pool

        return TOTAL_MEMORY - pool.used_bytes(), TOTAL_MEMORY

    def synchronize(self) -> None:
        _stream.synchronize_all()

    def use(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def synchronize() -> None:
    _stream.synchronize_all()
