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
SCALARS = {"idx": np.int64, "u64": np.uint64, "double": np.float64}
# Fixed-type array parameters.
ARRAYS = {"bool*": np.dtype(np.bool_), "const bool*": np.dtype(np.bool_),
          "const i64*": np.dtype(np.int64), "u64*": np.dtype(np.uint64),
          "const u64*": np.dtype(np.uint64), "double*": np.dtype(np.float64),
          "const double*": np.dtype(np.float64)}
# Structs passed by value: a one-element NumPy array of this dtype (CuPy passes a NumPy array of
# size one by value).  SGD_TABLE: the parameters one sgd_update_all launch takes, as
# kernels/optim.cu defines it; SQ_TABLE: the arrays one sum_squares_all launch takes
# (kernels/reduce.cu).
SGD_TABLE = 32
SQ_TABLE = 32


def sgd_table_dtype(dtype) -> np.dtype:
    """kernels/optim.cu's SgdTable<T> for T = ``dtype``: device addresses of the parameters,
    gradients and velocities, element counts and decays (every field 8-byte aligned, so NumPy's
    packed layout is the C one)."""
    n = SGD_TABLE
    return np.dtype([("p", np.uint64, n), ("g", np.uint64, n), ("v", np.uint64, n),
                     ("n", np.int64, n), ("decay", np.dtype(dtype), n)])


def sq_table_dtype(dtype) -> np.dtype:
    """kernels/reduce.cu's SqTable<T>: device addresses and element counts of the arrays (the
    same layout for every T: ``dtype`` is taken for STRUCTS' signature)."""
    return np.dtype([("a", np.uint64, SQ_TABLE), ("n", np.int64, SQ_TABLE)])


STRUCTS = {"SgdTable<T>": sgd_table_dtype, "SqTable<T>": sq_table_dtype}


def c_type(tparam: str, dtype, what="array") -> str:
    """The C type template parameter ``tparam`` takes for ``dtype``; a TypeError naming
    ``what`` and the dtypes the kernels take otherwise."""
    for cname, dt in TEMPLATE_TYPES[tparam].items():
        if dt == np.dtype(dtype):
            return cname
    allowed = ", ".join(map(str, TEMPLATE_TYPES[tparam].values()))
    raise TypeError(f"{what}.dtype={np.dtype(dtype)}: the CUDA kernels take {allowed}")


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
                                    ("const T*", "const i64*", "T*", "double*", "idx", "idx")),
    "sum_squares_all": Kernel("reduce.cu", ("T",), ("SqTable<T>", "idx", "double*")),
    "loss_total": Kernel("reduce.cu", (), ("const double*", "idx", "double", "double",
                                          "const double*", "idx", "double*")),
    **{f"gemm_{ab}": Kernel("gemm.cu", ("T",), ("const T*", "const T*", "T*") + ("idx",) * 5)
       for ab in ("nn", "nt", "tn", "tt")},
    "gemm_sum_splits": Kernel("gemm.cu", ("T",), ("const T*", "T*", "idx", "idx")),
}


def pack_args(kernel: str, inst: dict, args) -> list:
    """Check ``args`` against the kernel's C signature and type them for the launch.

    Arrays must have the element type the signature names and be C-contiguous, except those
    the kernel reads through strides (``Kernel.strided``); scalars become the NumPy scalar of
    their C type (np.int64 for ``long long``...), so they cross by value with the right width;
    a struct is a one-element host NumPy array of its dtype (``STRUCTS``), passed by value.
    """
    params, strided = KERNELS[kernel].params, KERNELS[kernel].strided
    if len(args) != len(params):
        raise TypeError(f"{kernel}: expected {len(params)} arguments, got {len(args)}")
    packed = []
    for pos, (param, a) in enumerate(zip(params, args)):
        if param in SCALARS:
            packed.append(SCALARS[param](a))
            continue
        if param in TEMPLATE_TYPES:  # a scalar of the template type, e.g. a learning rate
            packed.append(TEMPLATE_TYPES[param][inst[param]].type(a))
            continue
        if param in STRUCTS:
            want = STRUCTS[param](TEMPLATE_TYPES["T"][inst["T"]])
            if not isinstance(a, np.ndarray) or a.shape != (1,) or a.dtype != want:
                raise TypeError(f"{kernel} argument {pos} ({param}): expected a one-element "
                                f"NumPy array of its struct dtype, got {type(a).__name__} "
                                f"{getattr(a, 'dtype', '')}{getattr(a, 'shape', '')}")
            packed.append(a)
            continue
        base = param.replace("const ", "").rstrip("*")
        want = ARRAYS[param] if param in ARRAYS else TEMPLATE_TYPES[base][inst[base]]
        if not hasattr(a, "flags") or not (pos in strided or a.flags.c_contiguous):
            raise ValueError(f"{kernel} argument {pos} ({param}): expected a C-contiguous array, "
                             f"got {type(a).__name__} with strides {getattr(a, 'strides', None)}")
        if a.dtype != want:
            raise TypeError(f"{kernel} argument {pos} ({param}): expected dtype {want}, got {a.dtype}")
        packed.append(a)
    return packed


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
_GEMM = "GEMMs: cuBLAS via cupy, or gemm.cu::gemm_* in a CUDA graph (gpucnn.cuda.gemm_kernels)"
_OP_KERNELS = {
    "conv2d_forward": (["im2col"], _GEMM),
    "conv2d_backward": (["col2im", "bias_grad"], _GEMM),
    "conv2d_relu_forward": (["im2col", "bias_relu_forward"], _GEMM),
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
    "linear_forward": ([], _GEMM),
    "linear_backward": (["bias_grad"], _GEMM),
    "softmax_cross_entropy": (["softmax_cross_entropy", "loss_total"], ""),
    "mse_loss": ([], "cupy elementwise and reduction"),
    "l2_loss": (["sum_squares_all", "loss_total"], ""),
    "l2_penalty": (["sum_squares_all", "loss_total", "add_scaled"], ""),
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
