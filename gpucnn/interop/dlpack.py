"""Arrays from any DLPack producer (a PyTorch tensor, a CuPy or NumPy array, JAX, ...) as the
array gpucnn computes on, without a copy: NumPy for memory on the CPU, CuPy for memory on a CUDA
GPU.  The other way needs nothing from gpucnn: gpucnn's arrays are NumPy or CuPy arrays, which
implement ``__dlpack__``, so ``torch.from_dlpack(model.parameters()["net.0.weight"])`` is a
tensor over the parameter's own memory.
"""
from __future__ import annotations

import numpy as np

from ..device import import_cupy

# DLDeviceType codes (dlpack.h) of the memory the two array modules can take without a copy.
CPU = 1
CUDA, CUDA_MANAGED = 2, 13
_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 4: "OpenCL", 7: "Vulkan", 8: "Metal",
          9: "VPI", 10: "ROCm", 11: "ROCm host", 13: "CUDA managed", 14: "oneAPI"}


def from_dlpack(x):
    """A NumPy (memory on the CPU) or CuPy (memory on a CUDA GPU) array over ``x``'s memory.

    ``x`` is any object with ``__dlpack__`` and ``__dlpack_device__``; writes through either
    side are seen by the other.  A PyTorch tensor that requires grad must be ``.detach()``-ed
    first (PyTorch refuses to export it).  Memory elsewhere (ROCm, Metal, pinned host memory)
    is a ValueError naming the device.
    """
    try:
        device_type, device_id = x.__dlpack_device__()
    except AttributeError:
        raise TypeError(f"x={type(x).__name__}: expected an array with __dlpack__ and "
                        f"__dlpack_device__ (a PyTorch tensor, a CuPy or NumPy array)") from None
    if device_type == CPU:
        return np.from_dlpack(x)
    if device_type in (CUDA, CUDA_MANAGED):
        return import_cupy().from_dlpack(x)
    where = _NAMES.get(int(device_type), f"device type {int(device_type)}")
    raise ValueError(f"x: its memory is on {where} device {device_id}: expected the CPU (NumPy) "
                     f"or a CUDA GPU (CuPy)")
