"""Every op against numeric gradients (float64) and against the naive references of the seeds."""
import math

import numpy as np
import pytest

from gpucnn import functional as F
from gpucnn.rng import Generator
from gpucnn.gradcheck import numeric_gradient, rel_error

import reference as ref

GRAD_TOL = 1e-7

# (N, C, H, W, F, KH, KW, stride, pad): stride 1-3, padding, odd H/W, non-square kernels
CONV_CASES = [
    (2, 3, 7, 7, 4, 3, 3, 1, 1),
    (3, 2, 9, 8, 3, 3, 2, 2, 0),
    (2, 3, 11, 9, 2, 5, 3, 3, 2),
    (1, 1, 5, 5, 1, 5, 5, 1, 0),
    (2, 4, 6, 7, 5, 1, 1, 2, 1),
    (2, 2, 4, 4, 3, 4, 2, 1, 2),
]


def _conv_inputs(rng, case, dtype=np.float64):
    N, C, H, W, Fn, KH, KW, s, p = case
    return (rng.standard_normal((N, C, H, W)).astype(dtype),
            rng.standard_normal((Fn, C, KH, KW)).astype(dtype),
            rng.standard_normal(Fn).astype(dtype), s, p)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_equals_seed_sum(case):
    x, w, b, s, p = _conv_inputs(np.random.default_rng(1), case)
    out, _ = F.conv2d_forward(x, w, b, s, p)
    np.testing.assert_allclose(out, ref.conv_forward(x, w, b, s, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_equals_seed_formulas(case):
    rng = np.random.default_rng(2)
    x, w, b, s, p = _conv_inputs(rng, case)
    out, cache = F.conv2d_forward(x, w, b, s, p)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)
    dw_ref, db_ref = ref.conv_weight_grad(x, dout, w.shape, s, p)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(db, db_ref, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, ref.conv_input_grad(dout, w, x.shape, s, p), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients_match_numeric(case):
    rng = np.random.default_rng(3)
    x, w, b, s, p = _conv_inputs(rng, case)
    out, cache = F.conv2d_forward(x, w, b, s, p)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)
    f = lambda _: F.conv2d_forward(x, w, b, s, p)[0]
    assert rel_error(dx, numeric_gradient(f, x, dout)) < GRAD_TOL
    assert rel_error(dw, numeric_gradient(f, w, dout)) < GRAD_TOL
    assert rel_error(db, numeric_gradient(f, b, dout)) < GRAD_TOL


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_relu_equals_relu_of_the_seed_sum_and_matches_numeric_gradients(case):
    """conv2d_relu_forward is one op for conv then ReLU (seeds/002, 003): forward and backward
    as the two run one after the other, float64 numeric gradients."""
    rng = np.random.default_rng(5)
    x, w, b, s, p = _conv_inputs(rng, case)
    out, cache = F.conv2d_relu_forward(x, w, b, s, p)
    np.testing.assert_allclose(out, np.maximum(ref.conv_forward(x, w, b, s, p), 0),
                               rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_relu_backward(dout, cache)
    conv_out, conv_cache = F.conv2d_forward(x, w, b, s, p)
    for got, want in zip((dx, dw, db),
                         F.conv2d_backward(F.relu_backward(dout, np.maximum(conv_out, 0)),
                                           conv_cache)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    f = lambda _: F.conv2d_relu_forward(x, w, b, s, p)[0]
    for arg, grad in ((x, dx), (w, dw), (b, db)):
        assert rel_error(grad, numeric_gradient(f, arg, dout)) < GRAD_TOL
    assert F.conv2d_relu_backward(dout, F.conv2d_relu_forward(x, w, None, s, p)[1],
                                  need_dx=False)[::2] == (None, None)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_conv_with_an_eval_batchnorm_folded_equals_the_two_ops_and_numeric_gradients(case, bias, relu):
    """conv2d_bn_eval_forward: batch norm's fixed affine map folded into the conv's weights; the
    outputs and every gradient (conv's w, b, the batch norm's gamma, beta, and dx) equal the
    two ops run one after the other, and float64 numeric gradients."""
    rng = np.random.default_rng(6)
    x, w, b, s, p = _conv_inputs(rng, case)
    b = b if bias else None
    Fn = w.shape[0]
    gamma, beta, mean = rng.standard_normal(Fn), rng.standard_normal(Fn), rng.standard_normal(Fn)
    var = rng.uniform(0.5, 2, Fn)
    out, cache = F.conv2d_bn_eval_forward(x, w, b, gamma, beta, mean, var, 1e-5, s, p, relu)
    conv_out, conv_cache = F.conv2d_forward(x, w, b, s, p)
    bn_out, bn_cache = F.spatial_batchnorm_forward(conv_out, gamma, beta, mean, var, False,
                                                   relu=relu)
    np.testing.assert_allclose(out, bn_out, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db, dgamma, dbeta = F.conv2d_bn_eval_backward(dout, cache)
    dconv, want_dgamma, want_dbeta = F.spatial_batchnorm_backward(dout, bn_cache)
    want_dx, want_dw, want_db = F.conv2d_backward(dconv, conv_cache)
    for got, want in ((dx, want_dx), (dw, want_dw), (db, want_db), (dgamma, want_dgamma),
                      (dbeta, want_dbeta)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)

    def f(_):
        return F.conv2d_bn_eval_forward(x, w, b, gamma, beta, mean, var, 1e-5, s, p, relu)[0]
    for arg, grad in ((x, dx), (w, dw), (gamma, dgamma), (beta, dbeta)) + (((b, db),) if bias else ()):
        assert rel_error(grad, numeric_gradient(f, arg, dout)) < GRAD_TOL


def test_conv_with_an_eval_batchnorm_refuses_statistics_of_the_wrong_size():
    x, w, b, s, p = _conv_inputs(np.random.default_rng(7), CONV_CASES[0])
    with pytest.raises(ValueError, match=r"^running_var.shape=\(3,\) \(float64\): expected \(4,\) float64"):
        F.conv2d_bn_eval_forward(x, w, b, np.ones(4), np.zeros(4), np.zeros(4), np.ones(3))


def test_conv_without_bias_and_skipped_input_gradient():
    rng = np.random.default_rng(4)
    x, w, _, s, p = _conv_inputs(rng, CONV_CASES[1])
    out, cache = F.conv2d_forward(x, w, None, s, p)
    np.testing.assert_allclose(out, ref.conv_forward(x, w, np.zeros(w.shape[0]), s, p), atol=1e-12)
    dx, dw, db = F.conv2d_backward(np.ones_like(out), cache, need_dx=False)
    assert dx is None and db is None and dw.shape == w.shape


def test_conv_float32_matches_float64():
    rng = np.random.default_rng(5)
    x, w, b, s, p = _conv_inputs(rng, CONV_CASES[2])
    out64, _ = F.conv2d_forward(x, w, b, s, p)
    out32, _ = F.conv2d_forward(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), s, p)
    assert out32.dtype == np.float32
    assert rel_error(out32, out64) < 1e-6


POOL_CASES = [(2, 2), (3, 2), (2, 1), (3, 3), (1, 1)]


def _distinct(rng, shape):
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape).astype(np.float64) / n


@pytest.mark.parametrize("size,stride", POOL_CASES)
@pytest.mark.parametrize("hw", [(6, 6), (7, 9)])
def test_maxpool_matches_reference_and_numeric(size, stride, hw):
    rng = np.random.default_rng(6)
    x = _distinct(rng, (2, 3) + hw)
    out, cache = F.maxpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    out_ref, dx_ref = ref.maxpool_forward_backward(x, dout, size, stride)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-15)
    f = lambda _: F.maxpool2d_forward(x, size, stride)[0]
    assert rel_error(dx, numeric_gradient(f, x, dout, h=1e-6)) < GRAD_TOL


@pytest.mark.parametrize("size,stride", [(2, 2), (3, 1), (2, 1)])
def test_maxpool_ties_go_to_the_first_maximum_only(size, stride):
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 1::3, ::2] = 1.0  # several equal maxima in many windows
    out, cache = F.maxpool2d_forward(x, size, stride)
    dout = np.arange(1, out.size + 1, dtype=np.float64).reshape(out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    _, dx_ref = ref.maxpool_forward_backward(x, dout, size, stride)
    np.testing.assert_array_equal(dx, dx_ref)
    # each window sends its gradient to exactly one input: the total is preserved
    assert dx.sum() == dout.sum()


def test_maxpool_tie_example_all_equal_window():
    x = np.full((1, 1, 2, 2), 3.0)
    out, cache = F.maxpool2d_forward(x, 2, 2)
    dx = F.maxpool2d_backward(np.array([[[[5.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


def test_pool_after_conv_keeps_working_on_strided_layouts():
    rng = np.random.default_rng(7)
    x, w, b, s, p = _conv_inputs(rng, CONV_CASES[0])
    conv, _ = F.conv2d_forward(x, w, b, s, p)  # a (C, N, H, W)-backed view
    out, cache = F.maxpool2d_forward(conv, 2, 2)
    contiguous, ccache = F.maxpool2d_forward(np.ascontiguousarray(conv), 2, 2)
    np.testing.assert_array_equal(out, contiguous)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(F.maxpool2d_backward(dout, cache), F.maxpool2d_backward(dout, ccache))


def test_relu_and_sigmoid_gradients_and_values():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5))
    out, cache = F.relu_forward(x)
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(F.relu_backward(dout, cache), np.where(x > 0, dout, 0))
    xs = x * 5
    out, cache = F.sigmoid_forward(xs)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-xs)), rtol=1e-14)
    f = lambda _: F.sigmoid_forward(xs)[0]
    assert rel_error(F.sigmoid_backward(dout, cache), numeric_gradient(f, xs, dout)) < GRAD_TOL


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is the right answer
        out, _ = F.sigmoid_forward(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 1.9287e-22, 0.5, 1.0, 1.0], rtol=1e-4, atol=0)


def test_dropout_statistics_and_modes():
    x = np.ones((400, 500))
    p = 0.3
    out, cache = F.dropout_forward(x, p, True, Generator(seed=0))
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 0.005
    assert abs(out.mean() - 1.0) < 0.01  # inverted scaling preserves the mean
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p))
    dout = np.random.default_rng(0).standard_normal(x.shape)
    dx = F.dropout_backward(dout, cache)
    np.testing.assert_array_equal(dx == 0, out == 0)  # backward reuses the forward mask
    np.testing.assert_allclose(dx[out != 0], dout[out != 0] / (1 - p))
    for train, prob in [(False, 0.3), (True, 0.0)]:
        ident, c = F.dropout_forward(x, prob, train, Generator(seed=0))
        assert ident is x and F.dropout_backward(dout, c) is dout


