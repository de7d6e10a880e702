"""The math: forward and backward of every layer, written once against ``xp`` (numpy or cupy).

Each forward returns ``(out, cache)`` and each backward takes ``(dout, cache)``, as in CS231n's
``layers.py``.  Shapes are NCHW.  Conventions (binding, from the source documents in
``shared/seeds``): convolution is cross-correlation; dropout's ``p`` is the probability of
*dropping*, with inverted 1/(1-p) scaling; max-pool ties send the gradient to the first maximum
in row-major window order; L2 is ``0.5 * reg * sum(W**2)`` on weights only.

There are no device branches here: what differs per device is a primitive of
:mod:`gpucnn.primitives` (``P = primitives.of(x)``), the rest is array code NumPy and CuPy both
run.  Devices: float arrays given to one op must live on one device (else a ValueError says to
move them with ``.to()``); integer class labels may live on the host and are moved to the
scores' device.  Losses are float64 scalars on the device (``float(loss)`` reads one).
"""
from __future__ import annotations


import numpy as np

from . import primitives
from .checks import check_int, check_probability, check_real
from .device import device_of, get_array_module
from .rng import Generator, drop_threshold


# --- argument checks at the public boundary ---------------------------------------------------

def _check_array(name, a, ndim=None, min_ndim=None):
    xp = get_array_module(a)
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{name}: expected a numpy or cupy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}.dtype={a.dtype}: expected float32 or float64")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected {ndim} dimensions")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected at least {min_ndim} dimensions")
    return xp


def _check_same_device(**arrays):
    devices = {n: device_of(a) for n, a in arrays.items() if a is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"arrays live on different devices ({where}); move them with .to()")


def _check_dout(dout, shape, like=None):
    """dout must have the forward output's shape and live where the forward's arrays do."""
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout.shape={tuple(dout.shape)}: expected {tuple(shape)}, the forward output's")
    if like is not None:
        _check_same_device(dout=dout, forward=like)


# --- convolution ------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride=1, pad=0, add_bias=True):
    """2-D cross-correlation.

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> out (N, F, OH, OW) with
    OH = (H + 2*pad - KH) // stride + 1 (likewise OW).  The algorithm is the device's (see
    ``conv2d_forward`` in gpucnn/cpu.py and the CUDA host code): one GEMM over im2col columns
    (seeds/002), or direct convolution.  ``add_bias=False`` leaves b out of ``out`` for the
    next op to add (``relu_forward``/``relu_maxpool2d_forward``'s ``bias``); the backward
    still returns db.
    """
    xp = _check_array("x", x, ndim=4)
    _check_array("w", w, ndim=4)
    if b is not None:
        _check_array("b", b, ndim=1)
    _check_same_device(x=x, w=w, b=b)
    stride = check_int("stride", stride, 1)
    pad = check_int("pad", pad, 0)
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
    out, saved = primitives.for_array_module(xp).conv2d_forward(x, w, b if add_bias else None,
                                                                stride, pad)
    return out, (x.shape, saved, w, b is not None, stride, pad)


def conv2d_backward(dout, cache, need_dx=True):
    """dout (N, F, OH, OW) -> dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None.

    dw = dout' @ cols^T and db = sum of dout over all axes but F (the im2col derivation,
    seeds/002); dx is col2im of w^T @ dout', which equals the full convolution of dout with the
    flipped kernel (seeds/003).
    ``need_dx=False`` skips the input gradient (nobody needs dx of the data).
    """
    x_shape, saved, w, has_bias, stride, pad = cache
    _check_array("dout", dout, ndim=4)
    F, C, KH, KW = w.shape
    N, _, H, W = x_shape
    _check_dout(dout, (N, F, primitives.out_size(H, KH, stride, pad),
                       primitives.out_size(W, KW, stride, pad)), w)
    return primitives.of(dout).conv2d_backward(dout, saved, w, x_shape, stride, pad,
                                               bool(need_dx), has_bias)


