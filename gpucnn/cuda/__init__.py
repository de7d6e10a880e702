"""CuPy implementation of every device primitive, running our CUDA C kernels from kernels/*.cu.

Every public method of :class:`host.Primitives` is a function here: the primitives named in
:data:`gpucnn.primitives.NAMES` (im2col, col2im, maxpool_forward, ...) with :mod:`gpucnn.cpu`'s
signatures and semantics over CuPy arrays, and the fusions of :data:`gpucnn.primitives.FUSIONS`,
which exist here only (tests/test_primitives.py holds the class to that contract); inputs may be
any strided view, outputs are C-contiguous.  Matmuls, sums and the remaining elementwise math
stay array code (cuBLAS and CuPy's own kernels).  Also here: :func:`op_paths`,
:func:`compile_module`, :func:`device_counters` and :class:`KernelCompileError`.
:mod:`gpucnn.primitives` picks this module for CuPy arrays; nothing here imports it back.

The package's parts: ``kernels`` (the kernel table and sources), ``host`` (the host side of each
primitive), ``loader`` (NVRTC compile and launch).  The first two, and ``loader`` given a
``cupy`` module, import without CuPy, so the tests and ``gpucnn info`` use them anywhere.  CuPy itself is imported, through
:func:`gpucnn.device.import_cupy`, when a primitive is first looked up here.
"""
from __future__ import annotations

import contextlib

from ..device import import_cupy
from .host import Primitives
from .kernels import op_paths
from .loader import KernelCompileError, Loader

# The primitives and fusions: every public method of the host class.
OPS = tuple(name for name in vars(Primitives) if not name.startswith("_"))
__all__ = [*OPS, "op_paths", "compile_module", "device_counters", "KernelCompileError"]

_loader = None
_prims = None


def _bind():
    """Import CuPy and define the primitives and :func:`compile_module` in this module."""
    global _loader, _prims
    cupy = import_cupy()
    _loader = Loader(cupy)
    prims = _prims = Primitives(cupy, _loader.launch)
    for name in OPS:
        globals()[name] = _loader.guard_memory(name, getattr(prims, name))
    globals()["compile_module"] = _loader.module


def __getattr__(name):
    if _loader is None and (name in OPS or name == "compile_module"):
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
