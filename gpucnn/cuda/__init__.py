"""CuPy implementation of every device primitive, running our CUDA C kernels from kernels/*.cu.

Every public method of :class:`host.Primitives` is a function here: the primitives named in
:data:`gpucnn.primitives.NAMES` (im2col, col2im, maxpool_forward, ...) with :mod:`gpucnn.cpu`'s
signatures and semantics over CuPy arrays, and the fusions of :data:`gpucnn.primitives.FUSIONS`,
which exist here only (tests/test_primitives.py holds the class to that contract); inputs may be
any strided view, outputs are C-contiguous; and :func:`gemm`, kernels/gemm.cu's product itself.
Matmuls are cuBLAS's, or gemm's inside :func:`gemm_kernels` (a CUDA graph's capture, where CuPy
refuses cuBLAS); sums and the remaining elementwise math stay array code (CuPy's own kernels).
Also here: :func:`op_paths`, :func:`compile_module`, :func:`device_counters` and
:class:`KernelCompileError`.  :mod:`gpucnn.primitives` picks this module for CuPy arrays;
nothing here imports it back.

The package's parts: ``kernels`` (the kernel table and sources), ``host`` (the host side of each
primitive; ``gemm_host`` for the products, ``array_ops`` for those written as CuPy array code),
``loader`` (NVRTC compile and launch).  All but ``loader`` import without CuPy (``loader`` too,
given a ``cupy`` module), so the tests and ``gpucnn info`` use them anywhere.  CuPy itself is
imported, through :func:`gpucnn.device.import_cupy`, when a primitive is first looked up here.
"""
from __future__ import annotations

import contextlib

from ..device import import_cupy
from .host import Primitives
from .kernels import op_paths
from .loader import KernelCompileError, Loader

# The primitives and fusions, and gemm: every public method of the host class.
OPS = tuple(name for name in dir(Primitives) if not name.startswith("_")
            and callable(getattr(Primitives, name)))
__all__ = [*OPS, "op_paths", "compile_module", "device_counters", "gemm_kernels",
           "KernelCompileError"]

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
