"""The native convolution's modes (csrc/conv_geom.h: flat rows, row blocks, batch in lanes,
filters in lanes; csrc/conv_gemm.h: im2col + GEMM)
on every instruction-set variant, over a grid of shapes, against the NumPy references of
test_native.py (per-tap einsums in float64 from the definitions) and tests/reference.py's naive
seed loops.

The grid crosses kernel sizes 1/3/5/7 (and non-square), strides 1/2/3, padding 0..3, odd
sizes, 1 to 64 channels and batches 1 to 33 (batch-in-lanes groups of 16 images: full, partial
and single).  Every mode is forced on every case with each of its blocks (use_conv_mode,
use_conv_block), so each is checked where the cost model would not pick it; the automatic
choice is checked on the bench suite's shapes.
Kernels that load whole vectors (the lanes fill, the stride-2 gather, the dout interleave) run
on arrays ending at a guard page: a read past the array's end would crash the test.
"""
import itertools
import sys

import numpy as np
import pytest

import reference
from gpucnn import cpu, cpu_conv, cpu_runtime, native
from test_native import (DTYPES, _array_before_a_guard_page, _conv_inputs, assert_close, conv_ref,
                         dx_ref, isa, layout, native_kernels, needs_native, wgrad_ref)  # noqa: F401

# every mode with each of its blocks: AVX2's narrow and wide kernels for the direct modes,
# 1 to 4 filter vectors in filters-in-lanes mode, the fewest and the most in Winograd's products
FILTER_BLOCKS = ("v1", "v2", "v3", "v4")
MODES = ([f"{m}-{b}" for m in ("flat", "rows", "lanes") for b in ("narrow", "wide")] +
         [f"filters-{b}" for b in FILTER_BLOCKS] + ["gemm-narrow", "winograd-v1", "winograd-v4"])
assert {m.partition("-")[0] for m in MODES} == set(native.CONV_MODES)


@pytest.fixture(params=MODES)
def mode(request):
    """Each conv test runs with every mode and block forced (then the cost model's choice)."""
    mode, _, block = request.param.partition("-")
    native.use_conv_mode(mode)
    native.use_conv_block(block)
    try:
        yield request.param
    finally:
        native.use_conv_mode("auto")
        native.use_conv_block("auto")


def _grid():
    """(N, C, H, W, F, KH, KW, stride, pad): every kernel size x stride x pad, with the other
    dimensions cycling through odd and even sizes, channel counts and batches."""
    sizes, chans, filters, batches = [5, 8, 11, 9, 14, 7], [1, 3, 16, 2, 33, 64], [4, 17, 1, 32, 9], [1, 17, 3, 33, 2, 16]
    cases = []
    for k, (K, s, p) in enumerate(itertools.product([1, 3, 5, 7], [1, 2, 3], [0, 1, 2, 3])):
        H = max(sizes[k % 6], K - 2 * p)
        W = max(sizes[(k + 2) % 6] + k % 2, K - 2 * p)
        KW = K if k % 5 else max(1, K - 2)  # some non-square kernels
        cases.append((batches[k % 6], chans[k % 6] if K < 7 else chans[k % 3], H, W,
                      filters[k % 5], K, KW, s, p))
    return cases


GRID = _grid()


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GRID, ids=lambda c: "N{}C{}H{}W{}F{}K{}x{}s{}p{}".format(*c))
def test_conv_grid_in_every_mode(case, dtype, mode):
    x, w, b, dout, stride, pad = _conv_inputs(case, dtype)
    out = native.conv2d_forward(x, w, b, stride, pad)
    assert_close(out, conv_ref(x, w, b, stride, pad))
    np.testing.assert_array_equal(native.conv2d_forward(x, w, b, stride, pad, relu=True),
                                  cpu.relu_forward(out))
    dw, db = native.conv2d_backward_weight(x, dout, w.shape[2], w.shape[3], stride, pad)
    ref_dw, ref_db = wgrad_ref(x, dout, w.shape[2], w.shape[3], stride, pad)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    assert_close(native.conv2d_backward_input(dout, w, x.shape, stride, pad),
                 dx_ref(dout, w, x.shape, stride, pad))


