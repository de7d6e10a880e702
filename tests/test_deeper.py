"""Batch norm, average pooling, LeakyReLU, tanh and residual blocks: numeric gradients (float64),
naive loop references written from the formulas, running statistics, modules, specs, errors."""
import math

import numpy as np
import pytest

from gpucnn import functional as F
from gpucnn import nn
from gpucnn.gradcheck import TOLERANCE, _deeper_checks, check_ops, numeric_gradient, rel_error
from gpucnn.models import build_model, model_from_config
from gpucnn.specs import read_spec

import deeper_reference as ref

RESNET = __file__.rsplit("/tests/", 1)[0] + "/examples/resnet.toml"


# --- gradient checks --------------------------------------------------------------------------

def test_gradcheck_rows_of_every_new_op_pass():
    names = {row[0] for row in _deeper_checks(np.random.default_rng(0))}
    rows = [r for r in check_ops("cpu") if r[0] in names]
    assert {r[0] for r in rows} == names
    assert {r[1] for r in rows if "batchnorm" in r[0]} == {"x", "gamma", "beta"}
    bad = [r for r in rows if not r[2] < TOLERANCE]
    assert not bad


# --- against the naive references -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4, 5), (3, 1, 1, 2), (5, 2, 3, 1)])
@pytest.mark.parametrize("momentum", [0.1, 0.0, 1.0])
def test_batchnorm_train_equals_loop_reference(shape, momentum):
    rng = np.random.default_rng(1)
    C = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    g, b, dout = rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(shape)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
    want_out, want_rm, want_rv = ref.batchnorm_forward(x, g, b, rm, rv, True, momentum, 1e-3)
    fwd, bwd = ((F.batchnorm_forward, F.batchnorm_backward) if len(shape) == 2 else
                (F.spatial_batchnorm_forward, F.spatial_batchnorm_backward))
    out, cache = fwd(x, g, b, rm, rv, True, momentum, 1e-3)   # rm, rv updated in place
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, want_rm, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-12, atol=1e-15)
    dx, dg, db = bwd(dout, cache)
    want = ref.batchnorm_backward_staged(x, g, dout, 1e-3)   # the chain rule stage by stage
    for got, w in zip((dx, dg, db), want):
        np.testing.assert_allclose(got, w, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5)])
def test_batchnorm_eval_uses_running_statistics_and_leaves_them(shape):
    rng = np.random.default_rng(2)
    C = shape[1]
    x, g, b = rng.standard_normal(shape), rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
    before = rm.copy(), rv.copy()
    fwd, bwd = ((F.batchnorm_forward, F.batchnorm_backward) if len(shape) == 2 else
                (F.spatial_batchnorm_forward, F.spatial_batchnorm_backward))
    out, cache = fwd(x, g, b, rm, rv, False)
    want, _, _ = ref.batchnorm_forward(x, g, b, rm, rv, False, 0.1, 1e-5)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_array_equal(rm, before[0]), np.testing.assert_array_equal(rv, before[1])
    dout = rng.standard_normal(shape)
    view = (1, C) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(bwd(dout, cache)[0],
                               dout * (g / np.sqrt(rv + 1e-5)).reshape(view), rtol=1e-12)


def test_batchnorm_without_running_statistics_and_need_dx_false():
    x = np.random.default_rng(3).standard_normal((4, 3))
    out, cache = F.batchnorm_forward(x, np.ones(3), np.zeros(3), None, None, True)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    dx, dg, db = F.batchnorm_backward(np.ones_like(x), cache, need_dx=False)
    assert dx is None and dg.shape == db.shape == (3,)


POOL_CASES = [(2, 3, 6, 6, 2, 2), (2, 2, 7, 8, 3, 2), (1, 2, 5, 7, 2, 3), (2, 1, 4, 4, 4, 1),
              (1, 1, 9, 5, 3, 1), (3, 2, 5, 5, 1, 2)]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("cnhw", [False, True], ids=["nchw", "cnhw-view"])
def test_avgpool_equals_loop_reference(case, cnhw):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, C, H, W))
    if cnhw:  # the memory layout conv outputs have: an NCHW view of a (C, N, H, W) array
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    out, cache = F.avgpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape)
    want_out, want_dx = ref.avgpool_forward_backward(x, dout, size, stride)
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F.avgpool2d_backward(dout, cache), want_dx, rtol=1e-12, atol=1e-14)


