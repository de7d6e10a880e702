"""Losses: softmax cross-entropy over class scores, mean squared error, and the L2 penalty
(0.5 * reg * sum(W**2) over weights, never biases; seeds/002).  Loss values are float64 scalars
on the device (``float(loss)`` reads one)."""
from __future__ import annotations

import numpy as np

from .. import primitives
from ..checks import check_real
from ..device import device_of, get_array_module
from ._checks import check_array, check_dout, check_same_device


def _labels_on(y, n, num_classes, like):
    """Integer labels checked and moved to ``like``'s device; labels on the GPU for scores on the
    CPU are a device mix like any other.  The range check runs only on host labels: checking
    device labels would read them back, a device-to-host sync every training step; the loss
    kernel makes the loss NaN for a label out of range instead (and the Trainer's divergence
    error names labels as a cause)."""
    if device_of(y) == "cuda":
        check_same_device(y=y, scores=like)
    xp = get_array_module(y)
    if not isinstance(y, xp.ndarray) or y.dtype.kind not in "iu":
        raise TypeError(f"y: expected an integer array of class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (n,):
        raise ValueError(f"y.shape={tuple(y.shape)}: expected ({n},), one label per row of scores")
    if n and device_of(y) != "cuda":  # on the host: no sync
        lo, hi = (int(v) for v in xp.stack([y.min(), y.max()]).tolist())  # one read
        if lo < 0 or hi >= num_classes:
            i = int(np.argmax((y < 0) | (y >= num_classes)))
            raise ValueError(f"y[{i}]={int(y[i])}: expected a class label in [0, "
                             f"{num_classes - 1}] (scores has {num_classes} columns)")
    return get_array_module(like).asarray(y, dtype=np.int64)


def softmax_cross_entropy(scores, y, label_smoothing: float = 0.0):
    """Mean cross-entropy of softmax(scores) against integer labels.

    scores (N, K), y (N,) ints in [0, K) (on the host or scores' device) -> loss (float64 scalar
    on scores' device), dscores (N, K).  Stable: the row maximum is subtracted before
    exponentiating.  Host labels out of range raise a ValueError; device labels out of range
    make the loss (and their rows of dscores) NaN, as checking them would cost a sync.

    ``label_smoothing`` e in [0, 1) takes the target distribution (1 - e) * one-hot + e / K
    (torch's ``CrossEntropyLoss(label_smoothing=e)``).  Its loss is the plain one plus
    e * mean_i(s_iy - mean_k s_ik) and its gradient the plain one plus e / N * (one-hot - 1/K):
    the log-sum-exp cancels, so the fused kernel's result is corrected by a gather and a
    row mean, on the device.
    """
    check_array("scores", scores, ndim=2, batch=True)
    N, K = scores.shape
    label_smoothing = check_real("label_smoothing", label_smoothing, 0.0, 1.0)
    y = _labels_on(y, N, K, scores)
    loss, dscores = primitives.of(scores).softmax_cross_entropy(scores, y)
    if not label_smoothing or not N:
        return loss, dscores
    xp = get_array_module(scores)
    rows = xp.arange(N)
    picked = scores[rows, y]
    gap = xp.mean(picked - scores.mean(axis=1), dtype=np.float64)
    dscores[rows, y] += dscores.dtype.type(label_smoothing / N)
    dscores -= dscores.dtype.type(label_smoothing / (N * K))
    return loss + label_smoothing * gap, dscores


def mse_loss(pred, target):
    """Mean squared error E = mean((pred - target)**2) over all n elements (seeds/004).

    -> loss (float64 scalar on pred's device), dpred = 2 * (pred - target) / n.
    """
    xp = check_array("pred", pred, batch=True)
    check_array("target", target)
    check_same_device(pred=pred, target=target)
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
    check_same_device(plus=plus, **{f"weights[{i}]": w for i, w in enumerate(weights)})
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
        check_dout(g, w.shape, w)
        primitives.of(g).add_scaled(g, reg, w)
    return loss, add_to