@native_kernels
@pytest.mark.parametrize("parts", [2, 3, 7])
def test_parts_on_the_pool_equal_the_ranges_run_one_by_one(parts, mode):
    """parts=k (csrc/pool.h's workers) gives what the k ranges give run one after another on
    this thread: the same outputs and input gradient, the weight gradients summed in part
    order; a sub-range leaves the other images untouched."""
    x, w, b, dout, stride, pad = _conv_inputs((13, 5, 9, 10, 12, 3, 3, 2, 1), np.float32)
    np.testing.assert_array_equal(native.conv2d_forward(x, w, b, stride, pad, relu=True, parts=parts),
                                  native.conv2d_forward(x, w, b, stride, pad, relu=True))
    np.testing.assert_array_equal(native.conv2d_backward_input(dout, w, x.shape, stride, pad, parts=parts),
                                  native.conv2d_backward_input(dout, w, x.shape, stride, pad))
    cuts = [2 + 9 * i // parts for i in range(parts + 1)]  # of the range [2, 11)
    pieces = [native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, n0=a, n1=c)
              for a, c in zip(cuts, cuts[1:])]
    want_dw, want_db = pieces[0]
    for pw, pb in pieces[1:]:
        want_dw += pw
        want_db += pb
    dw, db = native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, n0=2, n1=11, parts=parts)
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)
    out = np.full((13, 12, 5, 5), np.nan, np.float32)
    native.conv2d_forward(x, w, b, stride, pad, out=out, n0=2, n1=11, parts=parts)
    assert np.isnan(out[[0, 1, 11, 12]]).all() and not np.isnan(out[2:11]).any()


@needs_native
@pytest.mark.parametrize("parts", [0, 65, 2.0, True])
def test_parts_outside_the_pool_are_refused(parts):
    with pytest.raises(ValueError, match=rf"^parts={parts!r}: expected an int from 1 to 64"):
        native.conv2d_forward(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32),
                              None, 1, 0, parts=parts)


@native_kernels
@pytest.mark.parametrize("kind", ["nchw", "cnhw", "strided"])
def test_relu_is_applied_as_outputs_are_stored_in_every_layout(kind, mode):
    """relu=True equals relu_forward of the plain output bit for bit, through full-vector and
    element-wise stores (a strided out= buffer) alike; NaN stays NaN, as relu_forward keeps it."""
    x, w, b, _, stride, pad = _conv_inputs((19, 5, 9, 10, 12, 3, 3, 2, 1), np.float32)
    x[0, 0, 2:5, 3:6] = np.nan
    want = cpu.relu_forward(native.conv2d_forward(x, w, b, stride, pad))
    assert np.isnan(want).any() and (want == 0).sum() > want.size // 4
    out = layout(np.full(want.shape, -1, np.float32), kind)
    native.conv2d_forward(layout(x, kind), layout(w, kind), b, stride, pad, out=out, relu=True)
    np.testing.assert_array_equal(out, want)


@native_kernels
@pytest.mark.parametrize("kind", ["nchw", "cnhw", "strided"])
def test_modes_read_views_and_fill_ranges_and_buffers(kind, mode):
    """Any layout of every argument, a batch range that starts mid-group (lanes), and out=
    buffers of any layout; dx of a stride-2 conv is written through strided phase views."""
    x, w, b, dout, stride, pad = _conv_inputs((37, 5, 9, 10, 12, 3, 3, 2, 1), np.float32)
    xv, wv, dv = layout(x, kind), layout(w, kind), layout(dout, kind)
    out = layout(np.full(dout.shape, np.nan, np.float32), kind)
    native.conv2d_forward(xv, wv, b, stride, pad, out=out, n0=3, n1=36)
    assert np.isnan(out[[0, 1, 2, 36]]).all()
    assert_close(out[3:36], conv_ref(x[3:36], w, b, stride, pad))
    dw, db = native.conv2d_backward_weight(xv, dv, 3, 3, stride, pad, n0=1, n1=35)
    ref_dw, ref_db = wgrad_ref(x[1:35], dout[1:35], 3, 3, stride, pad)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    dx = layout(np.full(x.shape, np.nan, np.float32), kind)
    native.conv2d_backward_input(dv, wv, x.shape, stride, pad, dx=dx, n0=2, n1=20)
    assert np.isnan(dx[[0, 1, 20]]).all()
    assert_close(dx[2:20], dx_ref(dout[2:20], w, x[2:20].shape, stride, pad))