def test_global_avgpool_equals_loop_reference():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 2))
    out, cache = F.global_avgpool2d_forward(x)
    dout = rng.standard_normal((3, 4))
    want_out, want_dx = ref.global_avgpool_forward_backward(x, dout)
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    np.testing.assert_allclose(F.global_avgpool2d_backward(dout, cache), want_dx, rtol=1e-12)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, -0.5, 1.5])
def test_leaky_relu_equals_torch_semantics(slope):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0, np.nan]])
    out, cache = F.leaky_relu_forward(x, slope)
    dout = np.arange(1.0, 7.0)[None]
    want_out, want_dx = ref.leaky_relu_forward_backward(x, dout, slope)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(F.leaky_relu_backward(dout, cache), want_dx)
    assert F.leaky_relu_backward(dout, cache)[0, 2] == slope * 3   # at 0: the slope, as torch


def test_tanh_equals_math_tanh():
    x = np.linspace(-30, 30, 60).reshape(3, 20)
    out, cache = F.tanh_forward(x)
    dout = np.ones_like(x)
    np.testing.assert_allclose(out, [[math.tanh(v) for v in row] for row in x], rtol=1e-14)
    np.testing.assert_allclose(F.tanh_backward(dout, cache),
                               [[1 - math.tanh(v) ** 2 for v in row] for row in x], atol=1e-15)


@pytest.mark.parametrize("op", ["bn", "sbn", "avg", "gap", "leaky", "tanh"])
def test_float32_stays_float32(op):
    x = np.random.default_rng(6).standard_normal((4, 3, 4, 4)).astype(np.float32)
    c = np.ones(3, np.float32)
    fwd, bwd, args = {
        "bn": (F.batchnorm_forward, F.batchnorm_backward, (c, 0 * c, 0 * c, c.copy(), True)),
        "sbn": (F.spatial_batchnorm_forward, F.spatial_batchnorm_backward,
                (c, 0 * c, 0 * c, c.copy(), True)),
        "avg": (F.avgpool2d_forward, F.avgpool2d_backward, (2,)),
        "gap": (F.global_avgpool2d_forward, F.global_avgpool2d_backward, ()),
        "leaky": (F.leaky_relu_forward, F.leaky_relu_backward, (0.1,)),
        "tanh": (F.tanh_forward, F.tanh_backward, ()),
    }[op]
    x = x[:, :, 0, 0] if op == "bn" else x
    out, cache = fwd(x, *args)
    grads = bwd(np.ones_like(out), cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


# --- modules ----------------------------------------------------------------------------------

def test_batchnorm_module_running_stats_follow_torch_momentum():
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm2d(3, momentum=0.25, dtype=np.float64)
    batches = [rng.standard_normal((4, 3, 2, 2)) * 2 + 1 for _ in range(3)]
    rm, rv = np.zeros(3), np.ones(3)
    for x in batches:
        bn(x)
        rm = 0.75 * rm + 0.25 * x.mean(axis=(0, 2, 3))
        rv = 0.75 * rv + 0.25 * x.var(axis=(0, 2, 3), ddof=1)   # unbiased, as torch
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
    bn.eval()
    x = batches[0]
    np.testing.assert_allclose(bn(x), (x - rm[None, :, None, None]) / np.sqrt(rv + 1e-5)[None, :, None, None])
    np.testing.assert_array_equal(bn.running_mean, rm)   # eval leaves them


def test_batchnorm_state_is_saved_loaded_and_moved():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    x = np.random.default_rng(8).standard_normal((6, 4)).astype(np.float32)
    net(x)
    state = net.state_dict()
    assert {"1.running_mean", "1.running_var", "1.gamma", "1.beta"} <= set(state)
    assert set(net.parameters()) == {"0.weight", "0.bias", "1.gamma", "1.beta"}   # buffers untrained
    other = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    other.load_state_dict(state)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(x), other(x))
    running = other[1].running_mean
    other.to("cpu")
    np.testing.assert_array_equal(other[1].running_mean, running)


