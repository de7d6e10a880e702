"""Models: numeric gradients of the whole loss, the design study's sanity numbers (seeds/002),
overfitting, specs."""
import math

import numpy as np
import pytest

from gpucnn import nn
from gpucnn.gradcheck import numeric_gradient, rel_error
from gpucnn.models import Classifier, ThreeLayerConvNet, build_model, model_from_config
from gpucnn.specs import read_spec
from gpucnn.optim import Adam


def tiny_data(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 8, 8)), rng.integers(0, 10, n)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_three_layer_convnet_gradients_match_numeric(activation):
    X, y = tiny_data()
    model = ThreeLayerConvNet((3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                              weight_scale=1e-1, reg=0.3, dropout=0.3, dtype=np.float64, seed=1,
                              activation=activation)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    states = [d.rng.state() for d in dropouts]

    def loss_with_fixed_masks():
        for d, s in zip(dropouts, states):  # replay the generators: the same masks every call
            d.rng.set_state(s)
        return model.loss(X, y)

    loss, grads = loss_with_fixed_masks()
    assert set(grads) == set(model.parameters())
    assert all(d.rng.counter > s["counter"] for d, s in zip(dropouts, states)), "masks were drawn"
    for name, param in model.parameters().items():
        numeric = numeric_gradient(lambda _: loss_with_fixed_masks()[0], param)
        assert rel_error(grads[name], numeric) < 1e-7, name


def test_l2_term_is_half_reg_sum_of_squared_weights_only():
    X, y = tiny_data()
    kwargs = dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                  weight_scale=1e-1, dtype=np.float64, seed=4)
    plain, regd = ThreeLayerConvNet(reg=0.0, **kwargs), ThreeLayerConvNet(reg=0.7, **kwargs)
    loss0, g0 = plain.loss(X, y)
    loss1, g1 = regd.loss(X, y)
    params = regd.parameters()
    assert regd.weight_names() == ["net.0.weight", "net.4.weight", "net.7.weight"]
    expected = 0.5 * 0.7 * sum(np.sum(params[k] ** 2) for k in regd.weight_names())
    assert loss1 - loss0 == pytest.approx(expected, rel=1e-12)
    for k in params:
        extra = 0.7 * params[k] if k.endswith("weight") else 0.0
        np.testing.assert_allclose(g1[k], g0[k] + extra, rtol=1e-12, atol=1e-15)


def test_seed_002_sanity_initial_loss():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    model = ThreeLayerConvNet(seed=0)
    loss, _ = model.loss(X, y)
    assert abs(loss - math.log(10)) < 0.05
    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    assert loss_reg > loss + 0.1   # the design study (seeds/002): 2.3026 -> 2.5085


def test_overfits_100_samples():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((100, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 100)
    model = ThreeLayerConvNet((1, 8, 8), num_filters=8, filter_size=3, hidden_dim=100,
                              weight_scale=None, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    for it in range(60):
        idx = rng.choice(100, 50, replace=False)
        opt.step(model.loss(X[idx], y[idx])[1])
    assert np.mean(model.predict(X) == y) >= 0.95


def test_scores_are_test_time_and_predict_batches():
    X, _ = tiny_data(5)
    model = ThreeLayerConvNet((3, 8, 8), num_filters=2, filter_size=3, hidden_dim=6,
                              dropout=0.5, dtype=np.float64, seed=0)
    a, b = model.loss(X), model.loss(X)
    np.testing.assert_array_equal(a, b)   # dropout off without labels
    assert a.shape == (5, 10) and model.training
    np.testing.assert_array_equal(model.predict(X, batch_size=2), a.argmax(axis=1))


def test_seeded_models_are_identical_and_dropout_deterministic():
    X, y = tiny_data(4)
    kw = dict(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=5, dropout=0.5,
              dtype=np.float64, seed=9)
    a, b = ThreeLayerConvNet(**kw), ThreeLayerConvNet(**kw)
    la, ga = a.loss(X, y)
    lb, gb = b.loss(X, y)
    assert la == lb
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])
    assert ThreeLayerConvNet(**{**kw, "seed": 10}).loss(X, y)[0] != la


def test_spec_built_model_infers_sizes_and_rebuilds_from_config(tmp_path):
    spec = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"}, {"type": "linear", "out_features": 3}]
    model = build_model(spec, (2, 6, 6), reg=0.1, seed=0)
    assert model.parameters()["net.4.weight"].shape == (4 * 3 * 3, 3)
    assert model.loss(np.zeros((2, 2, 6, 6), np.float32)).shape == (2, 3)
    again = model_from_config(model.config())
    assert again.reg == 0.1
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(again.parameters()[k], v)
    toml = tmp_path / "net.toml"
    toml.write_text('[[layers]]\ntype = "conv2d"\nout_channels = 4\nkernel_size = 3\npadding = 1\n'
                    '[[layers]]\ntype = "relu"\n[[layers]]\ntype = "maxpool2d"\nkernel_size = 2\n'
                    '[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "linear"\nout_features = 3\n')
    assert read_spec(str(toml)) == spec


@pytest.mark.parametrize("spec, message", [
    ([{"type": "conv3d"}], r"layers\[0\].type='conv3d': expected one of conv2d"),
    ([{"type": "linear"}], r"layers\[0\] \(linear\): missing \['out_features'\]"),
    ([{"type": "linear", "out_features": 3, "size": 2}], r"unknown keys 'size'; expected"),
    ([{"type": "linear", "out_features": 0}], r"layers\[0\] \(linear\): out_features=0"),
    ([{"type": "flatten"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3}],
     r"layers\[1\] \(conv2d\): needs a \(C, H, W\) input"),
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 3}], r"end with a linear layer"),
    ([{"type": "maxpool2d", "kernel_size": 9}, {"type": "linear", "out_features": 2}],
     r"layers\[0\] \(maxpool2d\): input shape \(2, 6, 6\) gives an empty output"),
    ([], r"expected a non-empty list"),
    (["relu"], r"layers\[0\]='relu': expected a dict"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        build_model(spec, (2, 6, 6))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"filter_size=4: expected an odd"):
        ThreeLayerConvNet(filter_size=4)
    with pytest.raises(ValueError, match=r"activation='tanh'"):
        ThreeLayerConvNet(activation="tanh")
    with pytest.raises(ValueError, match=r"reg=-1"):
        ThreeLayerConvNet(reg=-1)
    with pytest.raises(ValueError, match=r"p=1.0: expected a drop probability"):
        ThreeLayerConvNet(dropout=1.0)
    with pytest.raises(ValueError, match=r"input_dim=\(3, 0, 8\)"):
        ThreeLayerConvNet(input_dim=(3, 0, 8))


def test_any_sequential_is_a_model():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4, dtype=np.float64, rng=0))
    model = Classifier(net, reg=0.2)
    X, y = np.random.default_rng(0).standard_normal((3, 3, 2, 2)), np.array([0, 3, 1])
    loss, grads = model.loss(X, y)
    assert set(grads) == {"net.1.weight", "net.1.bias"}
    w = model.parameters()["net.1.weight"]
    num = numeric_gradient(lambda _: model.loss(X, y)[0], w)
    assert rel_error(grads["net.1.weight"], num) < 1e-7
    assert model.config() is None
