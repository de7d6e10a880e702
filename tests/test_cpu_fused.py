"""The CPU's batch norm, ReLU passes and matmul (gpucnn/cpu_fused.py): the native kernels on every
instruction set, split over threads, in every layout, against the NumPy reference
(gpucnn.batchnorm, NumPy's relu expressions); and the fusions nn.Sequential and nn.Residual
plan (BatchNorm + ReLU, residual sum + ReLU) against the same layers run one by one.

Errors are relative to the largest reference magnitude: float64 1e-12, float32 1e-5 (the
native sums are blocked, not pairwise).  ReLU passes must match bit for bit.
"""
import numpy as np
import pytest

from gpucnn import batchnorm, cpu, cpu_fused, cpu_runtime, cpu_threads, native
from gpucnn import functional as F
from gpucnn import nn
from test_native import DTYPES, assert_close, layout

NATIVE = pytest.mark.skipif(not native.available, reason=f"gpucnn._native: {native.reason}")


@pytest.fixture(params=["avx512f", "avx2", "baseline"])
def isa(request):
    """Native kernels of one instruction set, split over 3 threads however small the work."""
    if not native.available:
        pytest.skip(f"gpucnn._native: {native.reason}")
    got = native.use_isa(request.param)
    try:
        if got != request.param:
            pytest.skip(f"this CPU lacks {request.param} (best below it: {got})")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("GPUCNN_CPU_THREADS", "3")
            mp.setattr(cpu_threads, "MIN_WORK_PER_THREAD", 1)
            mp.setattr(cpu_threads, "MIN_ELEMENTWISE_PER_THREAD", 1)
            yield got
    finally:
        native.use_isa("avx512f")


@pytest.fixture(params=["numpy", pytest.param("native", marks=NATIVE)])
def path(request, monkeypatch):
    monkeypatch.setattr(native, "available", request.param == "native")
    return request.param


def _bn_inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)  # a mean far from 0: the shift matters
    per = [rng.standard_normal(C).astype(dtype) for _ in range(3)]
    running_var = rng.uniform(0.5, 2, C).astype(dtype)
    return x, per[0], per[1], per[2], running_var, rng.standard_normal(shape).astype(dtype)


# (N, C, H, W): planes of 35 (vectors and a tail), 9 (the tail only on AVX-512), 256, a channel
# of 8320 values (blocked sums flushed mid-run), a single image, rows of 2
BN_SHAPES = [(4, 3, 5, 7), (2, 5, 3, 3), (3, 2, 16, 16), (130, 2, 8, 8), (1, 4, 6, 6),
             (3, 2, 8, 2)]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_native_batchnorm_matches_the_reference(isa, shape, dtype, train, relu):
    x, gamma, beta, rm, rv, dout = _bn_inputs(shape, np.dtype(dtype))
    want_rm, want_rv = rm.copy(), rv.copy()
    want, saved = batchnorm.forward(np, x, gamma, beta, want_rm, want_rv, train, 0.3, 1e-3, relu)
    out, native_saved = cpu.batchnorm_forward(x, gamma, beta, rm, rv, train, 0.3, 1e-3, relu)
    assert isinstance(native_saved, cpu_fused._Native)
    assert_close(out, want)
    assert_close(rm, want_rm)
    assert_close(rv, want_rv)
    if relu:  # the masks agree (no value sits within rounding of 0), so the gradients must
        np.testing.assert_array_equal(out > 0, want > 0)
    for need_dx in (True, False):
        got = cpu.batchnorm_backward(dout, native_saved, need_dx)
        ref = batchnorm.backward(dout, saved, need_dx)
        assert (got[0] is None) == (not need_dx)
        for g, r in zip(got, ref):
            if r is not None:
                assert g.dtype == x.dtype
                assert_close(g, r)


