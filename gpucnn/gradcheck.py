"""Central-difference numeric gradients, and the per-op checks behind ``gpucnn check``.

A check compares an op's analytic backward with the numeric gradient of the scalar
``sum(forward(inputs) * dout)`` for a random ``dout``, in float64, by the relative error
``||a - n|| / max(||a|| + ||n||, tiny)`` — a norm-wise measure that, unlike the elementwise one,
is not thrown by entries that are zero in both.
"""
from __future__ import annotations

import numpy as np

from . import functional as F
from .device import get_array_module, to_device, xp_for
from .rng import Generator

TOLERANCE = 1e-7  # float64 central differences land near 1e-10; a wrong gradient far above


def rel_error(a, b) -> float:
    """Norm-wise relative error between two arrays (0 when both are zero)."""
    xp = get_array_module(a, b)
    a, b = xp.asarray(a, dtype=xp.float64), xp.asarray(b, dtype=xp.float64)
    denom = float(xp.linalg.norm(a) + xp.linalg.norm(b))
    return 0.0 if denom == 0 else float(xp.linalg.norm(a - b)) / max(denom, 1e-300)


def numeric_gradient(f, x, dout=None, h=1e-5):
    """d/dx of ``sum(f(x) * dout)`` (or of a scalar ``f(x)``) by central differences.

    ``x`` is perturbed in place and restored; one element at a time, so keep it small.
    """
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: x must be contiguous
    if not x.flags.c_contiguous:
        raise ValueError("numeric_gradient: x must be C-contiguous (it is perturbed in place)")

    def value():
        out = f(x)
        return float(out) if dout is None else float(xp.sum(xp.asarray(out) * dout))

    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + h
        plus = value()
        flat[i] = old - h
        minus = value()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def _distinct(rng, shape):
    """Random values far apart relative to the finite-difference step (no max-pool near-ties)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n + rng.uniform(-0.4, 0.4, shape) / n) - 0.5


def _op_checks(rng):
    """(name, inputs, forward(*inputs) -> out, backward(dout, cache) -> grads of inputs)."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    mask_rng = Generator(seed=1)
    labels = rng.integers(0, 5, size=4)
    target = rng.standard_normal((3, 5))
    return [
        ("conv2d stride 2 pad 1", [x, w, b],
         lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, pad=1), F.conv2d_backward),
        ("conv2d stride 1 pad 0", [x, w, b],
         lambda x, w, b: F.conv2d_forward(x, w, b), F.conv2d_backward),
        ("maxpool2d 2x2 stride 2", [_distinct(rng, (2, 3, 6, 6))],
         lambda x: F.maxpool2d_forward(x, 2, 2), lambda d, c: (F.maxpool2d_backward(d, c),)),
        ("maxpool2d 3x3 stride 2", [_distinct(rng, (2, 2, 7, 8))],
         lambda x: F.maxpool2d_forward(x, 3, 2), lambda d, c: (F.maxpool2d_backward(d, c),)),
        ("relu", [rng.standard_normal((3, 4, 5))],
         F.relu_forward, lambda d, c: (F.relu_backward(d, c),)),
        ("sigmoid", [rng.standard_normal((3, 4, 5)) * 4],
         F.sigmoid_forward, lambda d, c: (F.sigmoid_backward(d, c),)),
        ("dropout p=0.3", [rng.standard_normal((4, 10))],
         lambda x: F.dropout_forward(x, 0.3, True, _replay(mask_rng)),
         lambda d, c: (F.dropout_backward(d, c),)),
        ("linear", [rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)],
         F.linear_forward, F.linear_backward),
        ("softmax cross-entropy", [rng.standard_normal((4, 5))],
         lambda s: F.softmax_cross_entropy(s, _on(labels, s)), None),
        ("mse", [rng.standard_normal((3, 5))],
         lambda p: F.mse_loss(p, _on(target, p)), None),
        ("l2 penalty reg=0.3", [rng.standard_normal((3, 4))],
         lambda w: _l2(w, 0.3), None),
    ]


def _on(a, like):
    return get_array_module(like).asarray(a)


def _l2(w, reg):
    loss, (dw,) = F.l2_penalty([w], reg)
    return loss, dw


def _replay(rng: Generator) -> Generator:
    """The same mask on every call: a copy of ``rng`` in its current state."""
    g = Generator(rng.seed, rng.stream)
    g.set_state(rng.state())
    return g


