"""The CUDA kernels' logic on the CPU: kernels/*.cu compiled by g++ against
tests/emulation/cuda_host.h, driven through ctypes by the same host code gpucnn.cuda uses
(gpucnn.cuda.host.Primitives), and compared with the NumPy path -- exactly for copies,
masks and argmax, to rounding for sums.

Each test runs under three launch configurations: few small blocks (so every grid-stride loop
wraps many times and reductions see more elements than threads), one thread per element with
256-thread blocks (more threads than elements on small inputs), and 64-thread blocks.
"""
import shutil

import numpy as np
import pytest

from gpucnn import cpu, functional as F
from emulation.cases import CONV_CASES, DROPOUT_CASES, POOL_CASES, activation_input, tied
from gpucnn.rng import drop_threshold, random_bits, stream_key
from gpucnn.shapes import out_size
from gpucnn.compare import compare_primitives
from gpucnn.cuda.host import Primitives

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="g++ is not installed: the kernel host emulation needs it")

CONFIGS = {
    "grid-stride": dict(block=32, max_blocks=2, reduce_block=32),
    "wide": dict(block=256, max_blocks=65535, reduce_block=256),
    "mid": dict(block=64, max_blocks=65535, reduce_block=64),
}
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(params=list(CONFIGS), scope="session")
def prims(request, emulator):
    return Primitives(np, emulator.launch, **CONFIGS[request.param])


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_im2col_matches_numpy_exactly(prims, dtype, case):
    N, C, H, W, kh, kw, s, p = case
    x = _randn(np.random.default_rng(0), (N, C, H, W), dtype)
    got = prims.im2col(x, kh, kw, s, p)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, cpu.im2col(x, kh, kw, s, p))


def _views(rng, dtype):
    """Strided (N, C, H, W) views: a conv output's NCHW view of (C, N, H, W) memory, a sliced
    and stepped view, a reversed one (negative strides), a broadcast one (zero strides)."""
    base = _randn(rng, (4, 3, 9, 10), dtype)
    return {"cnhw": base.transpose(1, 0, 2, 3), "sliced": base[1:, ::2, 1:, ::3],
            "reversed": base[:, :, ::-1, ::-1], "broadcast": np.broadcast_to(base[:1], base.shape)}


