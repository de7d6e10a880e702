"""Fully connected layer: x flattened to (N, D) times w (D, M) plus b."""
from __future__ import annotations

from .. import primitives
from ._checks import check_array, check_dout, check_same_device


def linear_forward(x, w, b, add_bias=True):
    """x (N, d1, ..., dk) flattened to (N, D), w (D, M), b (M,) or None -> out (N, M).
    ``add_bias=False`` leaves b out of ``out`` for the next op (``relu_forward``'s ``bias``);
    the backward still returns db."""
    check_array("x", x, min_ndim=1, batch=True)
    check_array("w", w, ndim=2)
    check_same_device(x=x, w=w, b=b)
    N = x.shape[0]
    x2 = x.reshape(N, -1)
    if x2.shape[1] != w.shape[0]:
        raise ValueError(f"x.shape={tuple(x.shape)} flattens to {x2.shape[1]} features but "
                         f"w.shape={tuple(w.shape)} expects {w.shape[0]}")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"b.shape={tuple(b.shape)}: expected ({w.shape[1]},)")
    out = primitives.of(x).matmul(x2, w)
    if b is not None and add_bias:
        out += b
    return out, (x.shape, x2, w, b is not None)


def linear_backward(dout, cache, need_dx=True):
    """dout (N, M) -> dx (shape of x) or None, dw (D, M), db (M,) or None."""
    x_shape, x2, w, has_bias = cache
    check_array("dout", dout, ndim=2)
    check_dout(dout, (x_shape[0], w.shape[1]), w)
    P = primitives.of(dout)
    dw = P.matmul(x2.T, dout)
    db = P.bias_grad(dout) if has_bias else None
    dx = P.matmul(dout, w.T).reshape(x_shape) if need_dx else None
    return dx, dw, db