def test_gamma_and_beta_are_not_l2_regularised():
    spec = [{"type": "linear", "out_features": 5}, {"type": "batchnorm1d"}, {"type": "relu"},
            {"type": "linear", "out_features": 3}]
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    plain = build_model(spec, (4,), reg=0.0, dtype=np.float64, seed=1)
    reg = build_model(spec, (4,), reg=1.0, dtype=np.float64, seed=1)
    reg.net[1].gamma[...] = plain.net[1].gamma[...] = 3.0   # a penalty would be large
    assert reg.weight_names() == ["net.0.weight", "net.3.weight"]
    (_, g0), (_, g1) = plain.loss(X, y), reg.loss(X, y)
    for k in ("net.1.gamma", "net.1.beta"):
        np.testing.assert_array_equal(g0[k], g1[k])
    np.testing.assert_allclose(g1["net.0.weight"] - g0["net.0.weight"], reg.net[0].weight)


def _module_gradcheck(module, x):
    """Analytic input and parameter gradients of a float64 module vs central differences."""
    rng = np.random.default_rng(10)
    dout = rng.standard_normal(module(x).shape)
    dx = module.backward(dout)
    errors = {"x": rel_error(dx, numeric_gradient(lambda _: module(x), x, dout))}
    grads = module.gradients()
    for name, p in module.parameters().items():
        errors[name] = rel_error(grads[name], numeric_gradient(lambda _: module(x), p, dout))
    return errors


def test_residual_block_with_strided_projection_gradients():
    # no conv bias before batch norm: BN cancels it, its true gradient is 0 and a relative error
    # of numeric noise against 0 is meaningless
    body = nn.Sequential(nn.Conv2d(2, 3, 3, 2, 1, bias=False, dtype=np.float64, rng=0),
                         nn.BatchNorm2d(3, dtype=np.float64), nn.LeakyReLU(0.1),
                         nn.Conv2d(3, 3, 3, padding=1, dtype=np.float64, rng=1))
    block = nn.Residual(body, nn.Conv2d(2, 3, 1, stride=2, dtype=np.float64, rng=2))
    x = np.random.default_rng(11).standard_normal((3, 2, 5, 5))
    errors = _module_gradcheck(block, x)
    assert "projection.weight" in errors and "body.1.gamma" in errors
    assert max(errors.values()) < TOLERANCE, errors


def test_identity_residual_adds_dout_to_the_body_gradient():
    lin = nn.Linear(4, 4, dtype=np.float64, rng=0)
    block = nn.Residual(nn.Sequential(lin, nn.Tanh()))
    x = np.random.default_rng(12).standard_normal((3, 4))
    np.testing.assert_allclose(block(x), np.tanh(x @ lin.weight + lin.bias) + x)
    assert max(_module_gradcheck(block, x).values()) < TOLERANCE
    block(x)
    assert block.backward(np.ones((3, 4)), need_dx=False) is None


# --- layer specs ------------------------------------------------------------------------------

def test_resnet_example_builds_with_inferred_shapes_and_round_trips():
    model = build_model(read_spec(RESNET), (3, 32, 32), seed=3)
    proj = model.net[5].projection
    assert (proj.kernel_size, proj.stride, proj.in_channels, proj.out_channels) == ((1, 1), 2, 16, 32)
    assert model.net[3].projection is None
    assert "\n  (5): Residual(\n    body=Sequential(\n      (0): Conv2d(16, 32" in repr(model.net)
    assert model.loss(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)
    again = model_from_config(model.config())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, again.state_dict()[k])


