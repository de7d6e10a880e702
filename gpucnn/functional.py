"""The math: forward and backward of every layer, written once against ``xp`` (numpy or cupy).

Each forward returns ``(out, cache)`` and each backward takes ``(dout, cache)``, as in CS231n's
``layers.py``.  Shapes are NCHW.  Conventions (binding, from the seeds): convolution is
cross-correlation; dropout's ``p`` is the probability of *dropping*, with inverted 1/(1-p)
scaling; max-pool ties send the gradient to the first maximum in row-major window order; L2 is
``0.5 * reg * sum(W**2)`` on weights only.

Only im2col/col2im and max-pool have per-device code (:mod:`gpucnn.cpu`, :mod:`gpucnn.cuda`);
everything else is array code that NumPy and CuPy both run, except that on CuPy arrays relu,
sigmoid, bias gradients and softmax cross-entropy take fused kernels from :mod:`gpucnn.cuda`.
"""
from __future__ import annotations

import numbers

import numpy as np

from .backend import Generator, get_array_module


# --- argument checks at the public boundary ---------------------------------------------------

def _check_array(name, a, ndim=None, min_ndim=None):
    xp = get_array_module(a)
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{name}: expected a numpy or cupy array, got {type(a).__name__}")
    if a.dtype.kind != "f":
        raise TypeError(f"{name}.dtype={a.dtype}: expected a floating dtype (float32 or float64)")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected {ndim} dimensions")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected at least {min_ndim} dimensions")
    return xp


def _check_int(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{name}={v!r}: expected an integer >= {minimum}")
    return int(v)


def _check_same_device(**arrays):
    modules = {n: get_array_module(a).__name__ for n, a in arrays.items() if a is not None}
    if len(set(modules.values())) > 1:
        where = ", ".join(f"{n} on {'cuda' if m == 'cupy' else 'cpu'}" for n, m in modules.items())
        raise ValueError(f"arrays live on different devices ({where}); move them with .to()")


def _check_dout(dout, shape):
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout.shape={tuple(dout.shape)}: expected {tuple(shape)}, the forward output's")


def _primitives(xp):
    if xp is np:
        from . import cpu

        return cpu
    from . import cuda

    return cuda


# --- convolution ------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride=1, pad=0):
    """2-D cross-correlation.

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> out (N, F, OH, OW) with
    OH = (H + 2*pad - KH) // stride + 1 (likewise OW).  Computed as one GEMM over im2col columns.
    """
    xp = _check_array("x", x, ndim=4)
    _check_array("w", w, ndim=4)
    if b is not None:
        _check_array("b", b, ndim=1)
    _check_same_device(x=x, w=w, b=b)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"w.shape={tuple(w.shape)}: expected {C} input channels to match "
                         f"x.shape={tuple(x.shape)}")
    if b is not None and b.shape[0] != F:
        raise ValueError(f"b.shape={tuple(b.shape)}: expected ({F},), one bias per filter")
    if KH > H + 2 * pad or KW > W + 2 * pad:
        raise ValueError(f"kernel {KH}x{KW} is larger than the padded input "
                         f"{H + 2 * pad}x{W + 2 * pad} (x.shape={tuple(x.shape)}, pad={pad})")
    if x.dtype != w.dtype:
        raise TypeError(f"x.dtype={x.dtype} and w.dtype={w.dtype}: expected the same dtype")
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    cols = _primitives(xp).im2col(x, KH, KW, stride, pad)  # (C*KH*KW, N*OH*OW)
    out = w.reshape(F, -1) @ cols  # (F, N*OH*OW)
    if b is not None:
        out += b[:, None]
    out = out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3)
    return out, (x.shape, cols, w, b is not None, stride, pad)