# --- pooling ----------------------------------------------------------------------------------

def _check_pool(name, x, size, stride):
    """-> (xp, size, stride) of a pooling op over ``x`` (N, C, H, W); stride None means size."""
    xp = _check_array(name, x, ndim=4)
    size = check_int("size", size, 1)
    stride = size if stride is None else check_int("stride", stride, 1)
    if size > x.shape[2] or size > x.shape[3]:
        raise ValueError(f"size={size}: larger than the input {name}.shape={tuple(x.shape)}")
    return xp, size, stride


def maxpool2d_forward(x, size=2, stride=None):
    """Max over size x size windows every ``stride`` (default ``size``; overlapping allowed).

    x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - size) // stride + 1.
    """
    xp, size, stride = _check_pool("x", x, size, stride)
    out, argmax = primitives.for_array_module(xp).maxpool_forward(x, size, stride)
    return out, (x.shape, argmax, size, stride)


def maxpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W); each window's gradient goes to its first maximum."""
    x_shape, argmax, size, stride = cache
    _check_array("dout", dout, ndim=4)
    _check_dout(dout, argmax.shape, argmax)
    return primitives.of(dout).maxpool_backward(dout, argmax, x_shape, size, stride)


def relu_maxpool2d_forward(x, size=2, stride=None, bias=None):
    """maxpool2d(relu(x)) in one pass: the same out and argmax as relu_forward then
    maxpool2d_forward, without materialising relu(x).  nn.Sequential fuses a ReLU followed by a
    MaxPool2d into this.  ``bias`` (C,): pool relu(x + bias), the bias of a conv that left it
    out (``add_bias=False``); one pass on CUDA, where the conv's add was a pass of its own."""
    xp, size, stride = _check_pool("x", x, size, stride)
    P = primitives.for_array_module(xp)
    fused = _with_bias(P, "bias_relu_maxpool_forward", x, bias)
    if fused is not None:
        out, argmax = fused(x, bias, size, stride)
    else:
        out, argmax = P.relu_maxpool_forward(_plus_bias(x, bias), size, stride)
    return out, (x.shape, argmax, out, size, stride)


def relu_maxpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W): dout * (out > 0) to each window's argmax."""
    x_shape, argmax, out, size, stride = cache
    _check_array("dout", dout, ndim=4)
    _check_dout(dout, argmax.shape, argmax)
    return primitives.of(dout).relu_maxpool_backward(dout, argmax, out, x_shape, size, stride)


# --- activations ------------------------------------------------------------------------------

def relu_forward(x, bias=None):
    """max(x, 0), any shape.  ``bias`` (C,): relu(x + bias) along axis 1, the bias of a conv or
    linear layer that left it out (``add_bias=False``); one pass on CUDA, not two."""
    xp = _check_array("x", x)
    P = primitives.for_array_module(xp)
    fused = _with_bias(P, "bias_relu_forward", x, bias)
    out = fused(x, bias) if fused is not None else P.relu_forward(_plus_bias(x, bias))
    return out, out


def _with_bias(P, name, x, bias):
    """Device ``P``'s fusion ``name`` when a ``bias`` (checked against x) is given, else None."""
    if bias is None:
        return None
    _check_array("bias", bias, ndim=1)
    _check_same_device(x=x, bias=bias)
    if x.ndim < 2 or bias.shape != (x.shape[1],) or bias.dtype != x.dtype:
        raise ValueError(f"bias.shape={tuple(bias.shape)} ({bias.dtype}): expected one "
                         f"{x.dtype} per channel (axis 1) of x.shape={tuple(x.shape)}")
    return primitives.fusion(P, name)


def _plus_bias(x, bias):
    """x + bias along axis 1 (x itself without one): what a layer's own bias add computes."""
    return x if bias is None else x + bias.reshape((1, -1) + (1,) * (x.ndim - 2))