def test_dropout_same_seed_same_mask_and_stream_advances():
    x = np.ones((50, 40))
    a, _ = F.dropout_forward(x, 0.5, True, Generator(seed=7))
    b, _ = F.dropout_forward(x, 0.5, True, Generator(seed=7))
    np.testing.assert_array_equal(a, b)
    g = Generator(seed=7)
    first, _ = F.dropout_forward(x, 0.5, True, g)
    second, _ = F.dropout_forward(x, 0.5, True, g)
    assert not np.array_equal(first, second)
    c, _ = F.dropout_forward(x, 0.5, True, Generator(seed=8))
    assert not np.array_equal(a, c)


def test_dropout_gradient_with_fixed_mask():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 7))
    state = Generator(seed=3).state()

    def fixed():
        g = Generator(seed=3)
        g.set_state(state)
        return g

    out, cache = F.dropout_forward(x, 0.4, True, fixed())
    dout = rng.standard_normal(x.shape)
    num = numeric_gradient(lambda _: F.dropout_forward(x, 0.4, True, fixed())[0], x, dout)
    assert rel_error(F.dropout_backward(dout, cache), num) < GRAD_TOL


def test_linear_flattens_and_gradients_match_numeric():
    rng = np.random.default_rng(10)
    x, w, b = rng.standard_normal((4, 2, 3, 2)), rng.standard_normal((12, 5)), rng.standard_normal(5)
    out, cache = F.linear_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(4, -1) @ w + b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.linear_backward(dout, cache)
    assert dx.shape == x.shape
    f = lambda _: F.linear_forward(x, w, b)[0]
    for arg, grad in [(x, dx), (w, dw), (b, db)]:
        assert rel_error(grad, numeric_gradient(f, arg, dout)) < GRAD_TOL


