"""The device primitives: the one list of what has a NumPy and a CUDA implementation.

Everything in :mod:`gpucnn.functional` is array code over ``xp`` except these operations, whose
code differs per device.  Each has exactly two implementations with the signature declared in
:class:`DevicePrimitives`: :mod:`gpucnn.cpu` (NumPy, the reference) and :mod:`gpucnn.cuda`
(CuPy with our kernels from ``kernels/*.cu``).  ``tests/test_primitives.py`` holds both to these
signatures.  Adding a primitive: declare it here, write it in ``cpu.py`` and in the CUDA host
code, add a row to both comparison suites.
"""
from __future__ import annotations

import sys
from typing import Protocol

import numpy as np

from . import cpu
from .device import get_array_module


class DevicePrimitives(Protocol):
    """The contract.  Arrays are NumPy on the CPU and CuPy on CUDA; inputs may be any strided
    view; 4-D activations are (N, C, H, W)."""

    def conv2d_forward(self, x, w, b, stride: int, pad: int):
        """x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> (out (N, F, OH, OW), saved): the
        cross-correlation plus bias; ``saved`` is what conv2d_backward needs, opaque to callers
        (each device picks its algorithm: direct convolution or im2col + GEMM)."""

    def conv2d_backward(self, dout, saved, w, x_shape, stride: int, pad: int, need_dx: bool,
                        need_db: bool):
        """dout (N, F, OH, OW) -> (dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None)."""

    def conv2d_relu_forward(self, x, w, b, stride: int, pad: int):
        """relu(conv2d_forward(x, w, b)) -> (out, saved): a conv and the ReLU after it (where no
        pool follows), out as relu_forward gives it, saved as conv2d_forward's.  The backward
        is relu_backward with this out, then conv2d_backward."""

    def relu_maxpool_forward(self, x, size: int, stride: int):
        """maxpool(relu(x)) in one pass -> (out, argmax), exactly what maxpool_forward returns for
        relu_forward(x) (ReLU commutes with the max, so pooling first reads 1/size^2 as much)."""

    def relu_maxpool_backward(self, dout, argmax, out, x_shape, size: int, stride: int):
        """maxpool_backward then relu_backward: each window's dout * (out > 0) to its argmax."""

    def matmul(self, a, b):
        """a (M, K) @ b (K, N) -> (M, N) C-contiguous, for 2-D a and b of one float dtype,
        any strides (x.T included): every matmul of gpucnn's layers.  On the CPU OpenBLAS on
        gpucnn's worker threads; on CUDA cuBLAS's, or gemm.cu's in a CUDA graph, where CuPy
        refuses cuBLAS (gpucnn/cuda/gemm_host.py)."""

    def im2col(self, x, kh: int, kw: int, stride: int, pad: int):
        """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); rows ordered (c, i, j), columns (n, oh, ow)."""

    def col2im(self, dcols, x_shape, kh: int, kw: int, stride: int, pad: int):
        """Adjoint of im2col: dcols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), overlaps summed."""

    def maxpool_forward(self, x, size: int, stride: int):
        """x (N, C, H, W) -> (out (N, C, OH, OW), argmax): argmax is the row-major offset of the
        first maximum in each window (uint8 when size*size <= 256, else int32); NaN wins."""

    def maxpool_backward(self, dout, argmax, x_shape, size: int, stride: int):
        """dout, argmax (N, C, OH, OW) -> dx (N, C, H, W): each window's gradient to its argmax."""

    def relu_forward(self, x):
        """max(x, 0), NaN propagated; any shape."""

    def relu_backward(self, dout, out):
        """dout * (out > 0); ``out`` is relu_forward's result."""

    def sigmoid_forward(self, x):
        """1 / (1 + exp(-x)) without overflow; any shape."""

    def sigmoid_backward(self, dout, out):
        """dout * out * (1 - out); ``out`` is sigmoid_forward's result."""

    def batchnorm_forward(self, x, gamma, beta, running_mean, running_var, train: bool,
                          momentum: float, eps: float, relu: bool):
        """x (N, C) or (N, C, H, W), gamma, beta, running_mean, running_var (C,) of x's dtype ->
        (out of x's shape, saved): batch norm as :mod:`gpucnn.batchnorm` defines it (training
        updates the running statistics in place; they may be None then), and with ``relu``
        relu of it, as relu_forward gives it.  ``saved`` is what batchnorm_backward needs,
        opaque to callers."""

    def batchnorm_backward(self, dout, saved, need_dx: bool):
        """dout of the forward output's shape -> (dx or None, dgamma (C,), dbeta (C,)), the
        gradient of what batchnorm_forward computed (its ReLU included)."""

    def add_relu_forward(self, a, b):
        """relu(a + b), a and b of one shape and dtype: a residual block's sum and the ReLU
        after it; the backward is relu_backward with this output."""

    def bias_grad(self, dout):
        """dout (N, F, ...) -> (F,): the sum over every axis but 1 (conv and linear biases)."""

    def softmax_cross_entropy(self, scores, y):
        """scores (N, K), y (N,) int64 labels in [0, K) on the same device -> (loss, dscores):
        loss the mean cross-entropy as a 0-d float64 array, dscores (N, K) its gradient."""

    def dropout_keep_mask(self, key: int, counter: int, n: int, threshold: int):
        """Bool (n,): element i kept when rng.random_bits(key, counter + i) >= threshold."""

    def dropout_forward(self, x, key: int, counter: int, threshold: int, scale):
        """-> (x * keep * scale, keep): keep (bool, x's shape) as dropout_keep_mask gives it for
        x.size elements; ``scale`` a scalar of x's dtype."""

    def dropout_backward(self, dout, keep, scale):
        """dout * keep * scale, with dropout_forward's keep and scale."""

    def sum_of_squares(self, a):
        """sum(a**2) as a 0-d float64 array, accumulated accurately for float32 ``a``."""

    def add_scaled(self, y, a: float, x):
        """y += a * x in place (x, y of one shape and dtype; y C-contiguous)."""

    def sgd_update(self, p, g, v, lr: float, momentum: float, nesterov: bool, decay: float):
        """SGD's step on parameter p in place (gpucnn.optim.SGD's rule): p -= lr * g, or with
        velocity v (None without momentum) v = momentum * v - lr * g and p += v (nesterov:
        p += -momentum * v_prev + (1 + momentum) * v).  ``decay`` > 0 first adds decay * p to
        g (L2's gradient folded into the update: one pass over p instead of three)."""


