"""The CUDA kernel table and the kernel sources; importable without CuPy.

Each kernel is listed once in :data:`KERNELS`: its file in ``kernels/``, its template parameters
and its C signature.  Every instantiation has a plain ``extern "C"`` entry point
(:func:`entry_name`, defined by the ENTRIES macro of its file): the loader looks these names up,
the host code (:mod:`gpucnn.cuda.host`) launches and type-checks against the table, and the host
emulation in ``tests/emulation`` calls the same entry points.  :func:`kernel_dir` is the one place that
finds the sources.
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass

import numpy as np

# Template parameter -> {C type: NumPy dtype} it can be instantiated with.
TEMPLATE_TYPES = {
    "T": {"float": np.dtype(np.float32), "double": np.dtype(np.float64)},
    "A": {"unsigned char": np.dtype(np.uint8), "int": np.dtype(np.int32)},
}
# Scalar C types -> the NumPy scalar type that passes them by value.
SCALARS = {"idx": np.int64, "u64": np.uint64}
# Fixed-type array parameters.
ARRAYS = {"bool*": np.dtype(np.bool_), "const bool*": np.dtype(np.bool_),
          "const i64*": np.dtype(np.int64), "u64*": np.dtype(np.uint64),
          "const u64*": np.dtype(np.uint64)}
# Structs passed by value: a one-element NumPy array of this dtype (CuPy passes a NumPy array of
# size one by value).  SGD_TABLE: the parameters one sgd_update_all launch takes, as
# kernels/optim.cu defines it.
SGD_TABLE = 32


def sgd_table_dtype(dtype) -> np.dtype:
    """kernels/optim.cu's SgdTable<T> for T = ``dtype``: device addresses of the parameters,
    gradients and velocities, element counts and decays (every field 8-byte aligned, so NumPy's
    packed layout is the C one)."""
    n = SGD_TABLE
    return np.dtype([("p", np.uint64, n), ("g", np.uint64, n), ("v", np.uint64, n),
                     ("n", np.int64, n), ("decay", np.dtype(dtype), n)])


STRUCTS = {"SgdTable<T>": sgd_table_dtype}


@dataclass(frozen=True)
class Kernel:
    """One kernel template: its file in kernels/, template parameters and C signature."""

    file: str
    tparams: tuple
    params: tuple
    strided: tuple = ()  # positions of array parameters read through strides passed beside them

    def instantiations(self):
        """Every {template parameter: C type} the file has an entry point for."""
        choices = [list(TEMPLATE_TYPES[p]) for p in self.tparams]
        return [dict(zip(self.tparams, combo)) for combo in itertools.product(*choices)]


KERNELS = {
    "im2col": Kernel("conv.cu", ("T",), ("const T*", "T*") + ("idx",) * 14, strided=(0,)),
    "col2im": Kernel("conv.cu", ("T",), ("const T*", "T*") + ("idx",) * 10),
    "bias_grad": Kernel("conv.cu", ("T",), ("const T*", "T*", "idx", "idx", "idx", "idx")),
    "maxpool_forward": Kernel("pool.cu", ("T", "A"), ("const T*", "T*", "A*") + ("idx",) * 11,
                              strided=(0,)),
    "maxpool_backward": Kernel("pool.cu", ("T", "A"), ("const T*", "const A*", "T*") + ("idx",) * 9),
    "relu_maxpool_forward": Kernel("pool.cu", ("T", "A"), ("const T*", "T*", "A*") + ("idx",) * 11,
                                   strided=(0,)),
    "bias_relu_maxpool_forward": Kernel("pool.cu", ("T", "A"),
                                        ("const T*", "const T*", "T*", "A*") + ("idx",) * 11,
                                        strided=(0,)),
    "relu_maxpool_backward": Kernel("pool.cu", ("T", "A"),
                                    ("const T*", "const A*", "const T*", "T*") + ("idx",) * 9),
    "add_scaled": Kernel("optim.cu", ("T",), ("T*", "T", "const T*", "idx")),
    "sgd_update": Kernel("optim.cu", ("T",), ("T*", "const T*", "T*", "T", "T", "T", "T", "idx", "idx")),
    "sgd_update_all": Kernel("optim.cu", ("T",), ("SgdTable<T>", "idx", "const T*", "T", "T", "idx")),
    "dropout_keep_mask": Kernel("dropout.cu", (), ("u64", "u64", "u64", "bool*", "idx")),
    "dropout_forward": Kernel("dropout.cu", ("T",),
                              ("u64", "u64", "u64", "const T*", "T*", "bool*", "T", "idx")),
    "dropout_forward_at": Kernel("dropout.cu", ("T",),
                                 ("u64", "const u64*", "u64", "const T*", "T*", "bool*", "T", "idx")),
    "advance_counter": Kernel("dropout.cu", (), ("u64*", "u64")),
    "dropout_backward": Kernel("dropout.cu", ("T",), ("const T*", "const bool*", "T*", "T", "idx")),
    "relu_forward": Kernel("activations.cu", ("T",), ("const T*", "T*", "idx")),
    "bias_relu_forward": Kernel("activations.cu", ("T",), ("const T*", "const T*", "T*") + ("idx",) * 4),
    "relu_backward": Kernel("activations.cu", ("T",), ("const T*", "const T*", "T*", "idx")),
    "sigmoid_forward": Kernel("activations.cu", ("T",), ("const T*", "T*", "idx")),
    "sigmoid_backward": Kernel("activations.cu", ("T",), ("const T*", "const T*", "T*", "idx")),
    "softmax_cross_entropy": Kernel("softmax.cu", ("T",),
                                    ("const T*", "const i64*", "T*", "T*", "idx", "idx")),
}


def entry_name(kernel: str, inst: dict) -> str:
    """The extern "C" entry point of one instantiation: the kernel's name, then each template
    argument's dtype as kind and bits, e.g. ``maxpool_forward_f32_u8`` for <float, unsigned char>."""
    kern = KERNELS[kernel]
    dtypes = [TEMPLATE_TYPES[p][inst[p]] for p in kern.tparams]
    return "_".join([kernel] + [f"{dt.kind}{dt.itemsize * 8}" for dt in dtypes])