def test_softmax_cross_entropy_small_scores_is_log_c_and_gradient():
    rng = np.random.default_rng(11)
    for C in (3, 10, 100):
        scores = 1e-4 * rng.standard_normal((500, C))
        loss, _ = F.softmax_cross_entropy(scores, rng.integers(0, C, 500))
        assert abs(loss - math.log(C)) < 1e-3
    scores, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    loss, dscores = F.softmax_cross_entropy(scores, y)
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert abs(loss - (-np.log(p[np.arange(6), y]).mean())) < 1e-12
    num = numeric_gradient(lambda s: F.softmax_cross_entropy(s, y)[0], scores)
    assert rel_error(dscores, num) < GRAD_TOL


def test_softmax_cross_entropy_is_stable_for_huge_scores():
    scores = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=np.float32)
    with np.errstate(over="raise"):
        loss, d = F.softmax_cross_entropy(scores, np.array([0, 0]))
    assert np.isfinite(loss) and abs(loss - 5e3) < 1 and np.all(np.isfinite(d))


def test_mse_matches_seed_004_definition():
    rng = np.random.default_rng(12)
    pred, target = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    loss, dpred = F.mse_loss(pred, target)
    n = pred.size  # the source document (seeds/004): E = (1/n^2) sum over an n x n map
    assert abs(loss - ((pred - target) ** 2).sum() / n) < 1e-14
    np.testing.assert_allclose(dpred, 2 * (pred - target) / n)
    assert rel_error(dpred, numeric_gradient(lambda p: F.mse_loss(p, target)[0], pred)) < GRAD_TOL