@pytest.mark.parametrize("layer,input_dim,out", [
    ({"type": "avgpool2d", "kernel_size": 3, "stride": 2}, (2, 7, 8), (2, 3, 3)),
    ({"type": "global_avgpool2d"}, (5, 3, 3), (5,)),
    ({"type": "batchnorm2d", "momentum": 0.5}, (2, 4, 4), (2, 4, 4)),
    ({"type": "leaky_relu", "negative_slope": 0.2}, (3,), (3,)),
    ({"type": "tanh"}, (3,), (3,)),
    ({"type": "residual", "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3,
                                      "stride": 3}]}, (2, 7, 8), (4, 2, 2)),
    ({"type": "residual", "layers": [{"type": "linear", "out_features": 6}]}, (3,), (6,)),
])
def test_spec_shape_inference(layer, input_dim, out):
    spec = [layer, {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    model = build_model(spec, input_dim, seed=0)
    x = np.zeros((2, *input_dim), np.float32)
    assert model.net[0](x).shape == (2, *out)


def test_dropout_inside_a_residual_gets_its_own_stream():
    spec = [{"type": "dropout", "p": 0.5}, {"type": "flatten"},
            {"type": "residual", "layers": [{"type": "dropout", "p": 0.5}, {"type": "tanh"}]},
            {"type": "linear", "out_features": 2}]
    model = build_model(spec, (4,), seed=0)
    streams = [g.stream for _, g in model.named_generators()]
    assert len(streams) == len(set(streams)) == 2


@pytest.mark.parametrize("layer,input_dim,match", [
    ({"type": "residual", "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3}],
      "projection": "none"}, (2, 6, 6), r"layers\[0\] \(residual\): projection='none'"),
    ({"type": "residual", "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 1,
                                      "padding": 2}]}, (2, 6, 6),
     r"layers\[0\] \(residual\): projection='auto': the body maps \(2, 6, 6\) to \(3, 10, 10\)"),
    ({"type": "residual", "layers": [{"type": "flatten"}]}, (2, 3, 3), r"layers\[0\] \(residual\)"),
    ({"type": "residual", "layers": [{"type": "conv2d", "kernel_size": 3}]}, (2, 6, 6),
     r"layers\[0\] \(residual\): layers\[0\] \(conv2d\): missing \['out_channels'\]"),
    ({"type": "residual", "layers": []}, (2, 6, 6), r"layers=\[\]: expected a non-empty list"),
    ({"type": "residual", "layers": [{"type": "tanh"}], "projection": "conv"}, (2, 6, 6),
     r"projection='conv': expected 'auto' or 'none'"),
    ({"type": "batchnorm2d"}, (4,), r"layers\[0\] \(batchnorm2d\): needs a \(C, H, W\) input"),
    ({"type": "batchnorm1d"}, (2, 3, 3), r"layers\[0\] \(batchnorm1d\): needs a \(D,\) input"),
    ({"type": "batchnorm2d", "eps": 0}, (2, 3, 3), r"eps=0: expected a number in \(0, inf\)"),
    ({"type": "leaky_relu", "negative_slope": "x"}, (3,), r"negative_slope='x': expected a number"),
    ({"type": "avgpool2d", "kernel_size": 5}, (2, 3, 3), r"layers\[0\] \(avgpool2d\): input shape"),
])
def test_bad_specs_name_the_layer(layer, input_dim, match):
    with pytest.raises(ValueError, match=match):
        build_model([layer, {"type": "flatten"}, {"type": "linear", "out_features": 2}],
                    input_dim)


# --- bad input --------------------------------------------------------------------------------

_X2, _X4, _C = np.ones((4, 3)), np.ones((2, 3, 2, 2)), np.ones(3)