def conv2d_backward(dout, cache, need_dx=True):
    """dout (N, F, OH, OW) -> dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None.

    dw = dout' @ cols^T and db = sum of dout over all axes but F (seed 002); dx is col2im of
    w^T @ dout', which equals the full convolution of dout with the flipped kernel (seed 003).
    ``need_dx=False`` skips the input gradient (nobody needs dx of the data).
    """
    x_shape, cols, w, has_bias, stride, pad = cache
    xp = _check_array("dout", dout, ndim=4)
    F, C, KH, KW = w.shape
    N = x_shape[0]
    _check_dout(dout, (N, F) + tuple(dout.shape[2:]))
    dmat = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*OH*OW)
    if not has_bias:
        db = None
    else:
        db = dmat.sum(axis=1) if xp is np else _primitives(xp).bias_grad(dout)
    dw = (dmat @ cols.T).reshape(w.shape)
    dx = None
    if need_dx:
        dcols = w.reshape(F, -1).T @ dmat
        dx = _primitives(xp).col2im(dcols, x_shape, KH, KW, stride, pad)
    return dx, dw, db


# --- pooling ----------------------------------------------------------------------------------

def maxpool2d_forward(x, size=2, stride=None):
    """Max over size x size windows every ``stride`` (default ``size``; overlapping allowed).

    x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - size) // stride + 1.
    """
    xp = _check_array("x", x, ndim=4)
    size = _check_int("size", size, 1)
    stride = size if stride is None else _check_int("stride", stride, 1)
    if size > x.shape[2] or size > x.shape[3]:
        raise ValueError(f"size={size}: larger than the input x.shape={tuple(x.shape)}")
    out, argmax = _primitives(xp).maxpool_forward(x, size, stride)
    return out, (x.shape, argmax, size, stride)


def maxpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W); each window's gradient goes to its first maximum."""
    x_shape, argmax, size, stride = cache
    xp = _check_array("dout", dout, ndim=4)
    _check_dout(dout, argmax.shape)
    return _primitives(xp).maxpool_backward(dout, argmax, x_shape, size, stride)


# --- activations ------------------------------------------------------------------------------

def relu_forward(x):
    """max(x, 0), any shape."""
    xp = _check_array("x", x)
    out = xp.maximum(x, 0) if xp is np else _primitives(xp).relu_forward(x)
    return out, out


def relu_backward(dout, cache):
    """dout where the output was positive, else 0 (seed 003)."""
    out = cache
    _check_dout(dout, out.shape)
    xp = get_array_module(dout)
    if xp is not np:
        return _primitives(xp).relu_backward(dout, out)
    return dout * (out > 0)


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xp = _check_array("x", x)
    if xp is not np:
        out = _primitives(xp).sigmoid_forward(x)
        return out, out
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out, out


def sigmoid_backward(dout, cache):
    out = cache
    _check_dout(dout, out.shape)
    xp = get_array_module(dout)
    if xp is not np:
        return _primitives(xp).sigmoid_backward(dout, out)
    return dout * out * (1 - out)


# --- dropout ----------------------------------------------------------------------------------