@native_kernels
def test_modes_match_the_naive_seed_loops(mode):
    x, w, b, dout, stride, pad = _conv_inputs((18, 2, 7, 6, 3, 3, 2, 2, 1), np.float64, seed=1)
    assert_close(native.conv2d_forward(x, w, b, stride, pad), reference.conv_forward(x, w, b, stride, pad))
    dw, db = native.conv2d_backward_weight(x, dout, 3, 2, stride, pad)
    ref_dw, ref_db = reference.conv_weight_grad(x, dout, w.shape, stride, pad)
    assert_close(dw, ref_dw)
    assert_close(db, ref_db)
    assert_close(native.conv2d_backward_input(dout, w, x.shape, stride, pad),
                 reference.conv_input_grad(dout, w, x.shape, stride, pad))


@native_kernels
@pytest.mark.skipif(sys.platform != "linux", reason="the guard page needs Linux mprotect")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(17, 3, 6, 7, 16, 3, 3, 1, 1), (18, 2, 14, 14, 16, 3, 3, 2, 1),
                                  (3, 4, 9, 40, 5, 5, 5, 2, 2), (16, 3, 5, 5, 8, 1, 1, 2, 0)])
def test_conv_never_reads_past_an_array(case, dtype, mode):
    """x and dout end where the next page is unreadable: whole-vector loads (the lanes fill,
    the stride-2 gather, the dout interleave) stay inside the arrays."""
    x, w, b, dout, stride, pad = _conv_inputs(case, dtype)
    gx, gd = _array_before_a_guard_page(x.shape, dtype), _array_before_a_guard_page(dout.shape, dtype)
    gx[...], gd[...] = x, dout
    assert_close(native.conv2d_forward(gx, w, b, stride, pad), conv_ref(x, w, b, stride, pad))
    dw, _ = native.conv2d_backward_weight(gx, gd, w.shape[2], w.shape[3], stride, pad)
    assert_close(dw, wgrad_ref(x, dout, w.shape[2], w.shape[3], stride, pad)[0])
    assert_close(native.conv2d_backward_input(gd, w, x.shape, stride, pad),
                 dx_ref(dout, w, x.shape, stride, pad))


@needs_native
def test_the_cost_model_picks_lanes_or_filters_for_small_maps_and_rows_or_flat_for_large():
    """The automatic choice on shapes of the bench suite (one thread's 32 images)."""
    plan = native.conv_plan((32, 12, 4, 4), (12, 12, 3, 3), 1, 1)  # 12 channels: no Winograd
    assert plan[0] in ("lanes", "filters") and plan[2] == (plan[0],)
    assert native.conv_plan((32, 32, 32, 32), (32, 32, 7, 7), 1, 3)[0] in ("rows", "flat")
    assert native.conv_plan((32, 8, 32, 32), (8, 8, 3, 3), 1, 1)[0] in ("rows", "flat")
    assert native.conv_plan((32, 16, 32, 32), (32, 16, 1, 1), 2, 0)[0] in ("rows", "flat")
    assert len(native.conv_plan((8, 3, 10, 10), (4, 3, 3, 3), 2, 1)[2]) == 4  # one per phase
    assert len(native.conv_plan((8, 3, 10, 10), (4, 3, 1, 1), 3, 0)[2]) == 1  # others get no tap
    assert native.conv_plan((1, 12, 4, 4), (12, 12, 3, 3), 1, 1)[0] != "lanes"  # 15 lanes idle
    # 6x6 outputs of a 5x5 stride-2 layer (8x8 and more: Winograd's), and 11x11 of 4 images
    # (lanes: half the lanes idle)
    assert native.conv_plan((32, 48, 12, 12), (64, 48, 5, 5), 2, 2)[0] == "filters"
    assert native.conv_plan((4, 12, 11, 11), (16, 12, 3, 3), 1, 1)[0] == "filters"


