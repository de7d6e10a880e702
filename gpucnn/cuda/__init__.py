"""CuPy implementation of every device primitive, running our CUDA C kernels from kernels/*.cu.

The functions named in :data:`gpucnn.primitives.NAMES` (im2col, col2im, maxpool_forward, ...)
have :mod:`gpucnn.cpu`'s signatures and semantics over CuPy arrays, and those of
:data:`gpucnn.primitives.FUSIONS` exist here only; inputs may be any strided
view, outputs are C-contiguous.  Matmuls are cuBLAS's, or kernels/gemm.cu's (:func:`gemm`)
inside :func:`gemm_kernels`; sums and the remaining elementwise math stay array code (CuPy's own
kernels).  Also here: :func:`op_paths`, :func:`compare_with_numpy`, :func:`compile_module`,
:func:`device_counters` and :class:`KernelCompileError`.

The package's parts: ``kernels`` (the kernel table and sources), ``host`` (the host side of each
primitive), ``loader`` (NVRTC compile and launch), ``compare`` (every primitive against NumPy).
The first two, and ``loader`` given a ``cupy`` module, import without CuPy, so the tests and
``gpucnn info`` use them anywhere.  CuPy itself is imported, through
:func:`gpucnn.device.import_cupy`, when a primitive is first looked up here.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from ..device import import_cupy
from ..primitives import FUSIONS, NAMES
from .host import Primitives
from .kernels import op_paths
from .loader import KernelCompileError, Loader

__all__ = [*NAMES, *FUSIONS, "gemm", "op_paths", "compare_with_numpy", "compile_module",
           "device_counters", "gemm_kernels", "KernelCompileError"]

_loader = None
_prims = None


def _bind():
    """Import CuPy and define the primitives and :func:`compile_module` in this module."""
    global _loader, _prims
    cupy = import_cupy()
    _loader = Loader(cupy)
    prims = _prims = Primitives(cupy, _loader.launch)
    for name in (*NAMES, *FUSIONS, "gemm"):
        globals()[name] = _loader.guard_memory(name, getattr(prims, name))
    globals()["compile_module"] = _loader.module


def __getattr__(name):
    if _loader is None and (name in NAMES or name in FUSIONS or name in ("gemm", "compile_module")):
        _bind()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


@contextlib.contextmanager
def device_counters(counters: dict):
    """Inside, dropout draws of a stream whose key is in ``counters`` ({key: (1,) uint64 device
    array}) read and advance that counter on the device: what a captured CUDA graph needs,
    whose kernel arguments are fixed at capture (see gpucnn.train.graph)."""
    if _prims is None:
        _bind()
    _prims.device_counters = dict(counters)
    try:
        yield
    finally:
        _prims.device_counters = {}


@contextlib.contextmanager
def gemm_kernels(on: bool = True):
    """Inside, ``matmul`` (the conv and linear layers' products) runs kernels/gemm.cu instead
    of cuBLAS, which CuPy refuses while a stream captures a CUDA graph (see
    gpucnn.cuda.gemm_host); ``on=False`` is cuBLAS again.  The previous choice comes back after."""
    if _prims is None:
        _bind()
    before, _prims.gemm_kernels = _prims.gemm_kernels, bool(on)
    try:
        yield
    finally:
        _prims.gemm_kernels = before


def compare_with_numpy(dtype=np.float64, seed=0):
    """Run every primitive here and in NumPy on the same random inputs.

    -> [(op, max relative difference)]; 0.0 means identical (masks and argmax must be).
    """
    from .compare import compare_primitives

    cupy = import_cupy()
    return compare_primitives(sys.modules[__name__], cupy.asarray, cupy.asnumpy, np.dtype(dtype), seed)