def test_l2_penalty_is_half_reg_squared_norm():
    rng = np.random.default_rng(13)
    ws = [rng.standard_normal((3, 4)), rng.standard_normal((2, 2, 3, 3)).astype(np.float32)]
    loss, grads = F.l2_penalty(ws, 0.1)
    want = 0.05 * sum(float((w.astype(np.float64) ** 2).sum()) for w in ws)
    # float32 squares are summed in float32 vector lanes, the lane sums in float64 (about 1e-7
    # relative, gpucnn.cpu.sum_of_squares): with AVX2's 8 lanes these 36 already take a block
    assert abs(loss - want) < 1e-7 * want
    for w, g in zip(ws, grads):
        np.testing.assert_allclose(g, 0.1 * w, rtol=1e-6)


def test_l2_loss_adds_plus_a_data_loss_to_it():
    """plus= (the data loss, which CUDA adds in L2's own launch) on the CPU path too, and on an
    empty weight list."""
    rng = np.random.default_rng(14)
    ws = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    plus = np.asarray(1.5)
    assert float(F.l2_loss(ws, 0.1, plus=plus)) == 1.5 + float(F.l2_loss(ws, 0.1))
    assert float(F.l2_loss([], 0.1, plus=plus)) == 1.5


# --- bad input --------------------------------------------------------------------------------

def _conv(**kw):
    args = dict(x=np.zeros((2, 3, 5, 5)), w=np.zeros((4, 3, 3, 3)), b=np.zeros(4), stride=1, pad=0)
    args.update(kw)
    return F.conv2d_forward(**args)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(w=np.zeros((4, 2, 3, 3))), ValueError, ["w.shape=(4, 2, 3, 3)", "3 input channels"]),
    (dict(w=np.zeros((4, 3, 8, 3))), ValueError, ["kernel 8x3", "larger than the padded input 5x5"]),
    (dict(stride=0), ValueError, ["stride=0", "integer >= 1"]),
    (dict(pad=-1), ValueError, ["pad=-1", "integer >= 0"]),
    (dict(stride=1.5), ValueError, ["stride=1.5"]),
    (dict(x=np.zeros((2, 3, 5, 5), dtype=np.int64)), TypeError, ["x.dtype=int64", "float32 or float64"]),
    (dict(x=np.zeros((2, 3, 5, 5), dtype=object)), TypeError, ["x.dtype=object", "float32 or float64"]),
        (dict(x=np.zeros((2, 3, 5, 5), dtype=np.float16)), TypeError, ["x.dtype=float16", "float32 or float64"]),
    (dict(x=np.zeros((3, 5, 5))), ValueError, ["x.shape=(3, 5, 5)", "4 dimensions"]),
    (dict(x=[[1.0]]), TypeError, ["x", "numpy or cupy array", "list"]),
    (dict(b=np.zeros(3)), ValueError, ["b.shape=(3,)", "(4,)"]),
])
def test_conv_bad_input_errors_name_argument_value_and_expectation(kwargs, error, words):
    with pytest.raises(error) as e:
        _conv(**kwargs)
    for word in words:
        assert word in str(e.value)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_rejects_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"p=.*\[0, 1\)"):
        F.dropout_forward(np.ones(3), p, True, Generator(seed=0))


