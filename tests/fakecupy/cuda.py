"""``cupy.cuda`` of the stand-in: devices (fakecupy._devices), streams, events, graphs, memory
pools, pinned memory, and the ``runtime``, ``nvrtc``, ``memory``, ``compiler`` and ``nccl``
submodules gpucnn touches."""
from __future__ import annotations

import types

from . import _devices
from ._devices import Device  # noqa: F401
from ._graph import Graph  # noqa: F401
from ._memory import DEVICE_MEMORY as _DEVICE_MEMORY, OutOfMemoryError as _OutOfMemoryError
from ._memory import (MemoryPointer, MemoryPool, PinnedMemoryPointer,  # noqa: F401
                      alloc_pinned_memory, using_allocator)
from ._nccl import nccl  # noqa: F401
from ._rawmodule import CompileException as _CompileException
from ._stream import Event, Stream, get_current_stream, get_elapsed_time  # noqa: F401

DEVICE_NAME = b"gpucnn stand-in GPU (NumPy + g++ kernel emulation)"


def _module(name, doc, **attrs):
    mod = types.ModuleType(f"cupy.cuda.{name}", doc)
    vars(mod).update(attrs)
    return mod


def _properties(device):
    gpu = _devices.host.physical(device)
    return {"name": DEVICE_NAME, "totalGlobalMem": _DEVICE_MEMORY, "major": 9,
            "minor": 0, "multiProcessorCount": 1, "pciBusID": 0x18 + 0x10 * gpu,
            "pciDomainID": 0, "uuid": _devices.uuid(gpu)}


runtime = _module(
    "runtime", "The CUDA runtime of the stand-in's host (see fakecupy._devices).",
    driverGetVersion=lambda: _devices.host.driver,
    runtimeGetVersion=lambda: _devices.host.runtime,
    getDeviceCount=lambda: _devices.host.count(),
    getDevice=lambda: _devices.host.current,
    setDevice=lambda device: _devices.host.set_device(device),
    getDeviceProperties=_properties,
    deviceGetPCIBusId=lambda device: _devices.pci_bus_id(_devices.host.physical(device)),
    CUDARuntimeError=_devices.CUDARuntimeError,
)
nvrtc = _module("nvrtc", "The kernel compiler's version (the g++ emulation stands in for it).",
                getVersion=lambda: (12, 4))
memory = _module("memory", "Device memory errors.", OutOfMemoryError=_OutOfMemoryError)
compiler = _module("compiler", "Kernel compilation errors.", CompileException=_CompileException)