def entry_names(file: str) -> list:
    """Every entry point of kernels/<file>, in table order."""
    return [entry_name(k, inst) for k, kern in KERNELS.items() if kern.file == file
            for inst in kern.instantiations()]


# Which path each functional op takes on a CuPy array (kernels named here, the rest is array code).
_OP_KERNELS = {
    "conv2d_forward": (["im2col"], "GEMM via cuBLAS (cupy)"),
    "conv2d_backward": (["col2im", "bias_grad"], "GEMMs via cuBLAS (cupy)"),
    "maxpool2d_forward": (["maxpool_forward"], ""),
    "maxpool2d_backward": (["maxpool_backward"], ""),
    "relu_maxpool2d_forward": (["relu_maxpool_forward"], ""),
    "relu_maxpool2d_forward(bias=b)": (["bias_relu_maxpool_forward"], ""),
    "relu_maxpool2d_backward": (["relu_maxpool_backward"], ""),
    "relu_forward": (["relu_forward"], ""),
    "relu_forward(bias=b)": (["bias_relu_forward"], ""),
    "relu_backward": (["relu_backward"], ""),
    "sigmoid_forward": (["sigmoid_forward"], ""),
    "sigmoid_backward": (["sigmoid_backward"], ""),
    "dropout_forward": (["dropout_forward"], ""),
    "dropout_backward": (["dropout_backward"], ""),
    "linear_forward": ([], "cuBLAS via cupy"),
    "linear_backward": (["bias_grad"], "GEMMs via cuBLAS (cupy)"),
    "softmax_cross_entropy": (["softmax_cross_entropy"], ""),
    "mse_loss": ([], "cupy elementwise and reduction"),
    "l2_penalty": (["add_scaled"], "cuBLAS dot via cupy"),
    "SGD step (gpucnn.optim)": (["sgd_update_all"], ""),
}


def op_paths() -> dict:
    """{functional op: the path it takes on the GPU}, e.g. "CUDA kernel pool.cu::maxpool_forward"."""
    paths = {}
    for op, (kernels, array_code) in _OP_KERNELS.items():
        parts = [f"CUDA kernel {KERNELS[k].file}::{k}" for k in kernels]
        paths[op] = ", ".join(parts + ([array_code] if array_code else []))
    return paths


def kernel_dir() -> str | None:
    """Where the CUDA sources are: gpucnn/kernels in an installed package, else the source
    tree's top-level kernels/; None when neither holds a .cu file."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed, checkout = os.path.join(package, "kernels"), os.path.join(os.path.dirname(package), "kernels")
    for candidate in (installed, checkout):
        if os.path.isdir(candidate) and any(f.endswith(".cu") for f in os.listdir(candidate)):
            return candidate
    return None


def kernel_source(file: str, kdir: str | None = None) -> str:
    """The text of kernels/<file> with its local ``#include "x.cuh"`` lines inlined.

    Inlining makes the source self-contained, so CuPy's on-disk cache (keyed by the source
    text) sees a change to a shared header.
    """
    kdir = kdir or kernel_dir()
    if kdir is None:
        raise FileNotFoundError("the CUDA kernel sources (kernels/*.cu) were not found beside the "
                                "gpucnn package; reinstall gpucnn")
    with open(os.path.join(kdir, file), encoding="utf-8") as f:
        text = f.read()
    return re.sub(r'^#include "([^"]+)"\s*$', lambda m: kernel_source(m.group(1), kdir), text,
                  flags=re.M)