@pytest.mark.parametrize("kind", ["cnhw", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_batchnorm_reads_any_layout(isa, kind, dtype):
    x, gamma, beta, rm, rv, dout = _bn_inputs((3, 4, 5, 6), np.dtype(dtype), seed=1)
    want, saved = batchnorm.forward(np, x, gamma, beta, None, None, True, 0.1, 1e-5, True)
    out, native_saved = cpu.batchnorm_forward(layout(x, kind), gamma, beta, None, None, True,
                                              0.1, 1e-5, True)
    assert_close(out, want)
    assert out.flags.c_contiguous or kind == "cnhw"
    for got, ref in zip(cpu.batchnorm_backward(layout(dout, kind), native_saved, True),
                        batchnorm.backward(dout, saved, True)):
        assert_close(got, ref)


def test_small_planes_and_features_take_the_reference():
    x, gamma, beta, rm, rv, _ = _bn_inputs((4, 3, 2, 2), np.dtype(np.float32))
    assert not isinstance(cpu.batchnorm_forward(x, gamma, beta, rm, rv, True, 0.1, 1e-5,
                                                False)[1], cpu_fused._Native)
    assert not isinstance(cpu.batchnorm_forward(x[:, :, 0, 0], gamma, beta, rm, rv, True, 0.1,
                                                1e-5, False)[1], cpu_fused._Native)


# --- the elementwise passes -------------------------------------------------------------------

def _special(shape, dtype, seed):
    """Normal values with NaN, +-inf, +-0.0 mixed in."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    for k, v in enumerate((np.nan, np.inf, -np.inf, 0.0, -0.0)):
        flat[k::11] = v
    return a


@pytest.mark.parametrize("kind", ["nchw", "cnhw", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
@np.errstate(invalid="ignore")  # inf * 0 in the references: NaN, as in the kernels
def test_relu_passes_equal_numpy_bit_for_bit(isa, kind, dtype):
    shape = (3, 5, 29, 97)  # 42195 elements: the native pool's 4096-element blocks, a tail
    x, d, s = (layout(_special(shape, dtype, k), kind) for k in range(3))
    out = cpu.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert not np.signbit(out).any()  # -0.0 -> +0.0, as np.maximum(-0.0, 0)
    np.testing.assert_array_equal(cpu.relu_backward(d, out), d * (out > 0))
    summed = cpu.add_relu_forward(x, s)
    np.testing.assert_array_equal(summed, np.maximum(x + s, 0))
    np.testing.assert_array_equal(cpu.relu_backward(d, summed), d * (summed > 0))


@np.errstate(invalid="ignore")
def test_relu_passes_with_mixed_layouts_or_dtypes_take_numpy():
    a = _special((2, 3, 4, 5), np.float32, 0)
    b = layout(a, "cnhw")
    np.testing.assert_array_equal(cpu.add_relu_forward(a, b), np.maximum(a + b, 0))
    d = a.astype(np.float64)
    got = cpu.relu_backward(d, a)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, d * (a > 0))


@pytest.mark.skipif(not native.available, reason=f"gpucnn._native: {native.reason}")
def test_native_entry_points_reject_bad_buffers_in_one_line():
    x = np.zeros((2, 3, 4, 4), np.float32)
    c = np.zeros(3, np.float32)
    stats = np.zeros((4, 3), np.float32)
    cases = [
        (lambda: native.batchnorm_forward(x, x.astype(np.float64), c, c, c, c, stats, True, 0.1,
                                          1e-5, False), r"^out: expected x's dtype$"),
        (lambda: native.batchnorm_forward(x, np.empty_like(x), c[:2], c, c, c, stats, True, 0.1,
                                          1e-5, False), r"^gamma: expected 3 elements of x's dtype$"),
        (lambda: native.batchnorm_forward(x, np.empty_like(x), c, c, None, None, stats, False,
                                          0.1, 1e-5, False),
         r"^running_mean=None: expected 3 elements of x's dtype$"),
        (lambda: native.batchnorm_forward(x[..., ::2], np.empty((2, 3, 4, 2), np.float32), c, c,
                                          c, c, stats, True, 0.1, 1e-5, False),
         r"^x\.strides: expected unit stride along W$"),
        (lambda: native.batchnorm_forward(x, np.empty_like(x), c, c, c, c, stats[:3], True, 0.1,
                                          1e-5, False), r"^expected arrays of one size$"),
        (lambda: native.batchnorm_backward(x, x, stats, None, c, c, True, False, c0=0, c1=4),
         r"^c0=0, c1=4: expected integers 0 <= c0 <= c1 <= C=3$"),
        (lambda: native.relu_backward(x, x, x.astype(np.float64)),
         r"^dx\.format=d: expected float32 or float64, the first array's$"),
        (lambda: native.add_relu(x, x[:1], x), r"^expected arrays of one size$"),
    ]
    for call, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            call()
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        native.relu_forward(x, readonly)


# --- the fusions nn.Sequential and nn.Residual plan -------------------------------------------

def _resnet_block(dtype, seed=0):
    rng = np.random.default_rng(seed)
    kw = dict(dtype=dtype, rng=rng)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, **kw), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, **kw),
                                  nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
                                  nn.Conv2d(4, 4, 3, padding=1, **kw),
                                  nn.BatchNorm2d(4, dtype=dtype))), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, **kw),
                                  nn.BatchNorm2d(6, dtype=dtype)), nn.Conv2d(4, 6, 1, 2, **kw)),
        nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(6, 3, **kw))


def _unfused(module, x):
    """module's forward with every layer run by itself (no fusion), and its backward."""
    if isinstance(module, nn.Sequential):
        for layer in module.layers:
            x = _unfused(layer, x)
        return x
    if isinstance(module, nn.Residual):
        short = x if module.projection is None else _unfused(module.projection, x)
        return _unfused(module.body, x) + short
    return module.forward(x)


def _unfused_backward(module, dout):
    if isinstance(module, nn.Sequential):
        for layer in reversed(module.layers):
            dout = _unfused_backward(layer, dout)
        return dout
    if isinstance(module, nn.Residual):
        dx = _unfused_backward(module.body, dout)
        return dx + (dout if module.projection is None
                     else _unfused_backward(module.projection, dout))
    return module.backward(dout)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_resnet_equals_its_layers_run_one_by_one(path, dtype, mode):
    x = np.random.default_rng(1).standard_normal((5, 3, 8, 8)).astype(dtype)
    dout = np.random.default_rng(2).standard_normal((5, 3)).astype(dtype)
    fused, plain = _resnet_block(dtype), _resnet_block(dtype)
    for net in (fused, plain):
        net.train(mode == "train")
    assert fused._covered  # the plan fused the ReLUs after batch norm and the residual sums
    out = fused.forward(x)
    want = _unfused(plain, x)
    assert_close(out, want)
    dx = fused.backward(dout)
    want_dx = _unfused_backward(plain, dout)
    assert_close(dx, want_dx)
    grads, want_grads = fused.gradients(), plain.gradients()
    assert grads.keys() == want_grads.keys()
    for name in grads:
        assert_close(grads[name], want_grads[name])
    for (name, a), (_, b) in zip(fused.named_buffers(), plain.named_buffers()):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_convs_with_their_relus_fused_equal_the_layers_run_one_by_one(path, dtype):
    """A Conv2d and the ReLU after it run as one op where no pool follows (the native conv
    clamps as it stores); before a pool the ReLU goes with the pool as before."""
    def net():
        kw = dict(dtype=dtype, rng=np.random.default_rng(0))
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, **kw), nn.ReLU(),
                             nn.Conv2d(4, 6, 3, stride=2, padding=1, **kw), nn.ReLU(),
                             nn.Conv2d(6, 5, 1, **kw), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(20, 3, **kw))
    fused, plain = net(), net()
    assert fused._steps[:3] == [(0, 1), (2, 3), (4, 6)] and fused._covered == {1, 3, 5}
    x = np.random.default_rng(1).standard_normal((5, 3, 8, 8)).astype(dtype)
    dout = np.random.default_rng(2).standard_normal((5, 3)).astype(dtype)
    assert_close(fused.forward(x), _unfused(plain, x))
    assert_close(fused.backward(dout), _unfused_backward(plain, dout))
    grads, want_grads = fused.gradients(), plain.gradients()
    assert grads.keys() == want_grads.keys()
    for name in grads:
        assert_close(grads[name], want_grads[name])