NAMES = tuple(name for name in vars(DevicePrimitives) if not name.startswith("_"))


class DeviceFusions(Protocol):
    """Fused ops that only the CUDA implementation has: each removes whole launches there, where
    a small net's step is bound by their count, and would only add work on the CPU (whose
    native conv adds its bias in its own pass and whose native update is one pass per
    parameter already).  Callers take one from :func:`fusion` and run the plain primitives
    where it is None."""

    def bias_relu_forward(self, x, b):
        """relu(x + b) with b (C,) per channel of x (N, C, ...): what relu_forward returns for
        the output of a conv or linear layer that left its bias out; C-contiguous."""

    def bias_relu_maxpool_forward(self, x, b, size: int, stride: int):
        """relu_maxpool_forward of x + b, b (C,) per channel: the same out and argmax as adding
        the bias first (each element rounded as the add rounds it)."""

    def sgd_update_all(self, params, grads, velocities, lr, momentum: float, nesterov: bool,
                       decays):
        """sgd_update on every parameter of a step in one pass: lists ``params``, ``grads``,
        ``velocities`` (None without momentum) and ``decays``; ``lr`` a (1,) device array of
        the parameters' dtype, read on the device (a replayed CUDA graph sees it change)."""

    def sum_of_squares_all(self, arrays, scale: float, plus):
        """plus + scale * sum(a**2) over every array of list ``arrays`` (one dtype), as a 0-d
        float64 array accumulated in float64; ``plus`` a 0-d float64 array on their device or
        None: L2's loss over every weight, added to the data loss, in a fixed number of
        launches (sum_of_squares per weight costs launches per weight and more to add up)."""


FUSIONS = tuple(name for name in vars(DeviceFusions) if not name.startswith("_"))


def fusion(impl, name: str):
    """Fused op ``name`` of :class:`DeviceFusions` in implementation ``impl`` (a module
    :func:`of` returns), or None where that device does not fuse it."""
    if name not in FUSIONS:
        raise ValueError(f"name={name!r}: expected one of {', '.join(FUSIONS)}")
    return getattr(impl, name, None)


def for_array_module(xp):
    """The implementation for array module ``xp``: :mod:`gpucnn.cpu` or :mod:`gpucnn.cuda`.

    Both lie below this module and never import it: the contract above is checked against them
    by tests/test_primitives.py, not imported by them.  gpucnn.cuda is looked up when first
    needed, not bound here: the tests' stand-in CuPy re-imports it."""
    if xp is np:
        return cpu
    # sys.modules first: an import statement per op call cost ~1 us
    module = sys.modules.get(f"{__package__}.cuda")
    if module is None:  # imported where CuPy arrays first appear
        from . import cuda as module
    return module


def of(*arrays):
    """The implementation for the device ``arrays`` live on."""
    return for_array_module(get_array_module(*arrays))
