"""Every CUDA primitive against the NumPy path on the same random inputs: ``gpucnn check
--device cuda`` prints it, the GPU tests assert it.

:func:`compare_primitives` is written against any object with :mod:`gpucnn.cuda`'s functions and
two transfer functions, so the host emulation of the kernels (tests/emulation) runs it too.  It
lives here, above both devices, so that the CUDA package never imports the CPU one.
"""
from __future__ import annotations

import numpy as np

from . import cpu, primitives
from .device import import_cupy
from .rng import drop_threshold, stream_key


def _rel(a, b) -> float:
    """max |a - b| / max |b| (0.0 when both are all zeros); exact for bool and integer arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return float("inf")
    if b.dtype.kind in "biu":
        return float(np.mean(a != b)) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale else float(np.max(np.abs(a - b), initial=0.0))


def compare_cuda_with_numpy(dtype=np.float64, seed=0):
    """:mod:`gpucnn.cuda` on the GPU against NumPy -> [(op, max relative difference)]; 0.0 means
    identical (masks and argmax must be)."""
    cupy = import_cupy()
    return compare_primitives(primitives.for_array_module(cupy), cupy.asarray, cupy.asnumpy,
                              np.dtype(dtype), seed)


def compare_primitives(prims, to_dev, to_host, dtype, seed=0):
    """-> [(op, max relative difference, or the fraction of differing masks/argmax)]."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    rows = []

    def check(op, got, want):
        rows.append((op, _rel(to_host(got), want)))

    x = rng.standard_normal((3, 4, 9, 8)).astype(dt)
    kh, kw, stride, pad = 3, 2, 2, 1
    cols = cpu.im2col(x, kh, kw, stride, pad)
    check("im2col", prims.im2col(to_dev(x), kh, kw, stride, pad), cols)
    dcols = rng.standard_normal(cols.shape).astype(dt)
    check("col2im", prims.col2im(to_dev(dcols), x.shape, kh, kw, stride, pad),
          cpu.col2im(dcols, x.shape, kh, kw, stride, pad))

    xt = rng.integers(-2, 3, size=(2, 3, 11, 10)).astype(dt)  # few levels: many ties
    out, arg = cpu.maxpool_forward(xt, 3, 2)
    gout, garg = prims.maxpool_forward(to_dev(xt), 3, 2)
    check("maxpool_forward", gout, out)
    check("maxpool_forward argmax", garg, arg)
    dout = rng.standard_normal(out.shape).astype(dt)
    check("maxpool_backward", prims.maxpool_backward(to_dev(dout), to_dev(arg), xt.shape, 3, 2),
          cpu.maxpool_backward(dout, arg, xt.shape, 3, 2))

    out, arg = cpu.relu_maxpool_forward(xt, 3, 2)
    gout, garg = prims.relu_maxpool_forward(to_dev(xt), 3, 2)
    check("relu_maxpool_forward", gout, out)
    check("relu_maxpool_forward argmax", garg, arg)
    check("relu_maxpool_backward", prims.relu_maxpool_backward(to_dev(dout), to_dev(arg),
                                                               to_dev(out), xt.shape, 3, 2),
          cpu.relu_maxpool_backward(dout, arg, out, xt.shape, 3, 2))

    bc = rng.standard_normal(xt.shape[1]).astype(dt)  # a conv's bias left to the pool
    out, arg = cpu.relu_maxpool_forward(xt + bc.reshape(1, -1, 1, 1), 3, 2)
    gout, garg = prims.bias_relu_maxpool_forward(to_dev(xt), to_dev(bc), 3, 2)
    check("bias_relu_maxpool_forward", gout, out)
    check("bias_relu_maxpool_forward argmax", garg, arg)
    check("bias_relu_forward", prims.bias_relu_forward(to_dev(xt), to_dev(bc)),
          cpu.relu_forward(xt + bc.reshape(1, -1, 1, 1)))

    xb = (rng.standard_normal((3, 4, 5, 6)) * 2 + 1).astype(dt)  # planes big enough for C
    gb, bb, db = (rng.standard_normal(s).astype(dt) for s in (4, 4, xb.shape))
    for train, relu in ((True, False), (True, True), (False, True)):
        rm, rv = rng.standard_normal(4).astype(dt), rng.uniform(0.5, 2, 4).astype(dt)
        grm, grv = to_dev(rm), to_dev(rv)
        out, saved = cpu.batchnorm_forward(xb, gb, bb, rm, rv, train, 0.1, 1e-5, relu)
        gout, gsaved = prims.batchnorm_forward(to_dev(xb), to_dev(gb), to_dev(bb), grm, grv,
                                               train, 0.1, 1e-5, relu)
        what = f"batchnorm train={train} relu={relu}"
        check(f"{what} forward", gout, out)
        check(f"{what} running_mean", grm, rm)
        check(f"{what} running_var", grv, rv)
        for name, g, wv in zip(("dx", "dgamma", "dbeta"),
                               prims.batchnorm_backward(to_dev(db), gsaved, True),
                               cpu.batchnorm_backward(db, saved, True)):
            check(f"{what} backward {name}", g, wv)
    check("add_relu_forward", prims.add_relu_forward(to_dev(xb), to_dev(db)),
          cpu.add_relu_forward(xb, db))
    ma, mb = rng.standard_normal((7, 30)).astype(dt), rng.standard_normal((5, 30)).astype(dt)
    check("matmul", prims.matmul(to_dev(ma), to_dev(mb).T), cpu.matmul(ma, mb.T))

    w, b = rng.standard_normal((5, 4, kh, kw)).astype(dt), rng.standard_normal(5).astype(dt)
    out, saved = cpu.conv2d_forward(x, w, b, stride, pad)
    gout, gsaved = prims.conv2d_forward(to_dev(x), to_dev(w), to_dev(b), stride, pad)
    check("conv2d_forward", gout, out)
    check("conv2d_relu_forward", prims.conv2d_relu_forward(to_dev(x), to_dev(w), to_dev(b),
                                                           stride, pad)[0],
          cpu.conv2d_relu_forward(x, w, b, stride, pad)[0])
    dout = rng.standard_normal(out.shape).astype(dt)
    want = cpu.conv2d_backward(dout, saved, w, x.shape, stride, pad, True, True)
    got = prims.conv2d_backward(to_dev(dout), gsaved, to_dev(w), x.shape, stride, pad, True, True)
    for name, g, wv in zip(("dx", "dw", "db"), got, want):
        check(f"conv2d_backward {name}", g, wv)

    key, counter, n, thr = stream_key(seed, 7), 123457, 10007, drop_threshold(0.4)
    check("dropout_keep_mask", prims.dropout_keep_mask(key, counter, n, thr),
          cpu.dropout_keep_mask(key, counter, n, thr))
    xd, scale = rng.standard_normal((7, 13)).astype(dt), dt.type(1 / 0.6)
    (out, keep), (gout, gkeep) = (cpu.dropout_forward(xd, key, counter, thr, scale),
                                  prims.dropout_forward(to_dev(xd), key, counter, thr, scale))
    check("dropout_forward", gout, out)
    check("dropout_backward", prims.dropout_backward(to_dev(xd), gkeep, scale),
          cpu.dropout_backward(xd, keep, scale))

    a = (rng.standard_normal((5, 7, 3)) * 10).astype(dt)
    d = rng.standard_normal(a.shape).astype(dt)
    for name in ("relu", "sigmoid"):
        ref = getattr(cpu, f"{name}_forward")(a)
        check(f"{name}_forward", getattr(prims, f"{name}_forward")(to_dev(a)), ref)
        check(f"{name}_backward", getattr(prims, f"{name}_backward")(to_dev(d), to_dev(ref)),
              getattr(cpu, f"{name}_backward")(d, ref))

    g = rng.standard_normal((6, 5, 4, 3)).astype(dt)
    check("bias_grad", prims.bias_grad(to_dev(g)), cpu.bias_grad(g))

    # the products: cuBLAS's (matmul), then gemm.cu's with each operand stored as is (n) or
    # transposed (t), sizes off the 64 x 64 tile and the 16-wide K slice, and a split K
    a, b = rng.standard_normal((37, 75)).astype(dt), rng.standard_normal((75, 70)).astype(dt)
    want = (a.astype(np.float64) @ b).astype(dt)
    check("matmul", prims.matmul(to_dev(a), to_dev(b)), want)
    for ab in ("nn", "nt", "tn", "tt"):
        ga = to_dev(a) if ab[0] == "n" else to_dev(np.ascontiguousarray(a.T)).T
        gb = to_dev(b) if ab[1] == "n" else to_dev(np.ascontiguousarray(b.T)).T
        check(f"gemm {ab}", prims.gemm(ga, gb), want)
    a, b = rng.standard_normal((9, 3001)).astype(dt), rng.standard_normal((3001, 11)).astype(dt)
    check("gemm split K", prims.gemm(to_dev(a), to_dev(b)), (a.astype(np.float64) @ b).astype(dt))

    scores = (rng.standard_normal((9, 10)) * 5).astype(dt)
    y = rng.integers(0, 10, size=9)
    loss, ds = cpu.softmax_cross_entropy(scores, y)
    gloss, gds = prims.softmax_cross_entropy(to_dev(scores), to_dev(y))
    rows.append(("softmax_cross_entropy loss", abs(float(to_host(gloss)) - loss) / abs(loss)))
    check("softmax_cross_entropy dscores", gds, ds)
    # against a float64 sum, not cpu.sum_of_squares (~1e-7 for float32): the kernels' float64
    # accumulation must hold to float64's rounding
    ws = [rng.standard_normal(s).astype(dt) for s in ((7, 300), (3,), (33, 5, 5), (1,))]
    ss = [float(np.sum(w.astype(np.float64) ** 2)) for w in ws]
    rows.append(("sum_of_squares", abs(float(to_host(prims.sum_of_squares(to_dev(ws[0]))))
                                       - ss[0]) / ss[0]))
    total = 0.005 * sum(ss) + float(to_host(gloss))  # the device loss: its own error aside
    got = prims.sum_of_squares_all([to_dev(w) for w in ws], 0.005, gloss)
    rows.append(("sum_of_squares_all plus a loss", abs(float(to_host(got)) - total) / total))
    y0, xs = rng.standard_normal((5, 7)).astype(dt), rng.standard_normal((5, 7)).astype(dt)
    gy = to_dev(y0)
    prims.add_scaled(gy, 0.01, to_dev(xs))
    cpu.add_scaled(y0, 0.01, xs)
    check("add_scaled", gy, y0)
    for momentum, nesterov, decay in ((0.0, False, 0.0), (0.0, False, 0.01), (0.9, False, 0.01),
                                      (0.9, True, 0.0)):
        p, g, v = (rng.standard_normal((5, 7)).astype(dt) for _ in range(3))
        gp, gv = to_dev(p), to_dev(v)
        prims.sgd_update(gp, to_dev(g), gv if momentum else None, 0.05, momentum, nesterov, decay)
        cpu.sgd_update(p, g, v if momentum else None, 0.05, momentum, nesterov, decay)
        what = f"sgd_update momentum={momentum} nesterov={nesterov} decay={decay}"
        check(what, gp, p)
        check(f"{what} velocity", gv, v)
    # every parameter of a step in one launch: shapes and decays differ per parameter
    shapes, decays = ((4, 3), (7,), (2, 5, 3), (1,)), (0.01, 0.0, 0.02, 0.0)
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        ps, gs, vs = ([rng.standard_normal(s).astype(dt) for s in shapes] for _ in range(3))
        gps, gvs = [to_dev(p) for p in ps], [to_dev(v) for v in vs]
        prims.sgd_update_all(gps, [to_dev(g) for g in gs], gvs if momentum else None,
                             to_dev(np.array([0.05], dt)), momentum, nesterov, decays)
        for p, g, v, decay in zip(ps, gs, vs, decays):
            cpu.sgd_update_numpy(p, g, v if momentum else None, 0.05, momentum, nesterov, decay)
        what = f"sgd_update_all momentum={momentum} nesterov={nesterov}"
        check(what, np.concatenate([to_host(a).ravel() for a in gps]),
              np.concatenate([p.ravel() for p in ps]))
        if momentum:
            check(f"{what} velocity", np.concatenate([to_host(a).ravel() for a in gvs]),
                  np.concatenate([v.ravel() for v in vs]))
    return rows