@needs_native
def test_winograd_takes_3x3_and_5x5_convolutions_of_many_channels():
    """csrc/conv_geom.h's wino_pays and wino_wgrad_pays on the shapes they were fitted to, and
    where they stay direct."""
    def plan(x_shape, w_shape, stride=1):
        return native.conv_plan(x_shape, w_shape, stride, w_shape[2] // 2)

    # stride 1: forward and input gradient; the weight gradient from 24 channels (3x3), 8 (5x5)
    # on maps of any size
    for x_shape, w_shape, wgrad in (((32, 32, 16, 16), (32, 32, 3, 3), True),
                                    ((32, 16, 32, 32), (16, 16, 3, 3), False),
                                    ((32, 32, 16, 16), (64, 32, 3, 3), True),
                                    ((8, 24, 11, 11), (24, 24, 3, 3), True),
                                    ((32, 32, 8, 8), (32, 32, 5, 5), True),
                                    ((16, 16, 16, 16), (16, 16, 5, 5), True),
                                    ((32, 32, 6, 6), (32, 32, 5, 5), True),
                                    ((32, 16, 8, 8), (16, 16, 5, 5), True)):
        assert plan(x_shape, w_shape) == ("winograd", "winograd" if wgrad else plan(x_shape, w_shape)[1],
                                          ("winograd",))
        assert (plan(x_shape, w_shape)[1] == "winograd") == wgrad
    assert plan((32, 32, 5, 5), (32, 32, 5, 5))[0] != "winograd"  # 5x5 map
    assert plan((32, 8, 32, 32), (8, 8, 5, 5))[0] != "winograd"  # 8 channels
    assert plan((32, 6, 12, 12), (16, 6, 5, 5))[:2] == ("filters", "lanes")  # LeNet's: 6 channels
    # 3x3 at stride 1 with channels in the transform's lanes: from 16 whole-vector channels
    # and filters, on maps of any size; by tiles in the lanes from 16 channels on 16x16
    for x_shape, w_shape in (((32, 32, 4, 4), (32, 32, 3, 3)), ((32, 16, 8, 8), (16, 16, 3, 3)),
                             ((32, 16, 2, 2), (16, 16, 3, 3)), ((8, 64, 8, 8), (64, 64, 3, 3))):
        assert plan(x_shape, w_shape)[0::2] == ("winograd", ("winograd",))
    assert plan((32, 16, 8, 8), (8, 16, 3, 3))[0] != "winograd"  # 8 filters
    assert plan((32, 12, 8, 8), (12, 12, 3, 3))[0] != "winograd"  # 12 channels: 2 vectors
    assert plan((32, 12, 16, 16), (16, 12, 3, 3))[0] != "winograd"  # 12 x 16 by tiles
    # the 3x3 weight gradient from 16 channels at stride 1 on outputs of 12x12 or fewer
    assert plan((32, 16, 8, 8), (16, 16, 3, 3))[1] == "winograd"  # the digits ResNet's
    assert plan((32, 16, 12, 12), (24, 16, 3, 3))[1] == "winograd"
    assert plan((32, 16, 16, 16), (16, 16, 3, 3))[1] != "winograd"  # 13x13 and more
    assert plan((32, 16, 8, 8), (32, 16, 3, 3), 2)[1] != "winograd"  # stride 2: from 24
    assert plan((32, 8, 8, 8), (16, 8, 3, 3))[1] != "winograd"  # 8 channels
    assert "winograd" not in plan((32, 8, 32, 32), (8, 8, 3, 3))[:2]  # 8 channels
    assert "winograd" not in plan((32, 3, 32, 32), (32, 3, 3, 3))[:2]  # 3 channels
    assert "winograd" not in plan((32, 32, 16, 16), (32, 32, 7, 7))[:2]  # 7x7
    # stride 2: the forward from 16 channels (5x5) or 64 (3x3) on outputs of 8x8 or more, the
    # weight gradient as at stride 1
    for x_shape, w_shape in (((64, 48, 16, 16), (64, 48, 5, 5)), ((16, 32, 48, 48), (48, 32, 5, 5)),
                             ((32, 16, 28, 28), (32, 16, 5, 5)), ((32, 64, 16, 16), (128, 64, 3, 3)),
                             ((16, 64, 64, 64), (64, 64, 3, 3))):
        assert plan(x_shape, w_shape, 2)[:2] == ("winograd", "winograd")
    assert plan((32, 32, 12, 12), (32, 32, 5, 5), 2)[:2] == ("filters", "winograd")  # 6x6 out
    assert "winograd" not in plan((32, 8, 32, 32), (8, 8, 5, 5), 2)[0]  # 8 channels
    assert plan((32, 32, 32, 32), (48, 32, 3, 3), 2)[:2] == ("filters", "winograd")  # all-conv's
    assert "winograd" not in plan((32, 16, 14, 14), (32, 16, 3, 3), 2)[:2]  # the strided net's
    assert "winograd" not in plan((32, 64, 36, 36), (64, 64, 5, 5), 3)[:2]  # stride 3


# 3x3 and 5x5 kernels: odd outputs (the last tiles half outside), padding 0 to 3, channels and
# filters off the vector width, chunks of tile rows (64 -> 64 3x3 on 40x40: 164 KB of
# transformed inputs and products a tile row, one row a chunk; 40 -> 48 5x5 on 30x30 likewise),
# groups of whole images with a partial last group, maps of 1 to 3 tiles a side; most with
# channels in the input transform's lanes (csrc/conv_geom.h's wino_lanes_pay), some not.
WINOGRAD_CASES = [(3, 16, 9, 13, 17, 3, 3, 1, 1), (5, 9, 6, 6, 8, 3, 3, 1, 0),
                  (2, 64, 40, 40, 64, 3, 3, 1, 1), (33, 12, 7, 5, 20, 3, 3, 1, 2),
                  (2, 8, 3, 3, 8, 3, 3, 1, 1), (1, 40, 4, 4, 33, 3, 3, 1, 0),
                  (3, 16, 9, 13, 17, 5, 5, 1, 2), (5, 9, 6, 6, 8, 5, 5, 1, 0),
                  (2, 40, 30, 30, 48, 5, 5, 1, 2), (17, 12, 7, 5, 20, 5, 5, 1, 3),
                  (1, 33, 5, 6, 9, 5, 5, 1, 1),
                  # tiles in the transform's lanes: rows of 8 or 16 tiles of channels off the
                  # vector width
                  (2, 12, 16, 16, 10, 3, 3, 1, 1), (3, 9, 32, 30, 12, 5, 5, 1, 2),
                  # stride 2: odd and even outputs, padding 0 to 3, chunks of tile rows (64 ->
                  # 64 5x5 on 24x24: 800 KB of weights, chunks of 5 of its 6 tile rows), groups
                  (3, 16, 9, 13, 17, 3, 3, 2, 1), (5, 9, 10, 7, 8, 3, 3, 2, 0),
                  (2, 64, 33, 33, 64, 3, 3, 2, 1), (17, 12, 7, 5, 20, 3, 3, 2, 3),
                  (3, 16, 9, 13, 17, 5, 5, 2, 2), (5, 9, 12, 11, 8, 5, 5, 2, 0),
                  (1, 64, 24, 24, 64, 5, 5, 2, 2), (17, 12, 7, 5, 20, 5, 5, 2, 3),
                  (1, 33, 6, 7, 9, 5, 5, 2, 1), (2, 12, 32, 31, 10, 3, 3, 2, 1)]


@native_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", FILTER_BLOCKS)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "N{}C{}H{}W{}F{}".format(*c))
def test_winograd_equals_the_references_within_rounding(case, block, dtype):
    """F(2x2, 3x3) and F(2x2, 5x5), stride 1 and 2: forward (with and without bias, fused ReLU),
    input gradient and weight gradient against the float64 references, on every block of its
    products, from C-contiguous, (C, N, H, W), column-strided and cropped inputs, the forward
    into a strided output; parts over the pool (by filters for the weight gradient) give the
    one-part result bit for bit."""
    x, w, b, dout, stride, pad = _conv_inputs(case, dtype)
    native.use_conv_mode("winograd")
    native.use_conv_block(block)
    try:
        assert native.conv_plan(x.shape, w.shape, stride, pad)[0] == "winograd"
        out = native.conv2d_forward(x, w, b, stride, pad)
        assert_close(out, conv_ref(x, w, b, stride, pad))
        for kind in ("cnhw", "strided", "cropped"):
            assert_close(native.conv2d_forward(layout(x, kind), w, None, stride, pad),
                         conv_ref(x, w, None, stride, pad))
        strided = np.full(out.shape[:3] + (2 * out.shape[3],), np.nan, dtype)[..., ::2]
        native.conv2d_forward(x, w, b, stride, pad, relu=True, out=strided)
        np.testing.assert_array_equal(strided, cpu.relu_forward(out))
        np.testing.assert_array_equal(native.conv2d_forward(x, w, b, stride, pad, parts=3), out)
        dx = native.conv2d_backward_input(dout, w, x.shape, stride, pad)
        assert_close(dx, dx_ref(dout, w, x.shape, stride, pad))
        np.testing.assert_array_equal(
            native.conv2d_backward_input(dout, w, x.shape, stride, pad, parts=3), dx)
        assert native.conv_plan(x.shape, w.shape, stride, pad)[1] == "winograd"
        dw, db = native.conv2d_backward_weight(x, dout, w.shape[2], w.shape[3], stride, pad)
        ref_dw, ref_db = wgrad_ref(x, dout, w.shape[2], w.shape[3], stride, pad)
        assert_close(dw, ref_dw)
        assert_close(db, ref_db)
        for kind in ("cnhw", "strided", "cropped"):  # x's and dout's rows through the copies
            got = native.conv2d_backward_weight(layout(x, kind), layout(dout, kind), w.shape[2],
                                                w.shape[3], stride, pad)
            assert_close(got[0], ref_dw)
            assert_close(got[1], ref_db)
        by_filters = native.conv2d_backward_weight(x, dout, w.shape[2], w.shape[3], stride, pad,
                                                   parts=3, by_filters=True)
        np.testing.assert_array_equal(by_filters[0], dw)
        np.testing.assert_array_equal(by_filters[1], db)
    finally:
        native.use_conv_mode("auto")
        native.use_conv_block("auto")


@native_kernels
@pytest.mark.parametrize("case", [(3, 20, 9, 9, 12, 3, 3, 1, 1), (2, 9, 15, 15, 11, 5, 5, 2, 2)],
                         ids=["3x3", "5x5-s2"])
def test_winograd_scratch_kept_between_calls_leaks_nothing_into_the_next(case):
    """csrc/scratch.h keeps Winograd's buffers per thread: a call on inputs full of inf and NaN,
    then a larger one and a smaller one, all give the references' results (no element left
    from an earlier call is read; 0 * inf would be NaN)."""
    x, w, b, dout, stride, pad = _conv_inputs(case, np.float32)
    native.use_conv_mode("winograd")
    try:
        for scale in (np.inf, np.nan):
            bad = np.full((8,) + x.shape[1:3] + (x.shape[3] + 6,), scale, np.float32)
            bad_out = native.conv2d_forward(bad, w, b, stride, pad)
            native.conv2d_backward_weight(bad, np.full(bad_out.shape, scale, np.float32),
                                          w.shape[2], w.shape[3], stride, pad)
            for n in (x.shape[0], 1):
                assert_close(native.conv2d_forward(x[:n], w, b, stride, pad),
                             conv_ref(x[:n], w, b, stride, pad))
                dw, db = native.conv2d_backward_weight(x[:n], dout[:n], w.shape[2], w.shape[3],
                                                       stride, pad)
                ref_dw, ref_db = wgrad_ref(x[:n], dout[:n], w.shape[2], w.shape[3], stride, pad)
                assert_close(dw, ref_dw)
                assert_close(db, ref_db)
    finally:
        native.use_conv_mode("auto")


@needs_native
def test_the_gemm_path_takes_dense_1x1_convolutions_of_many_channels():
    """csrc/conv_geom.h's gemm_pays on the shapes it was fitted to, and where it stays direct."""
    if not native.blas:
        pytest.skip("no BLAS for the GEMM path: NumPy's is not OpenBLAS")
    fwd, wgrad, dx = native.conv_plan((32, 32, 32, 32), (32, 32, 1, 1), 1, 0)
    assert fwd == "gemm" and dx == ("gemm",) and wgrad != "gemm"
    fwd, _, dx = native.conv_plan((32, 16, 32, 32), (32, 16, 1, 1), 2, 0)
    assert fwd != "gemm" and dx != ("gemm",)  # strided: the products lost
    assert native.conv_plan((32, 3, 32, 32), (32, 3, 1, 1), 1, 0)[0] != "gemm"  # 3 channels
    assert native.conv_plan((32, 64, 8, 8), (10, 64, 1, 1), 1, 0)[0] != "gemm"  # 10 filters
    assert "gemm" not in native.conv_plan((32, 32, 16, 16), (64, 32, 3, 3), 1, 1)[:2]


@needs_native
def test_numpys_openblas_gives_the_gemm_path_its_products():
    """The GEMM path finds cblas_sgemm/dgemm in the OpenBLAS NumPy loaded (gpucnn.cpu registers
    them on import): where NumPy has OpenBLAS, the path must not silently go missing."""
    if cpu_runtime.openblas() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS (no GEMM path by design)")
    assert native.blas and cpu_runtime.cblas_gemm() is not None


@native_kernels
@pytest.mark.parametrize("block", FILTER_BLOCKS)
@pytest.mark.parametrize("case", GRID[::3] + [(2, 96, 7, 7, 32, 5, 5, 1, 2)],
                         ids=lambda c: "N{}C{}H{}W{}F{}K{}x{}s{}p{}".format(*c))
def test_filters_in_lanes_sums_as_row_blocks_bit_for_bit(case, block):
    """Filters in lanes adds the same products in the same order as the other direct modes (bias,
    then tap by tap, chunks of taps passing through memory: 2400 taps of 32 filters take 1 to 3
    chunks by block), so forward (with its fused ReLU) and input gradient equal row blocks'
    exactly, whatever the block."""
    x, w, b, dout, stride, pad = _conv_inputs(case, np.float32)
    got = {}
    try:
        for mode, blk in (("rows", "wide"), ("filters", block)):
            native.use_conv_mode(mode)
            native.use_conv_block(blk)
            assert native.conv_plan(x.shape, w.shape, stride, pad)[0] == mode
            got[mode] = (native.conv2d_forward(x, w, b, stride, pad, relu=True),
                         native.conv2d_backward_input(dout, w, x.shape, stride, pad))
    finally:
        native.use_conv_mode("auto")
        native.use_conv_block("auto")
    for a, r in zip(got["filters"], got["rows"]):
        np.testing.assert_array_equal(a, r)


@needs_native
def test_use_conv_block_validates_and_reports():
    assert native.use_conv_block("wide") == "wide"
    assert native.use_conv_block("auto") == "auto"
    assert native.use_conv_block("v3") == "v3"
    assert native.use_conv_block("auto") == "auto"
    with pytest.raises(ValueError, match=r"^name='huge': expected one of auto, narrow, wide, v1, v2, v3, v4$"):
        native.use_conv_block("huge")


@needs_native
def test_use_conv_mode_validates_and_reports():
    assert native.use_conv_mode("lanes") == "lanes"
    assert native.use_conv_mode("auto") == "auto"
    with pytest.raises(ValueError, match=r"^name='diagonal': expected 'auto' or one of flat, rows, lanes, filters, gemm, winograd$"):
        native.use_conv_mode("diagonal")


@native_kernels
@pytest.mark.parametrize("parts", [2, 3, 7])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_gradient_parts_by_filters_equal_one_part(parts, dtype, mode):
    """by_filters: each part sums every image of the range for its filters, so the result is one
    part's bit for bit, whatever the parts (7 parts of 12 filters: some get none)."""
    x, w, b, dout, stride, pad = _conv_inputs((13, 5, 9, 10, 12, 3, 3, 2, 1), dtype)
    want_dw, want_db = native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, n0=2, n1=11)
    dw, db = native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, n0=2, n1=11, parts=parts,
                                           by_filters=True)
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # (C, N, H, W) memory
    dc = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    dw_view = np.zeros((3, 3, 5, 12), dtype).transpose(3, 2, 0, 1)  # a strided output buffer
    native.conv2d_backward_weight(xc, dc, 3, 3, stride, pad, dw=dw_view, n0=2, n1=11, parts=parts,
                                  by_filters=True)
    np.testing.assert_array_equal(dw_view, want_dw)