def relu_backward(dout, cache):
    """dout where the output was positive, else 0 (seeds/003)."""
    out = cache
    _check_array("dout", dout)
    _check_dout(dout, out.shape, out)
    return primitives.of(dout).relu_backward(dout, out)


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xp = _check_array("x", x)
    out = primitives.for_array_module(xp).sigmoid_forward(x)
    return out, out


def sigmoid_backward(dout, cache):
    """dout * s * (1 - s) for the forward output s (seeds/001)."""
    out = cache
    _check_array("dout", dout)
    _check_dout(dout, out.shape, out)
    return primitives.of(dout).sigmoid_backward(dout, out)


# --- dropout ----------------------------------------------------------------------------------

def dropout_forward(x, p, train, rng: Generator | None):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the rest
    scaled by 1/(1-p); in evaluation (or with p == 0) the identity.

    The mask comes from ``rng`` (a :class:`gpucnn.rng.Generator`), so the same seed gives the
    same mask on every device.
    """
    xp = _check_array("x", x)
    p = check_probability("p", p)
    if not train or p == 0:
        return x, None
    if not isinstance(rng, Generator):
        raise TypeError(f"rng={rng!r}: dropout in training needs a gpucnn.rng.Generator")
    scale = x.dtype.type(1.0 / (1.0 - p))
    out, mask = primitives.for_array_module(xp).dropout_forward(
        x, rng.key, rng.reserve(x.size), drop_threshold(p), scale)
    return out, (mask, scale)


def dropout_backward(dout, cache):
    """Reuses the forward mask: dx = dout * mask / (1 - p)."""
    if cache is None:
        return dout
    mask, scale = cache
    _check_dout(dout, mask.shape, mask)
    return primitives.of(dout).dropout_backward(dout, mask, scale)


# --- fully connected --------------------------------------------------------------------------

def linear_forward(x, w, b, add_bias=True):
    """x (N, d1, ..., dk) flattened to (N, D), w (D, M), b (M,) or None -> out (N, M).
    ``add_bias=False`` leaves b out of ``out`` for the next op (``relu_forward``'s ``bias``);
    the backward still returns db."""
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
    out = primitives.of(x2).matmul(x2, w)
    if b is not None and add_bias:
        out += b
    return out, (x.shape, x2, w, b is not None)


def linear_backward(dout, cache, need_dx=True):
    """dout (N, M) -> dx (shape of x) or None, dw (D, M), db (M,) or None."""
    x_shape, x2, w, has_bias = cache
    _check_array("dout", dout, ndim=2)
    _check_dout(dout, (x_shape[0], w.shape[1]), w)
    impl = primitives.of(dout)
    dw = impl.matmul(x2.T, dout)
    db = impl.bias_grad(dout) if has_bias else None
    dx = impl.matmul(dout, w.T).reshape(x_shape) if need_dx else None
    return dx, dw, db


# --- losses -----------------------------------------------------------------------------------

def _labels_on(y, n, num_classes, like):
    """Integer labels checked and moved to ``like``'s device; labels on the GPU for scores on the
    CPU are a device mix like any other.  The range check runs only on host labels: checking
    device labels would read them back, a device-to-host sync every training step; the loss
    kernel makes the loss NaN for a label out of range instead (and the Trainer's divergence
    error names labels as a cause)."""
    if device_of(y) == "cuda":
        _check_same_device(y=y, scores=like)
    xp = get_array_module(y)
    if not isinstance(y, xp.ndarray) or y.dtype.kind not in "iu":
        raise TypeError(f"y: expected an integer array of class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (n,):
        raise ValueError(f"y.shape={tuple(y.shape)}: expected ({n},), one label per row of scores")
    if n and device_of(y) != "cuda":  # on the host: no sync
        lo, hi = (int(v) for v in xp.stack([y.min(), y.max()]).tolist())  # one read
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"y holds labels in [{lo}, {hi}]: expected [0, {num_classes - 1}] "
                             f"for {num_classes} classes")
    return get_array_module(like).asarray(y, dtype=np.int64)


def softmax_cross_entropy(scores, y):
    """Mean cross-entropy of softmax(scores) against integer labels.

    scores (N, K), y (N,) ints in [0, K) (on the host or scores' device) -> loss (float64 scalar
    on scores' device), dscores (N, K).  Stable: the row maximum is subtracted before
    exponentiating.  Host labels out of range raise a ValueError; device labels out of range
    make the loss (and their rows of dscores) NaN, as checking them would cost a sync.
    """
    _check_array("scores", scores, ndim=2)
    N, K = scores.shape
    y = _labels_on(y, N, K, scores)
    return primitives.of(scores).softmax_cross_entropy(scores, y)


def mse_loss(pred, target):
    """Mean squared error E = mean((pred - target)**2) over all n elements (seeds/004).

    -> loss (float64 scalar on pred's device), dpred = 2 * (pred - target) / n.
    """
    xp = _check_array("pred", pred)
    _check_array("target", target)
    _check_same_device(pred=pred, target=target)
    if pred.shape != target.shape:
        raise ValueError(f"target.shape={tuple(target.shape)}: expected pred's shape {tuple(pred.shape)}")
    diff = pred - target
    return xp.mean(diff * diff, dtype=np.float64), diff * (2.0 / diff.size)


def l2_loss(weights, reg, plus=None):
    """0.5 * reg * sum(W**2) over a list of weight arrays (float64 scalar on their device): the
    loss of :func:`l2_penalty` alone, for when the optimizer adds the gradient reg * W inside
    its update (``Optimizer.step``'s ``weight_decay``).  ``plus``, a float64 scalar loss on
    the weights' device (the data loss), is added to it: on CUDA in the same launch."""
    check_real("reg", reg, 0)
    _check_same_device(plus=plus, **{f"weights[{i}]": w for i, w in enumerate(weights)})
    fused = primitives.fusion(primitives.of(*weights), "sum_of_squares_all") if weights else None
    if fused is not None:
        return fused(weights, 0.5 * reg, plus)
    sums = [primitives.of(w).sum_of_squares(w) for w in weights]
    total = sums[0] if sums else 0.0
    for s in sums[1:]:  # not sum(): its 0 + first adds a step
        total = total + s
    loss = 0.5 * reg * total
    return loss if plus is None else plus + loss


def l2_penalty(weights, reg, add_to=None):
    """L2 regularisation over a list of weight arrays (never biases).

    -> loss = 0.5 * reg * sum(W**2) (float64 scalar on the weights' device) and the gradients
    reg * W, one per weight; with ``add_to`` (one gradient array per weight) they are added
    into those arrays in place, which are returned: no weight-sized temporaries, and on CUDA
    one launch per weight instead of two.
    """
    loss = l2_loss(weights, reg)
    if add_to is None:
        return loss, [reg * w for w in weights]
    if len(add_to) != len(weights):
        raise ValueError(f"add_to: {len(add_to)} arrays for {len(weights)} weights")
    for g, w in zip(add_to, weights):
        _check_dout(g, w.shape, w)
        primitives.of(g).add_scaled(g, reg, w)
    return loss, add_to


# --- ops for deeper nets ----------------------------------------------------------------------
# They live in functional_deeper (this file would pass 400 lines) and are re-exported here so
# that ``F.<op>`` stays the one place to find every op.  Imported last: that module imports the
# argument checks above.
from .functional_deeper import (  # noqa: E402,F401
    avgpool2d_backward, avgpool2d_forward, batchnorm_backward, batchnorm_forward,
    global_avgpool2d_backward, global_avgpool2d_forward, leaky_relu_backward, leaky_relu_forward,
    spatial_batchnorm_backward, spatial_batchnorm_forward, tanh_backward, tanh_forward)