def check_ops(device: str = "cpu", seed: int = 0) -> list[tuple[str, str, float]]:
    """Gradient-check every op on ``device`` in float64; rows of (op, input name, rel error)."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, inputs, forward, backward, *arg_names in _op_checks(rng) + _deeper_checks(rng):
        inputs = [to_device(a, device) for a in inputs]
        xp = xp_for("cuda" if get_array_module(inputs[0]) is not np else "cpu")
        if backward is None:  # a loss: forward returns (scalar, gradient of its only input)
            _, analytic = forward(*inputs)
            numeric = numeric_gradient(lambda _: forward(*inputs)[0], inputs[0])
            rows.append((name, "input", rel_error(analytic, numeric)))
            continue
        out, cache = forward(*inputs)
        dout = xp.asarray(rng.standard_normal(out.shape))
        grads = backward(dout, cache)
        for k, (arg, analytic) in enumerate(zip(inputs, grads)):
            numeric = numeric_gradient(lambda _: forward(*inputs)[0], arg, dout)
            rows.append((name, (arg_names or [("x", "w", "b")])[0][k], rel_error(analytic, numeric)))
    return rows


# --- ops for deeper nets ----------------------------------------------------------------------

def _deeper_checks(rng):
    """Rows as in :func:`_op_checks`, plus the input names where they are not (x, w, b)."""
    bn = ("x", "gamma", "beta")
    x2, x4 = rng.standard_normal((5, 4)), rng.standard_normal((3, 2, 3, 4))
    g2, b2, g4, b4 = (rng.standard_normal(n) for n in (4, 4, 2, 2))
    run = [rng.standard_normal(4), rng.uniform(0.5, 2, 4), rng.standard_normal(2), rng.uniform(0.5, 2, 2)]
    return [
        ("batchnorm train", [x2, g2, b2],
         lambda x, g, b: F.batchnorm_forward(x, g, b, None, None, True), F.batchnorm_backward, bn),
        ("batchnorm eval", [x2, g2, b2],
         lambda x, g, b: F.batchnorm_forward(x, g, b, _on(run[0], x), _on(run[1], x), False),
         F.batchnorm_backward, bn),
        ("spatial batchnorm train", [x4, g4, b4],
         lambda x, g, b: F.spatial_batchnorm_forward(x, g, b, None, None, True),
         F.spatial_batchnorm_backward, bn),
        ("spatial batchnorm eval", [x4, g4, b4],
         lambda x, g, b: F.spatial_batchnorm_forward(x, g, b, _on(run[2], x), _on(run[3], x), False),
         F.spatial_batchnorm_backward, bn),
        ("spatial batchnorm train + relu", [x4, g4, b4],
         lambda x, g, b: F.spatial_batchnorm_forward(x, g, b, None, None, True, relu=True),
         F.spatial_batchnorm_backward, bn),
        ("spatial batchnorm eval + relu", [x4, g4, b4],
         lambda x, g, b: F.spatial_batchnorm_forward(x, g, b, _on(run[2], x), _on(run[3], x), False,
                                                     relu=True),
         F.spatial_batchnorm_backward, bn),
        ("residual sum + relu", [rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))],
         F.add_relu_forward, lambda d, c: (F.relu_backward(d, c),) * 2, ("a", "b")),
        ("avgpool2d 2x2 stride 2", [rng.standard_normal((2, 3, 6, 6))],
         lambda x: F.avgpool2d_forward(x, 2, 2), lambda d, c: (F.avgpool2d_backward(d, c),)),
        ("avgpool2d 3x3 stride 2", [rng.standard_normal((2, 2, 7, 8))],
         lambda x: F.avgpool2d_forward(x, 3, 2), lambda d, c: (F.avgpool2d_backward(d, c),)),
        ("global avgpool2d", [rng.standard_normal((2, 3, 4, 5))],
         F.global_avgpool2d_forward, lambda d, c: (F.global_avgpool2d_backward(d, c),)),
        ("leaky relu slope 0.1", [rng.standard_normal((3, 4, 5))],
         lambda x: F.leaky_relu_forward(x, 0.1), lambda d, c: (F.leaky_relu_backward(d, c),)),
        ("tanh", [rng.standard_normal((3, 4, 5)) * 2],
         F.tanh_forward, lambda d, c: (F.tanh_backward(d, c),)),
    ]