@native_kernels
@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("case", [(13, 5, 9, 10, 12, 3, 3, 2, 1), (6, 16, 8, 8, 16, 3, 3, 1, 1),
                                  (4, 8, 11, 11, 8, 5, 5, 2, 2)])
def test_input_gradient_beside_the_weight_gradient_equals_each_alone(case, parts, mode):
    """input_grad=(w, dx): dx in parts - 1 parts beside the weight gradient in one, both equal to
    the functions run alone bit for bit, over a range of images into strided buffers (the rest
    of dx untouched)."""
    x, w, b, dout, stride, pad = _conv_inputs(case, np.float64)
    KH, KW = w.shape[2:]
    want_dw, want_db = native.conv2d_backward_weight(x, dout, KH, KW, stride, pad, n0=1, n1=4)
    want_dx = native.conv2d_backward_input(dout, w, x.shape, stride, pad, n0=1, n1=4)
    dx = np.full(x.shape[::-1], 7.0).T  # (W, H, C, N) memory
    dw, db = native.conv2d_backward_weight(x, dout, KH, KW, stride, pad, n0=1, n1=4, parts=parts,
                                           input_grad=(w, dx))
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)
    np.testing.assert_array_equal(dx[1:4], want_dx[1:4])
    assert (dx[0] == 7).all() and (dx[4:] == 7).all()


