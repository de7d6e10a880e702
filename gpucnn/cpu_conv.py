"""The CPU's convolution by the native kernels (:mod:`gpucnn.native`): how a convolution's
images, filters and two gradients are cut into parts for the worker threads
(:mod:`gpucnn.cpu_threads`).  :mod:`gpucnn.cpu` calls it when the extension is built and keeps
the NumPy reference (im2col + GEMM) every native path is tested against."""
from __future__ import annotations

import numpy as np

from . import native
from .cpu_runtime import one_blas_thread
from .cpu_threads import parts

# A convolution's work for cpu_threads.parts, in the output elements of an elementwise pass it
# weighs as: its FMAs / 16, so a thread gets a share from 1M FMAs (~13 us on one core; the
# native pool hands a part over in 1-2 us).  At / 128 the 3x3 24 -> 24 convs on 11x11 of the
# suite's stem7 b16 (10M FMAs) ran on one thread: two parts took 195 us against 333, and 64
# images of 16 -> 16 on 8x8 220 against 418 (wall clock, 2-vCPU Zen 3).
FMAS_PER_ELEMENT = 16


def conv_work(outputs: int, w) -> int:
    """outputs (of dout or dx, or out) times the taps each takes, in elementwise units."""
    return outputs * int(np.prod(w.shape[1:])) // FMAS_PER_ELEMENT


def native_conv_forward(x, w, b, stride, pad, relu, out_shape):
    """out (N, F, OH, OW) of out_shape = conv2d(x, w, b) (relu of it where ``relu``)."""
    out = np.empty(out_shape, dtype=x.dtype)
    with one_blas_thread():
        native.conv2d_forward(x, w, b, stride, pad, out=out, relu=relu,
                              parts=parts(x.shape[0], conv_work(out.size, w)))
    return out


# Fewer images a part: the weight gradient's parts take filters (each copies every image in,
# sums the whole batch), not images.  4 images a part, 2 threads: 5x5 s2 48 -> 64 on 16x16 0.99
# ms against 1.34; 64: 3x3 s2 16 -> 32 on 14x14 1.17 against 0.95.
MIN_IMAGES_PER_WGRAD_PART = 16


# Two threads and a small batch: one on the weight gradient, one on dx, at once, rather than both
# on one then the other -- each part of either pays the weight transforms and copies again.
# Against the latter, 8 images, 2 threads: 3x3 s2 32 -> 48 on 32x32 0.91x, 64 -> 64 on 8x8
# 0.89x, 24 -> 24 on 12x12 (16 images) 0.81x, 32 -> 64 on 16x16 1.00-1.03x; 5x5 6 -> 16 on
# 14x14 1.14-1.16x (dx of 6 channels, most of its lanes idle, takes twice the weight gradient:
# hence 8 or more channels).  Training steps: vgg b8 0.95x, stem7 b16 0.96x, resnet32 b8 and
# all-conv b8 0.99x.
BESIDE_MIN_CHANNELS = 8


def native_conv_backward(dout, x, w, x_shape, stride, pad, need_dx, need_db):
    """(dx or None, dw, db or None) of conv2d(x, w) from dout, the parts chosen as above."""
    F, C, KH, KW = w.shape
    N = x_shape[0]
    k = parts(N, conv_work(dout.size, w))
    small = N < MIN_IMAGES_PER_WGRAD_PART * k
    # by filters (whole blocks of 4 each) the result is one part's, bit for bit
    by_filters = small and F % (4 * k) == 0
    with one_blas_thread():
        if need_dx and small and k == 2 and C >= BESIDE_MIN_CHANNELS:
            dx = np.empty(x_shape, dtype=x.dtype)
            dw, db = native.conv2d_backward_weight(x, dout, KH, KW, stride, pad, parts=k,
                                                   input_grad=(w, dx))
            return dx, dw, db if need_db else None
        dw, db = native.conv2d_backward_weight(x, dout, KH, KW, stride, pad, parts=k,
                                               by_filters=by_filters)
        dx = native.conv2d_backward_input(dout, w, x_shape, stride, pad, parts=k) if need_dx else None
    return dx, dw, db if need_db else None