@pytest.mark.parametrize("view", ["cnhw", "sliced", "reversed", "broadcast"])
def test_im2col_and_maxpool_read_strided_views_in_place(prims, dtype, view):
    """Exact against NumPy, and the kernel receives the view itself, not a copy."""
    x = _views(np.random.default_rng(1), dtype)[view]
    passed = []
    launch = prims._launch

    def spy(kernel, entry, grid, block, args):
        passed.append(args[0])
        launch(kernel, entry, grid, block, args)

    spying = Primitives(np, spy, prims.block, prims.max_blocks, prims.reduce_block)
    np.testing.assert_array_equal(spying.im2col(x, 3, 2, 2, 1), cpu.im2col(x, 3, 2, 2, 1))
    out, arg = spying.maxpool_forward(x, 2, 2)
    ref_out, ref_arg = cpu.maxpool_forward(x, 2, 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    assert all(a is x for a in passed)


@pytest.mark.parametrize("relu", [False, True])
def test_pooling_a_conv_output_keeps_its_layout_through_the_backward(prims, dtype, relu):
    """A (C, N, ...)-stored input gives an argmax and dx stored (C, N, ...) too, with the values
    NumPy gives, so the conv's backward reads dx as (F, N*OH*OW) rows without a copy."""
    x = _views(np.random.default_rng(2), dtype)["cnhw"]
    fwd, bwd = ("relu_maxpool_forward", "relu_maxpool_backward") if relu else \
        ("maxpool_forward", "maxpool_backward")
    out, arg = getattr(prims, fwd)(x, 3, 2)
    ref_out, ref_arg = getattr(cpu, fwd)(x, 3, 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    dout = _randn(np.random.default_rng(3), out.shape, dtype)
    args = (dout, arg, out) if relu else (dout, arg)
    dx = getattr(prims, bwd)(*args, x.shape, 3, 2)
    want = getattr(cpu, bwd)(dout, ref_arg, *args[2:], x.shape, 3, 2)
    np.testing.assert_allclose(dx, want, **TOL[dtype])  # overlapping windows: sums reordered
    assert arg.transpose(1, 0, 2, 3).flags.c_contiguous and dx.transpose(1, 0, 2, 3).flags.c_contiguous


def test_losses_are_0d_float64_arrays(prims, dtype):
    """The contract: softmax_cross_entropy's loss and sum_of_squares are 0-d float64 arrays of
    the device's array type, not Python or NumPy scalars."""
    loss, _ = prims.softmax_cross_entropy(np.ones((3, 4), dtype), np.array([0, 1, 3]))
    ss = prims.sum_of_squares(np.ones((5, 2), dtype))
    for value, want in ((loss, np.log(4)), (ss, 10.0)):
        assert type(value) is np.ndarray and value.shape == () and value.dtype == np.float64
        np.testing.assert_allclose(value, want, **TOL[dtype])


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_col2im_matches_numpy(prims, dtype, case):
    N, C, H, W, kh, kw, s, p = case
    oh, ow = out_size(H, kh, s, p), out_size(W, kw, s, p)
    dcols = _randn(np.random.default_rng(2), (C * kh * kw, N * oh * ow), dtype)
    got = prims.col2im(dcols, (N, C, H, W), kh, kw, s, p)
    assert got.shape == (N, C, H, W) and got.dtype == dtype
    np.testing.assert_allclose(got, cpu.col2im(dcols, (N, C, H, W), kh, kw, s, p), **TOL[dtype])


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool_forward_argmax_is_the_first_maximum(prims, dtype, case):
    N, C, H, W, size, stride = case
    x = tied(np.random.default_rng(3), (N, C, H, W), dtype)
    out, arg = prims.maxpool_forward(x, size, stride)
    ref_out, ref_arg = cpu.maxpool_forward(x, size, stride)
    assert arg.dtype == ref_arg.dtype
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool_backward_matches_numpy(prims, dtype, case):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(4)
    x = tied(rng, (N, C, H, W), dtype)
    out, arg = cpu.maxpool_forward(x, size, stride)
    dout = _randn(rng, out.shape, dtype)
    got = prims.maxpool_backward(dout, arg, x.shape, size, stride)
    np.testing.assert_allclose(got, cpu.maxpool_backward(dout, arg, x.shape, size, stride),
                               **TOL[dtype])


@pytest.mark.parametrize("seed,counter,n,p", DROPOUT_CASES)
def test_dropout_mask_is_bit_identical_to_numpy(prims, seed, counter, n, p):
    key, thr = stream_key(seed, 1), drop_threshold(p)
    with np.errstate(over="ignore"):
        want = random_bits(key, counter, n) >= np.uint64(thr)
    got = prims.dropout_keep_mask(key, counter, n, thr)
    assert got.dtype == np.bool_ and got.shape == (n,)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_activations_match_functional(prims, dtype, name):
    rng = np.random.default_rng(5)
    x = activation_input(rng, dtype)
    dout = _randn(rng, x.shape, dtype)
    dout.flat[-2:] = [np.inf, np.nan]
    fwd, bwd = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    ref, cache = fwd(x)
    out = getattr(prims, f"{name}_forward")(x)
    dx = getattr(prims, f"{name}_backward")(dout, ref)
    with np.errstate(invalid="ignore"):
        want_dx = bwd(dout, cache)
    if name == "relu":
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(dx, want_dx)
    else:
        np.testing.assert_allclose(out, ref, **TOL[dtype])
        np.testing.assert_allclose(dx, want_dx, **TOL[dtype])


@pytest.mark.parametrize("shape", [(5, 3, 4, 3), (2, 70, 1, 1), (300, 7), (1, 1), (4, 5, 9, 11)], ids=str)
def test_bias_grad_matches_numpy(prims, dtype, shape):
    g = _randn(np.random.default_rng(6), shape, dtype)
    want = g.sum(axis=tuple(a for a in range(g.ndim) if a != 1))
    np.testing.assert_allclose(prims.bias_grad(g), want, **TOL[dtype])


@pytest.mark.parametrize("N,K", [(9, 10), (1, 1), (5, 300), (70, 3), (300, 7)])
def test_fused_softmax_cross_entropy_matches_functional(prims, dtype, N, K):
    rng = np.random.default_rng(7)
    scores = (rng.standard_normal((N, K)) * 8).astype(dtype)
    scores[0, 0] = 50.0  # a large score: the row maximum must be subtracted first
    y = rng.integers(0, K, size=N)
    loss, ds = F.softmax_cross_entropy(scores, y)
    got_loss, got_ds = prims.softmax_cross_entropy(scores, y)
    assert got_ds.shape == (N, K) and got_ds.dtype == dtype
    np.testing.assert_allclose(got_loss, loss, **TOL[dtype])
    np.testing.assert_allclose(got_ds, ds, **TOL[dtype])


@pytest.mark.parametrize("sizes", [[0], [1], [257, 3], [5000, 33, 1],
                                   [int(s) for s in np.random.default_rng(6).integers(0, 700, 35)]],
                         ids=["empty", "one", "odd", "multi-block", "two-tables"])
def test_sum_of_squares_over_every_array_matches_a_float64_sum(prims, dtype, sizes):
    """plus + scale * sum(a**2) over many arrays against NumPy in float64, to 1e-12 relative
    for float32 weights too (squares accumulated in float64): sizes that fill no block, one
    large enough to split over several, 35 arrays (two table launches, then loss_total), and
    the same bits on a second run (a fixed summation order)."""
    rng = np.random.default_rng(8)
    arrays = [_randn(rng, s, dtype) * 3 for s in sizes]
    want = sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays)
    launched = []

    def spy(kernel, entry, grid, block, args):
        launched.append(kernel)
        prims._launch(kernel, entry, grid, block, args)

    spying = Primitives(np, spy, prims.block, prims.max_blocks, prims.reduce_block)
    plus = np.asarray(1.25)
    got = spying.sum_of_squares_all(arrays, 0.005, plus)
    assert got.shape == () and got.dtype == np.float64
    np.testing.assert_allclose(got, 1.25 + 0.005 * want, rtol=1e-12, atol=0)
    assert launched == ["sum_squares_all"] * (1 + (len(sizes) > 32)) + ["loss_total"]
    assert spying.sum_of_squares_all(arrays, 0.005, plus).tobytes() == got.tobytes()
    np.testing.assert_allclose(prims.sum_of_squares_all(arrays, 1.0, None), want, rtol=1e-12,
                               atol=0)


def test_sum_of_squares_all_refuses_mixed_dtypes_and_a_plus_that_is_no_0d_float64(prims):
    with pytest.raises(TypeError, match=r"^arrays\[1\]\.dtype=float64: expected arrays\[0\]'s float32$"):
        prims.sum_of_squares_all([np.ones(3, np.float32), np.ones(3)], 1.0, None)
    with pytest.raises(ValueError, match=r"^plus.shape=\(1,\) \(float64\): expected a 0-d float64"):
        prims.sum_of_squares_all([np.ones(3)], 1.0, np.ones(1))


def test_grid_stride_configuration_really_wraps(emulator):
    """The 'grid-stride' config must launch fewer threads than elements, or it tests nothing."""
    prims = Primitives(np, emulator.launch, **CONFIGS["grid-stride"])
    emulator.launches.clear()
    prims.relu_forward(np.ones(1000))
    (_, grid, block), = emulator.launches
    assert grid * block < 1000


def test_compare_with_numpy_reports_small_differences(prims, dtype):
    rows = compare_primitives(prims, np.asarray, np.asarray, dtype)
    ops = [op for op, _ in rows]
    assert {"im2col", "col2im", "maxpool_forward argmax", "maxpool_backward", "dropout_keep_mask",
            "relu_backward", "sigmoid_forward", "bias_grad", "softmax_cross_entropy loss",
            "sum_of_squares", "sum_of_squares_all plus a loss",
            "relu_maxpool_forward argmax", "relu_maxpool_backward", "conv2d_forward",
            "conv2d_backward dx", "conv2d_backward dw", "conv2d_backward db"} <= set(ops)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert all(diff <= tol for _, diff in rows), rows
    sums = [diff for op, diff in rows if op.startswith("sum_of_squares")]
    assert max(sums) <= 1e-12, rows  # float64 accumulation, float32 weights included


def test_maxpool_nan_wins_at_its_first_position_and_infinities_are_numbers(prims, dtype):
    """The contract of gpucnn.primitives: NaN propagates (a diverging GPU run must not hide its
    NaNs), the argmax is the first NaN, ±inf compare as numbers, ties go to the first maximum."""
    nan, inf = np.nan, np.inf
    x = np.array([[[[1.0, nan, 3.0, nan, -inf, -inf],
                    [inf, 2.0, -inf, 0.0, -inf, -inf]],
                   [[nan, nan, inf, 5.0, 2.0, inf],
                    [7.0, 9.0, 1.0, inf, inf, nan]]]], dtype=dtype)
    out, arg = prims.maxpool_forward(x, 2, 2)
    ref_out, ref_arg = cpu.maxpool_forward(x, 2, 2)
    np.testing.assert_array_equal(out, ref_out)  # NaN positions must match too
    np.testing.assert_array_equal(arg, ref_arg)
    np.testing.assert_array_equal(arg[0, :, 0], [[1, 1, 0], [0, 0, 3]])
    dout = np.arange(1, out.size + 1, dtype=dtype).reshape(out.shape)
    np.testing.assert_array_equal(prims.maxpool_backward(dout, arg, x.shape, 2, 2),
                                  cpu.maxpool_backward(dout, ref_arg, x.shape, 2, 2))


def test_bias_grad_splits_long_sums_over_more_blocks_than_filters(prims, dtype):
    """Each filter's 24000 values: several blocks per filter, then a sum of their partials."""
    dout = _randn(np.random.default_rng(4), (15, 3, 40, 40), dtype)
    launched = []

    def spy(kernel, entry, grid, block, args):
        launched.append(grid)
        prims._launch(kernel, entry, grid, block, args)

    spying = Primitives(np, spy, prims.block, prims.max_blocks, prims.reduce_block)
    np.testing.assert_allclose(spying.bias_grad(dout), cpu.bias_grad(dout), **TOL[dtype])
    assert len(launched) == (1 if prims.max_blocks < 6 else 2), launched


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_one_sgd_launch_over_every_parameter_equals_numpy_bit_for_bit(prims, dtype, momentum,
                                                                     nesterov):
    """sgd_update_all against gpucnn.cpu's NumPy reference and the per-parameter kernel, bit for
    bit: 35 parameters (two launches of SGD_TABLE = 32 and 3), each with its own size and decay
    (their table is the kernel's argument: a wrong field layout moves every one)."""
    rng = np.random.default_rng(5)
    sizes = [int(s) for s in rng.integers(1, 300, 35)]
    decays = [0.0 if i % 3 else 0.01 * (i + 1) for i in range(35)]
    ps, gs, vs = ([_randn(rng, s, dtype) for s in sizes] for _ in range(3))
    ref_p, ref_v = [p.copy() for p in ps], [v.copy() for v in vs]
    one_p, one_v = [p.copy() for p in ps], [v.copy() for v in vs]
    launched = []

    def spy(kernel, entry, grid, block, args):
        launched.append(entry)
        prims._launch(kernel, entry, grid, block, args)

    spying = Primitives(np, spy, prims.block, prims.max_blocks, prims.reduce_block)
    spying.sgd_update_all(ps, gs, vs if momentum else None, np.array([0.05], dtype), momentum,
                          nesterov, decays)
    assert launched == [f"sgd_update_all_{np.dtype(dtype).kind}{np.dtype(dtype).itemsize * 8}"] * 2
    for i in range(35):
        v_ref, v_one = (ref_v[i], one_v[i]) if momentum else (None, None)
        cpu.sgd_update_numpy(ref_p[i], gs[i], v_ref, 0.05, momentum, nesterov, decays[i])
        prims.sgd_update(one_p[i], gs[i], v_one, 0.05, momentum, nesterov, decays[i])
        for got in (ps[i], one_p[i]):
            np.testing.assert_array_equal(got, ref_p[i])
        if momentum:
            for got in (vs[i], one_v[i]):
                np.testing.assert_array_equal(got, ref_v[i])


def _biased_input(rng, dtype, view):
    """x (4, 3, 9, 10) as ``view`` (C-contiguous or a conv output's "cnhw" view) with NaN, ±inf
    and values 2^-24 relative apart, and a bias per channel that makes some of those equal once
    added (2^24 in float32, 2^53 in float64) and one -inf, so the add must come before the
    comparison, as the layer's own add would put it."""
    big = 2.0 ** (24 if dtype == np.float32 else 53)
    base = rng.integers(-2, 3, size=(3, 4, 9, 10)).astype(dtype)  # (C, N, ...) memory
    base[0, :, :, 1::2] += np.asarray(1, dtype) + np.finfo(dtype).eps  # 1 + eps beside 1s
    base[1, 0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    base[2, 1, :2, :2] = np.inf
    x = base.transpose(1, 0, 2, 3)
    x = x if view == "cnhw" else np.ascontiguousarray(x)
    return x, np.array([big, 0.5, -np.inf], dtype)


@pytest.mark.parametrize("view", ["contiguous", "cnhw"])
def test_bias_fused_into_relu_and_relu_maxpool_equals_adding_it_first(prims, dtype, view):
    """bias_relu_forward and bias_relu_maxpool_forward against NumPy's relu(x + b) and
    relu_maxpool(x + b) bit for bit: values, NaN, argmax ties (after rounding), and the layout
    (the relu output C-contiguous, the argmax in x's layout as the plain pool keeps it)."""
    x, b = _biased_input(np.random.default_rng(6), dtype, view)
    with np.errstate(invalid="ignore"):  # inf + -inf: NaN, as in the layer's own add
        summed = x + b.reshape(1, 3, 1, 1)
    out = prims.bias_relu_forward(x, b)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, cpu.relu_forward(summed))
    for size, stride in ((2, 2), (3, 1)):
        got, arg = prims.bias_relu_maxpool_forward(x, b, size, stride)
        ref, ref_arg = cpu.relu_maxpool_forward(summed, size, stride)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(arg, ref_arg)
        assert bool(arg.transpose(1, 0, 2, 3).flags.c_contiguous) == (view == "cnhw")
    flat = _randn(np.random.default_rng(7), (5, 6), dtype)  # a linear layer's output
    b6 = _randn(np.random.default_rng(8), (6,), dtype)
    np.testing.assert_array_equal(prims.bias_relu_forward(flat, b6), cpu.relu_forward(flat + b6))


def test_dropout_with_its_counter_on_the_device_draws_what_the_host_counter_draws(prims, dtype):
    """While a CUDA graph captures, a stream's counter is a device array that the dropout
    kernel reads and advance_counter moves on: two draws give NumPy's masks at counter and
    counter + n, bit for bit, and leave counter + 2n there (one that wraps past 2^64 too)."""
    key, thr = stream_key(3, 1), drop_threshold(0.4)
    x = _randn(np.random.default_rng(10), (7, 13), dtype)
    scale = np.dtype(dtype).type(1 / 0.6)
    for counter in (123457, (1 << 64) - 50):
        on_device = np.array([counter], np.uint64)
        prims.device_counters = {key: on_device}
        try:
            draws = [prims.dropout_forward(x, key, 0, thr, scale) for _ in range(2)]
        finally:
            prims.device_counters = {}
        for i, (out, keep) in enumerate(draws):
            ref_out, ref_keep = cpu.dropout_forward(x, key, counter + i * x.size, thr, scale)
            np.testing.assert_array_equal(keep, ref_keep)
            np.testing.assert_array_equal(out, ref_out)
        assert int(on_device[0]) == (counter + 2 * x.size) % (1 << 64)