@needs_native
def test_input_gradient_beside_validates_its_arguments():
    x, w, b, dout, stride, pad = _conv_inputs((2, 8, 6, 6, 8, 3, 3, 1, 1), np.float32)
    dx = np.empty_like(x)
    with pytest.raises(ValueError, match=r"^parts=1: expected 2 or more with input_grad"):
        native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, parts=1, input_grad=(w, dx))
    with pytest.raises(ValueError, match=r"^dx=\(2, 8, 6, 6\) float64: expected .* float32"):
        native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, parts=2,
                                      input_grad=(w, np.empty((2, 8, 6, 6), np.float64)))
    with pytest.raises(ValueError, match=r"^w, dx: expected dout's dtype"):
        native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, parts=2,
                                      input_grad=(w.astype(np.float64), dx))
    with pytest.raises(ValueError, match=r"^w.shape: expected \(F, C, KH, KW\)"):
        native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, parts=2, input_grad=(w[:4], dx))
    with pytest.raises(ValueError, match=r"^w, dx: expected x's dtype, dw's and x's shapes"):
        d2 = dout[:, :, ::2, ::2]  # stride 2: a 4x4 w gives the 3x3 dout of kh = kw = 3 too
        native.conv2d_backward_weight(x, d2, 3, 3, 2, 1, parts=2,
                                      input_grad=(np.zeros((8, 8, 4, 4), np.float32), dx))
    with pytest.raises(ValueError, match=r"^dx: expected a writable"):
        dx.flags.writeable = False
        native.conv2d_backward_weight(x, dout, 3, 3, stride, pad, parts=2, input_grad=(w, dx))