def test_eval_mode_folds_each_batchnorm_into_the_conv_before_it():
    """Eval: Conv2d + BatchNorm2d [+ ReLU] is one step (a ReLU before a pool still goes with
    the pool); training keeps the batch norm's own step, whose statistics change."""
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
              nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5), nn.Flatten()]
    net = nn.Sequential(*layers)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    net.forward(x)
    assert net._steps == [(0, 0), (1, 2), (3, 3), (4, 4), (5, 6), (7, 7), (8, 8), (9, 9)]
    net.eval()
    net.forward(x)
    assert net._steps == [(0, 2), (3, 4), (5, 6), (7, 8), (9, 9)]
    assert net._covered == {1, 2, 4, 5, 8}


def test_conv_relu_refuses_a_bias_left_to_the_next_op():
    with pytest.raises(ValueError, match="^relu=True or bn adds the bias itself: expected add_bias=True"):
        nn.Conv2d(1, 1, 1).forward(np.ones((1, 1, 2, 2), np.float32), add_bias=False, relu=True)


def test_the_plan_gives_a_relu_before_a_pool_to_the_pool():
    layers = [nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Residual(nn.Sequential()),
              nn.ReLU(), nn.BatchNorm2d(2), nn.ReLU()]
    net = nn.Sequential(*layers)
    assert net._steps == [(0, 0), (1, 2), (3, 4), (5, 6)]
    assert net._covered == {1, 4, 6}
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = net.forward(x)
    assert out.shape == (2, 2, 2, 2) and (out >= 0).all()
    assert net.backward(np.ones_like(out)).shape == x.shape