@pytest.mark.parametrize("call,match", [
    (lambda: F.batchnorm_forward(_X4, _C, _C, _C, _C, True), r"x.shape=\(2, 3, 2, 2\): expected 2 dim"),
    (lambda: F.spatial_batchnorm_forward(_X2, _C, _C, _C, _C, True), r"x.shape=\(4, 3\): expected 4"),
    (lambda: F.batchnorm_forward(_X2, np.ones(4), _C, _C, _C, True),
     r"gamma.shape=\(4,\): expected \(3,\), one per channel"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, _C, True, eps=0), r"eps=0: expected a number in \(0, inf\)"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, _C, True, eps=-1e-5), r"eps=-1e-05: expected"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, _C, True, momentum=1.5),
     r"momentum=1.5: expected a number in \[0, 1\]"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, _C, True, momentum=-0.1), r"momentum=-0.1: "),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, _C, True, momentum=None), r"momentum=None: "),
    (lambda: F.batchnorm_forward(np.ones((1, 3)), _C, _C, _C, _C, True),
     r"x.shape=\(1, 3\): expected more than 1 value per channel when training"),
    (lambda: F.spatial_batchnorm_forward(np.ones((1, 3, 1, 1)), _C, _C, _C, _C, True),
     r"expected more than 1 value per channel when training"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, None, None, False), r"running_mean=None: expected"),
    (lambda: F.batchnorm_forward(_X2, _C, _C, _C, None, True), r"running_mean and running_var"),
    (lambda: F.batchnorm_forward(_X2, _C.astype(np.float32), _C, _C, _C, True),
     r"gamma.dtype=float32: expected x.dtype=float64"),
    (lambda: F.batchnorm_backward(np.ones((4, 2)), F.batchnorm_forward(_X2, _C, _C, _C, _C, True)[1]),
     r"dout.shape=\(4, 2\): expected \(4, 3\)"),
    (lambda: F.avgpool2d_forward(_X4, 3), r"size=3: larger than the input"),
    (lambda: F.avgpool2d_forward(_X4, 2, 0), r"stride=0: expected an integer >= 1"),
    (lambda: F.avgpool2d_forward(_X2, 2), r"x.shape=\(4, 3\): expected 4 dimensions"),
    (lambda: F.avgpool2d_backward(np.ones((2, 3, 2, 2)), F.avgpool2d_forward(_X4, 2)[1]),
     r"dout.shape=\(2, 3, 2, 2\): expected \(2, 3, 1, 1\)"),
    (lambda: F.global_avgpool2d_forward(_X2), r"x.shape=\(4, 3\): expected 4 dimensions"),
    (lambda: F.leaky_relu_forward(_X2, "0.1"), r"negative_slope='0.1': expected a number"),
    (lambda: F.leaky_relu_forward(_X2, None), r"negative_slope=None: expected a number"),
    (lambda: F.leaky_relu_forward(_X2, True), r"negative_slope=True: expected a number"),
    (lambda: F.tanh_backward(np.ones((3, 3)), F.tanh_forward(_X2)[1]), r"dout.shape=\(3, 3\)"),
    (lambda: nn.BatchNorm2d(0), r"num_features=0: expected an integer >= 1"),
    (lambda: nn.BatchNorm1d(3, eps=0.0), r"eps=0.0: expected a number in \(0, inf\)"),
    (lambda: nn.BatchNorm1d(3, momentum=2), r"momentum=2: expected a number in \[0, 1\]"),
    (lambda: nn.LeakyReLU("a"), r"negative_slope='a': expected a number"),
    (lambda: nn.AvgPool2d(0), r"kernel_size=0: expected an integer >= 1"),
    (lambda: nn.Residual(nn.Sequential(nn.Linear(3, 2)))(_X2),
     r"body\(x\).shape=\(4, 2\): expected the shortcut's \(4, 3\); give a projection"),
    (lambda: nn.BatchNorm1d(3)(np.ones((1, 3), np.float32)),
     r"expected more than 1 value per channel when training"),
])
def test_bad_input_is_a_one_line_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_residual_rejects_non_modules():
    with pytest.raises(TypeError, match=r"body=str: expected a gpucnn.nn.Module"):
        nn.Residual("conv")
    with pytest.raises(TypeError, match=r"projection=int: expected a gpucnn.nn.Module or None"):
        nn.Residual(nn.Tanh(), 1)


def test_batch_of_one_is_fine_in_eval_and_spatially_in_training():
    bn = nn.BatchNorm2d(3)
    assert bn(np.ones((1, 3, 2, 2), np.float32)).shape == (1, 3, 2, 2)   # 4 values per channel
    bn1 = nn.BatchNorm1d(3).eval()
    assert bn1(np.ones((1, 3), np.float32)).shape == (1, 3)


def test_receptive_fields_know_the_new_layers():
    from gpucnn.receptive import closed_form_field, empirical_field, receptive_fields, spatial_layers

    f64 = np.float64
    net = nn.Sequential(nn.Conv2d(2, 3, 3, 1, 1, dtype=f64, rng=0), nn.BatchNorm2d(3, dtype=f64),
                        nn.LeakyReLU(), nn.AvgPool2d(3, 2), nn.Tanh(),
                        nn.Conv2d(3, 3, 3, dtype=f64, rng=1), nn.GlobalAvgPool2d(), nn.Linear(3, 2))
    rows = receptive_fields(net, 21)
    assert [r.name for r in rows] == ["conv2d", "avgpool2d", "conv2d"]
    assert rows[-1].field == closed_form_field([3, 3, 3], [1, 2, 1])
    assert empirical_field(nn.Sequential(*spatial_layers(net)), 21, 2)[1] == rows[-1].field