def test_dropout_training_needs_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        F.dropout_forward(np.ones(3), 0.5, True, np.random.default_rng(0))


@pytest.mark.parametrize("y,error,words", [
    (np.array([0, 1, 5]), ValueError, ["y[2]=5: expected a class label in [0, 4]", "5 columns"]),
    (np.array([0, -1, 2]), ValueError, ["y[1]=-1: expected a class label in [0, 4]"]),
    (np.array([0, 1]), ValueError, ["y.shape=(2,)", "(3,)"]),
    (np.array([0.0, 1.0, 2.0]), TypeError, ["integer", "float64"]),
])
def test_softmax_labels_checked(y, error, words):
    with pytest.raises(error) as e:
        F.softmax_cross_entropy(np.zeros((3, 5)), y)
    for word in words:
        assert word in str(e.value)


def test_pool_and_linear_and_loss_shape_errors():
    with pytest.raises(ValueError, match=r"size=5.*larger than the input"):
        F.maxpool2d_forward(np.zeros((1, 1, 4, 4)), 5)
    with pytest.raises(ValueError, match="stride=0"):
        F.maxpool2d_forward(np.zeros((1, 1, 4, 4)), 2, 0)
    with pytest.raises(ValueError, match=r"flattens to 6 features.*expects 5"):
        F.linear_forward(np.zeros((2, 2, 3)), np.zeros((5, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"target.shape=\(2, 3\)"):
        F.mse_loss(np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reg=-1"):
        F.l2_penalty([np.zeros(2)], -1)
    out, cache = F.relu_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout.shape=\(3, 2\)"):
        F.relu_backward(np.zeros((3, 2)), cache)


def test_conv_backward_names_a_wrong_dout_shape():
    x, w, b = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3)), np.zeros(4)
    _, cache = F.conv2d_forward(x, w, b, stride=1, pad=1)
    with pytest.raises(ValueError, match=r"dout.shape=\(2, 4, 4, 4\): expected \(2, 4, 5, 5\)"):
        F.conv2d_backward(np.zeros((2, 4, 4, 4)), cache)


def test_a_bias_left_out_and_added_by_the_relu_gives_the_layer_with_its_bias():
    """conv2d_forward/linear_forward(add_bias=False) then relu_forward or
    relu_maxpool2d_forward(bias=b): exactly relu(out + b) (the CPU has no fused kernel, so the
    relu adds it; the native conv adds its own bias in another order, equal to rounding), and
    the same backward, db included."""
    rng = np.random.default_rng(11)
    x, w, b, s, p = _conv_inputs(rng, CONV_CASES[0])
    full, cache = F.conv2d_forward(x, w, b, s, p)
    left, left_cache = F.conv2d_forward(x, w, b, s, p, add_bias=False)
    summed = left + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(summed, full, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(F.relu_forward(left, b)[0], F.relu_forward(summed)[0])
    (pooled, pcache), (want, wcache) = (F.relu_maxpool2d_forward(left, 2, 2, bias=b),
                                        F.relu_maxpool2d_forward(summed, 2, 2))
    np.testing.assert_array_equal(pooled, want)
    np.testing.assert_array_equal(pcache[1], wcache[1])  # argmax
    dout = rng.standard_normal(full.shape)
    for got, expected in zip(F.conv2d_backward(dout, left_cache), F.conv2d_backward(dout, cache)):
        np.testing.assert_array_equal(got, expected)
    xl, wl, bl = rng.standard_normal((4, 6)), rng.standard_normal((6, 3)), rng.standard_normal(3)
    out, lcache = F.linear_forward(xl, wl, bl, add_bias=False)
    np.testing.assert_array_equal(F.relu_forward(out, bl)[0],
                                  F.relu_forward(F.linear_forward(xl, wl, bl)[0])[0])
    assert F.linear_backward(rng.standard_normal((4, 3)), lcache)[2] is not None  # db
    with pytest.raises(ValueError, match=r"bias.shape=\(5,\) \(float64\): expected one float64 "
                                         r"per channel \(axis 1\) of x.shape=\(2, 4, 7, 7\)"):
        F.relu_forward(full, rng.standard_normal(5))