def dropout_forward(x, p, train, rng: Generator | None):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the rest
    scaled by 1/(1-p); in evaluation (or with p == 0) the identity.

    The mask comes from ``rng`` (a :class:`gpucnn.backend.Generator`), so the same seed gives
    the same mask on every device.
    """
    xp = _check_array("x", x)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"p={p!r}: expected a drop probability in [0, 1)")
    if not train or p == 0:
        return x, None
    if not isinstance(rng, Generator):
        raise TypeError(f"rng={rng!r}: dropout in training needs a gpucnn.backend.Generator")
    mask = rng.keep_mask(x.shape, p, xp)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return x * mask * scale, (mask, scale)


def dropout_backward(dout, cache):
    """Reuses the forward mask: dx = dout * mask / (1 - p)."""
    if cache is None:
        return dout
    mask, scale = cache
    _check_dout(dout, mask.shape)
    return dout * mask * scale


# --- fully connected --------------------------------------------------------------------------

def linear_forward(x, w, b):
    """x (N, d1, ..., dk) flattened to (N, D), w (D, M), b (M,) or None -> out (N, M)."""
    _check_array("x", x, min_ndim=1)
    _check_array("w", w, ndim=2)
    _check_same_device(x=x, w=w, b=b)
    N = x.shape[0]
    x2 = x.reshape(N, -1)
    if x2.shape[1] != w.shape[0]:
        raise ValueError(f"x.shape={tuple(x.shape)} flattens to {x2.shape[1]} features but "
                         f"w.shape={tuple(w.shape)} expects {w.shape[0]}")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"b.shape={tuple(b.shape)}: expected ({w.shape[1]},)")
    out = x2 @ w
    if b is not None:
        out += b
    return out, (x.shape, x2, w, b is not None)


def linear_backward(dout, cache, need_dx=True):
    """dout (N, M) -> dx (shape of x) or None, dw (D, M), db (M,) or None."""
    x_shape, x2, w, has_bias = cache
    _check_dout(dout, (x_shape[0], w.shape[1]))
    dw = x2.T @ dout
    xp = get_array_module(dout)
    if not has_bias:
        db = None
    else:
        db = dout.sum(axis=0) if xp is np else _primitives(xp).bias_grad(dout)
    dx = (dout @ w.T).reshape(x_shape) if need_dx else None
    return dx, dw, db


# --- losses -----------------------------------------------------------------------------------

def _check_labels(y, n, num_classes):
    xp = get_array_module(y)
    if not isinstance(y, xp.ndarray) or y.dtype.kind not in "iu":
        raise TypeError(f"y: expected an integer array of class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (n,):
        raise ValueError(f"y.shape={tuple(y.shape)}: expected ({n},), one label per row of scores")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y holds labels in [{int(y.min())}, {int(y.max())}]: expected "
                         f"[0, {num_classes - 1}] for {num_classes} classes")


def softmax_cross_entropy(scores, y):
    """Mean cross-entropy of softmax(scores) against integer labels.

    scores (N, K), y (N,) ints in [0, K) -> loss (scalar float), dscores (N, K).
    Stable: the row maximum is subtracted before exponentiating.
    """
    xp = _check_array("scores", scores, ndim=2)
    N, K = scores.shape
    _check_labels(y, N, K)
    if xp is not np:
        return _primitives(xp).softmax_cross_entropy(scores, y)  # fused kernel, one pass
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = xp.arange(N)
    loss = float(xp.log(sums[:, 0]).sum() - shifted[rows, y].sum()) / N
    dscores = exp / sums
    dscores[rows, y] -= 1
    dscores /= N
    return loss, dscores


def mse_loss(pred, target):
    """Mean squared error E = mean((pred - target)**2) over all n elements (seed 004).

    -> loss (scalar float), dpred = 2 * (pred - target) / n.
    """
    _check_array("pred", pred)
    _check_array("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"target.shape={tuple(target.shape)}: expected pred's shape {tuple(pred.shape)}")
    diff = pred - target
    return float((diff * diff).mean()), diff * (2.0 / diff.size)


def l2_penalty(weights, reg):
    """L2 regularisation over a list of weight arrays (never biases).

    -> loss = 0.5 * reg * sum(W**2) and the gradients reg * W, one per weight.
    """
    if isinstance(reg, bool) or not isinstance(reg, numbers.Real) or not reg >= 0:
        raise ValueError(f"reg={reg!r}: expected a non-negative number")
    loss = 0.0
    grads = []
    for w in weights:
        xp = get_array_module(w)
        if xp is np:
            loss += 0.5 * reg * _primitives(xp).sum_of_squares(w)
        else:
            flat = w.reshape(-1)
            loss += 0.5 * reg * float(xp.dot(flat.astype(xp.float64, copy=False), flat))
        grads.append(reg * w)
    return loss, grads
