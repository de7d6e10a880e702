"""CuPy versions of the per-device primitives, running our CUDA C kernels from kernels/*.cu.

Same functions and semantics as :mod:`gpucnn.cpu` (im2col, col2im, maxpool_forward,
maxpool_backward), plus the kernels the CuPy path of :mod:`gpucnn.functional` uses:
dropout_keep_mask, relu/sigmoid forward and backward, bias_grad and the fused
softmax_cross_entropy.  Inputs may be any CuPy arrays (non-contiguous views are copied to
C order first); outputs are C-contiguous.  Matmuls, sums and the remaining elementwise math
stay array code (cuBLAS and CuPy's own kernels).

Each kernel file is compiled once per process with NVRTC through ``cupy.RawModule``; CuPy keeps
the binaries in its on-disk cache (``CUPY_CACHE_DIR``, see
:func:`gpucnn.cuda_launch.prepare_cupy_cache_dir`).  Importing this module imports CuPy.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from . import cuda_launch
from .cuda_launch import KERNELS, kernel_dir, kernel_source, op_paths  # noqa: F401  (op_paths is public)
from .device import import_cupy

cupy = import_cupy()

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward", "dropout_keep_mask",
           "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward", "bias_grad",
           "softmax_cross_entropy", "sum_of_squares", "op_paths", "compare_with_numpy",
           "KernelCompileError"]


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel file; the message names the file and carries the compiler log."""


_modules: dict = {}


def compile_module(file: str, source: str | None = None):
    """The ``cupy.RawModule`` of kernels/<file>, compiled now (once per process).

    ``source`` overrides the file's text (the tests use it to check the error path).
    """
    override = source is not None
    if not override and file in _modules:
        return _modules[file]
    kdir = kernel_dir()
    if kdir is None:
        raise FileNotFoundError("the CUDA kernel sources (kernels/*.cu) were not found beside the "
                                "gpucnn package; reinstall gpucnn")
    if source is None:
        source = kernel_source(kdir, file)
    names = [cuda_launch.name_expression(k, inst) for k, kern in KERNELS.items() if kern.file == file
             for inst in kern.instantiations()]
    module = cupy.RawModule(code=source, name_expressions=names)
    try:
        module.compile()
    except cupy.cuda.compiler.CompileException as e:
        raise KernelCompileError(f"compiling kernels/{file} with NVRTC failed:\n{e.get_message()}") from e
    if not override:
        _modules[file] = module
    return module


def _launch(kernel, expr, grid, block, args):
    fn = compile_module(KERNELS[kernel].file).get_function(expr)
    fn((grid,), (block,), tuple(args))


_prims = cuda_launch.Primitives(cupy, _launch)


def _oom_guard(name):
    """Re-raise CUDA out-of-memory inside primitive ``name`` as a MemoryError with a hint."""
    impl = getattr(_prims, name)

    @functools.wraps(impl)
    def wrapper(*args, **kwargs):
        try:
            return impl(*args, **kwargs)
        except cupy.cuda.memory.OutOfMemoryError as e:
            shape = next((tuple(a.shape) for a in args if hasattr(a, "shape")), None)
            where = f"input shape {shape}, batch size {shape[0]}" if shape else f"arguments {args}"
            raise MemoryError(f"CUDA out of memory in {name} ({where}): {e}. "
                              f"Lower the batch size.") from e

    return wrapper


conv2d_forward = _oom_guard("conv2d_forward")
conv2d_backward = _oom_guard("conv2d_backward")
relu_maxpool_forward = _oom_guard("relu_maxpool_forward")
relu_maxpool_backward = _oom_guard("relu_maxpool_backward")
im2col = _oom_guard("im2col")
col2im = _oom_guard("col2im")
maxpool_forward = _oom_guard("maxpool_forward")
maxpool_backward = _oom_guard("maxpool_backward")
dropout_keep_mask = _oom_guard("dropout_keep_mask")
relu_forward = _oom_guard("relu_forward")
relu_backward = _oom_guard("relu_backward")
sigmoid_forward = _oom_guard("sigmoid_forward")
sigmoid_backward = _oom_guard("sigmoid_backward")
bias_grad = _oom_guard("bias_grad")
softmax_cross_entropy = _oom_guard("softmax_cross_entropy")
sum_of_squares = _oom_guard("sum_of_squares")


def compare_with_numpy(dtype=np.float64, seed=0):
    """Run every primitive here and in NumPy on the same random inputs.

    -> [(op, max relative difference)]; 0.0 means identical (masks and argmax must be).
    """
    from .cuda_compare import compare_primitives

    return compare_primitives(sys.modules[__name__], cupy.asarray, cupy.asnumpy, np.dtype(dtype), seed)
