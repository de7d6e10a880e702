"""A stand-in ``cupy`` for tests without a GPU: NumPy arrays that gpucnn takes for CuPy arrays,
the real kernels/*.cu run through the g++ host emulation, and counters of what a GPU would pay.

Installed only by the ``fake_cupy`` fixture (:mod:`fakecupy.plugin`), which puts this package
in ``sys.modules["cupy"]`` for one test and restores whatever was there (real CuPy included);
``tests/fakecupy/shim`` on PYTHONPATH installs it for a whole process (a rehearsal of the GPU
acceptance run).  It provides the subset of CuPy that gpucnn uses and refuses what CuPy
refuses; each rule names the CuPy source it mirrors, and tests/test_fakecupy_api.py holds its
names and signatures to the installed CuPy's:

- ``ndarray``: its class lives in module ``cupy`` (gpucnn's device detection sees "cuda");
  every result of arithmetic, ufuncs, reductions and indexing is one again.  Implicit
  conversion to NumPy (``np.asarray``) raises TypeError, and so does mixing a NumPy array into
  an operation, as in CuPy; so does an array of another device (:mod:`fakecupy._array`).
- Devices: the host's GPUs, ``CUDA_VISIBLE_DEVICES``, the current device, which devices got a
  context, the driver's CUDA version (:mod:`fakecupy._devices`).
- Memory: pools that hand freed chunks out again per device and stream, as CuPy's do
  (:mod:`fakecupy._memory`).
- ``RawModule(code, options, name_expressions)``: kernels compiled by g++ with
  ``tests/emulation/cuda_host.h``, template instantiations and plain ``extern "C"`` entry
  points alike.
- ``cuda.Stream`` / ``cuda.Event``: every write is in flight on its stream until ordered, so a
  buffer read or released too early is caught (:mod:`fakecupy._stream`).
- ``Stream.begin_capture`` / ``end_capture`` -> ``cuda.Graph``: a capture records the work
  issued and runs none of it; syncs, transfers and cuBLAS calls are refused during one
  (:mod:`fakecupy._graph`).
- ``cuda.nccl``: NCCL's communicator over MPI (:mod:`fakecupy._nccl`).
- :func:`counting`: launches (each RawModule call, ufunc, reduction, matmul or copy), device
  allocations, uploads and device-to-host synchronisations, with where they happened.
"""
from __future__ import annotations

import numpy as np

from . import cuda  # noqa: F401
from ._array import ndarray  # noqa: F401
from ._count import Counter, counting, phase  # noqa: F401
from ._functions import *  # noqa: F401,F403
from ._functions import linalg  # noqa: F401
from . import _memory
from ._rawmodule import RawKernel, RawModule  # noqa: F401

__version__ = "0.0.0+stand-in"

# dtypes and constants are NumPy's, as in CuPy
dtype = np.dtype
newaxis, inf, nan, pi, e = np.newaxis, np.inf, np.nan, np.pi, np.e
for _name in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128", "intp", "result_type",
              "promote_types", "can_cast", "finfo", "iinfo"):
    globals()[_name] = getattr(np, _name)

# NumPy's ufuncs dispatch to ndarray.__array_ufunc__, so they are CuPy's ufuncs here
for _name in ("add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power",
              "negative", "absolute", "abs", "sqrt", "square", "exp", "log", "log1p", "expm1",
              "tanh", "sign", "maximum", "minimum", "fmax", "fmin", "equal", "not_equal", "less",
              "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
              "logical_not", "isinf", "floor", "ceil", "matmul", "reciprocal", "bitwise_and",
              "bitwise_or", "bitwise_xor", "right_shift", "left_shift", "fabs", "isfinite", "isnan"):
    globals()[_name] = getattr(np, _name)


def get_default_memory_pool():
    return _memory.pool


def get_default_pinned_memory_pool():
    return _memory.pool


def modules() -> dict:
    """{name in sys.modules: module} for installing the stand-in as ``cupy``."""
    import sys

    me = sys.modules[__name__]
    return {"cupy": me, "cupy.cuda": cuda, "cupy.cuda.runtime": cuda.runtime,
            "cupy.cuda.memory": cuda.memory, "cupy.cuda.compiler": cuda.compiler,
            "cupy.cuda.nvrtc": cuda.nvrtc, "cupy.cuda.nccl": cuda.nccl,
            "cupy.linalg": linalg}


def reset() -> None:
    """A fresh process on the host the environment describes (fakecupy._devices): devices,
    memory, streams."""
    from . import _devices, _stream

    _devices.reset()
    _memory.reset()
    _stream.reset()