def test_residual_relu_forward_and_its_errors():
    block = nn.Residual(nn.Sequential())
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(block.forward(x), 2 * x)
    np.testing.assert_array_equal(block.forward(x, relu=True), [[0.0, 4.0]])
    np.testing.assert_array_equal(block.backward(np.ones_like(x)), [[0.0, 2.0]])
    with pytest.raises(RuntimeError, match="Residual.backward called twice after one forward"):
        block.backward(np.ones_like(x))
    with pytest.raises(ValueError, match=r"^b.shape=\(1, 3\) \(float64\): expected a's \(1, 2\)"):
        F.add_relu_forward(x, np.zeros((1, 3)))


# --- matmul -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_split_over_threads_equals_one_gemm(isa, dtype):
    """Splits by rows of a (a larger) or columns of b; transposed views as the layers pass."""
    rng = np.random.default_rng(5)
    for m, k, n in ((50, 300, 40), (300, 50, 40), (5, 40, 300), (1, 7, 9), (9, 7, 1), (3, 1, 4)):
        a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        want = a.astype(np.float64) @ b.astype(np.float64)
        for x, y in ((a, b), (np.asfortranarray(a), b), (a.T.copy().T, np.asfortranarray(b))):
            got = cpu.matmul(x, y)
            assert got.dtype == dtype and got.flags.c_contiguous
            assert_close(got, want)


def test_matmul_keeps_openblas_on_the_calling_thread_and_restores_it(monkeypatch):
    calls = cpu_runtime._thread_calls()
    if calls is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    seen, real, real_native = [], np.matmul, native.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: (seen.append(calls[0]()), real(*a, **k))[1])
    monkeypatch.setattr(native, "matmul",
                        lambda *a, **k: (seen.append(calls[0]()), real_native(*a, **k))[1])
    before = calls[0]()
    calls[1](2)
    try:
        a = np.ones((400, 300))
        np.testing.assert_array_equal(cpu.matmul(a, a.T), np.full((400, 400), 300.0))
        np.testing.assert_array_equal(cpu.matmul(a[:, ::2], a[:, ::2].T),
                                      np.full((400, 400), 150.0))  # BLAS can't: NumPy's
        assert calls[0]() == 2
    finally:
        calls[1](before)
    assert seen and set(seen) == {1}


@NATIVE
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_matmul_declines_what_blas_cannot_read_and_checks_its_arguments(dtype):
    if cpu_runtime.cblas_gemm() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: the native matmul always declines")
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((6, 8)).astype(dtype), rng.standard_normal((8, 5)).astype(dtype)
    want = a.astype(np.float64) @ b
    for x, y in ((a, b), (a.T.copy().T, b), (a, np.asfortranarray(b)), (a[:1], b),
                 (a[:, :1], b[:1]), (a[:, ::2][:1], b[::2])):  # one row: any stride
        for by_rows in (True, False):
            out = np.empty((x.shape[0], y.shape[1]), dtype)
            assert native.matmul(x, y, out, by_rows=by_rows, parts=3)
            assert_close(out, x.astype(np.float64) @ y)
    out = np.full((6, 5), 7, dtype)
    assert not native.matmul(a[:, ::2], b[::2], out)  # no unit stride
    assert not native.matmul(np.broadcast_to(a[:1], (6, 8)), b, out)  # rows overlap
    np.testing.assert_array_equal(out, 7)
    assert_close(cpu.matmul(a[:, ::2], b[::2]), a[:, ::2].astype(np.float64) @ b[::2])
    assert_close(cpu.matmul(a, b), want)
    other = np.float32 if dtype == np.float64 else np.float64
    for call, message in (
            (lambda: native.matmul(a, b[:7], out), r"^a, b, out: expected shapes \(M, K\), "
                                                   r"\(K, N\), \(M, N\), each at least 1$"),
            (lambda: native.matmul(a, b.astype(other), out),
             r"^b: expected a 2-D float32 or float64 array of a's dtype$"),
            (lambda: native.matmul(a[None], b, out), r"^a: expected a 2-D float32 or float64"),
            (lambda: native.matmul(a, b, out.T.copy().T), "not C-contiguous")):
        with pytest.raises((ValueError, TypeError), match=message):
            call()