@native_kernels
def test_cpu_conv_backward_at_two_threads_runs_the_gradients_beside_each_other(mode, monkeypatch):
    """Two threads, 5 images of 8 channels (BESIDE_MIN_CHANNELS): gpucnn.cpu runs the weight
    gradient on one thread and dx on the other; both equal one thread's bit for bit."""
    x, w, b, dout, stride, pad = _conv_inputs((5, 8, 25, 25, 12, 3, 3, 2, 1), np.float64)
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "2")
    monkeypatch.setattr(cpu_conv, "FMAS_PER_ELEMENT", 1)  # enough work for two parts at this size
    assert cpu.parts(5, cpu_conv.conv_work(dout.size, w)) == 2
    calls = []
    real = native.conv2d_backward_weight
    monkeypatch.setattr(native, "conv2d_backward_weight",
                        lambda *a, **k: calls.append(k.get("input_grad") is not None) or real(*a, **k))
    grads = cpu.conv2d_backward(dout, x, w, x.shape, stride, pad, True, True)
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "1")
    one = cpu.conv2d_backward(dout, x, w, x.shape, stride, pad, True, True)
    assert calls == [True, False]
    for got, ref in zip(grads, one):
        np.testing.assert_array_equal(got, ref)


@native_kernels
def test_cpu_conv_backward_at_small_batch_splits_filters_and_equals_the_numpy_path(mode, monkeypatch):
    """Two threads, 5 images: gpucnn.cpu gives the weight gradient's parts filters, not images
    (MIN_IMAGES_PER_WGRAD_PART); the result equals one thread's bit for bit and the NumPy path's."""
    x, w, b, dout, stride, pad = _conv_inputs((5, 6, 9, 9, 16, 3, 3, 1, 1), np.float64)
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "2")
    monkeypatch.setattr(cpu_conv, "FMAS_PER_ELEMENT", 1)  # enough work for two parts at this size
    assert cpu.parts(5, cpu_conv.conv_work(dout.size, w)) == 2
    grads = cpu.conv2d_backward(dout, x, w, x.shape, stride, pad, True, True)
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "1")
    one = cpu.conv2d_backward(dout, x, w, x.shape, stride, pad, True, True)
    for got, ref in zip(grads, one):
        np.testing.assert_array_equal(got, ref)
    monkeypatch.setattr(native, "available", False)
    _, saved = cpu.conv2d_forward(x, w, b, stride, pad)
    ref_grads = cpu.conv2d_backward(dout, saved, w, x.shape, stride, pad, True, True)
    for got, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)


@native_kernels
def test_cpu_conv_in_lanes_mode_equals_the_numpy_path(mode, monkeypatch):
    """gpucnn.cpu's conv (the batch split over threads) against its own NumPy path, float64."""
    x, w, b, dout, stride, pad = _conv_inputs((35, 6, 9, 9, 10, 3, 3, 2, 1), np.float64)
    out, saved = cpu.conv2d_forward(x, w, b, stride, pad)
    grads = cpu.conv2d_backward(dout, saved, w, x.shape, stride, pad, True, True)
    monkeypatch.setattr(native, "available", False)
    ref_out, ref_saved = cpu.conv2d_forward(x, w, b, stride, pad)
    ref_grads = cpu.conv2d_backward(dout, ref_saved, w, x.shape, stride, pad, True, True)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    for got, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
