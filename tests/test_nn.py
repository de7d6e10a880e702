"""Modules: parameters by name, gradients through a Sequential, modes and persistence."""
import numpy as np
import pytest

from gpucnn import nn
from gpucnn.device import DeviceError
from gpucnn.rng import Generator
from gpucnn.gradcheck import numeric_gradient, rel_error


def small_net(dtype=np.float64, p=0.0):
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=1, padding=1, dtype=dtype, rng=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(p, rng=Generator(seed=5)),
        nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, dtype=dtype, rng=1),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(4 * 2 * 3, 5, dtype=dtype, rng=2),
    )


def test_parameters_are_named_like_pytorch():
    net = small_net()
    assert list(net.parameters()) == ["0.weight", "0.bias", "4.weight", "4.bias", "7.weight", "7.bias"]
    assert net.parameters()["4.weight"].shape == (4, 3, 3, 2)
    assert net.parameters()["7.weight"].shape == (24, 5)


def test_sequential_gradients_match_numeric():
    rng = np.random.default_rng(0)
    net = small_net(p=0.3)
    x = rng.standard_normal((2, 2, 7, 9))
    state = net[3].rng.state()

    def forward(_):
        net[3].rng.set_state(state)  # the same dropout mask on every evaluation
        return net.forward(x)

    out = forward(None)
    dout = rng.standard_normal(out.shape)
    dx = net.backward(dout)
    grads = net.gradients()
    assert rel_error(dx, numeric_gradient(forward, x, dout)) < 1e-7
    for name, param in net.parameters().items():
        assert rel_error(grads[name], numeric_gradient(forward, param, dout)) < 1e-7, name


def test_first_layer_can_skip_the_input_gradient():
    net = small_net()
    out = net.forward(np.random.default_rng(1).standard_normal((2, 2, 7, 9)))
    assert net.backward(np.ones_like(out), need_dx=False) is None
    assert set(net.gradients()) == set(net.parameters())


def test_backward_without_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="Conv2d.backward called without a forward"):
        nn.Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))


def test_train_eval_switches_dropout():
    net = small_net(p=0.5).eval()
    assert not any(m.training for m in net.modules())
    x = np.random.default_rng(2).standard_normal((2, 2, 7, 9))
    np.testing.assert_array_equal(net.forward(x), net.forward(x))
    net.train()
    assert all(m.training for m in net.modules())
    assert not np.array_equal(net.forward(x), net.forward(x))


def test_state_dict_round_trip_and_mismatch_errors():
    a, b = small_net(), small_net()
    for p in b.parameters().values():
        p[...] = 0
    b.load_state_dict(a.state_dict())
    for name, p in b.parameters().items():
        np.testing.assert_array_equal(p, a.parameters()[name])
    sd = a.state_dict()
    sd["0.weight"] = sd["0.weight"][:1]
    with pytest.raises(ValueError, match=r"state_dict\['0.weight'\].shape=\(1, 2, 3, 3\)"):
        b.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"missing \['7.bias'\]"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "7.bias"})


def test_initialisation_he_and_weight_scale():
    conv = nn.Conv2d(16, 32, 3, rng=0)
    assert abs(conv.weight.std() - np.sqrt(2 / (16 * 9))) < 0.01
    assert conv.weight.dtype == np.float32 and not conv.bias.any()
    lin = nn.Linear(100, 50, weight_scale=1e-3, rng=0)
    assert abs(lin.weight.std() - 1e-3) < 1e-4
    np.testing.assert_array_equal(nn.Linear(4, 3, rng=7).weight, nn.Linear(4, 3, rng=7).weight)


def test_to_cpu_and_unusable_cuda(monkeypatch):
    from gpucnn import device as backend
    net = small_net().to("cpu")
    assert net.device == "cpu"
    monkeypatch.setattr(backend, "_cuda_status", backend.CudaStatus(False, "no GPU (test)"))
    with pytest.raises(DeviceError, match="no GPU"):
        net.to("cuda")


def test_bad_module_arguments():
    with pytest.raises(ValueError, match="kernel_size=0"):
        nn.Conv2d(1, 2, 0)
    with pytest.raises(ValueError, match="out_channels=0"):
        nn.Conv2d(1, 0, 3)
    with pytest.raises(ValueError, match=r"p=1.0"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential(nn.ReLU(), "relu")


@pytest.mark.parametrize("k", [1, 3, 5])
def test_same_padding_keeps_the_size_as_torchs(k):
    conv = nn.Conv2d(2, 3, k, padding="same", dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    out = conv(x)
    assert conv.padding == (k - 1) // 2 and out.shape == (2, 3, 7, 6)
    torch = pytest.importorskip("torch", reason="torch is not installed: no reference")
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(conv.weight),
                                          torch.tensor(conv.bias), padding="same")
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, stride, message", [
    (4, 1, r"padding='same' with kernel_size=4: expected an odd square kernel"),
    ((3, 5), 1, r"kernel_size=\(3, 5\)"),
    (3, 2, r"padding='same' with stride=2: expected stride 1"),
])
def test_same_padding_refuses_what_it_cannot_keep(kernel, stride, message):
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(1, 1, kernel, stride=stride, padding="same")


def test_a_spec_takes_same_padding_and_the_receptive_field_reads_it(tmp_path):
    from gpucnn.models import build_model, model_from_config, read_spec
    from gpucnn.receptive import receptive_fields

    spec = tmp_path / "net.toml"
    spec.write_text('[[layers]]\ntype = "conv2d"\nout_channels = 4\nkernel_size = 5\n'
                    'padding = "same"\n[[layers]]\ntype = "flatten"\n[[layers]]\n'
                    'type = "linear"\nout_features = 3\n')
    model = build_model(read_spec(str(spec)), (1, 6, 6))
    assert model.net[2].weight.shape == (4 * 6 * 6, 3)
    assert model_from_config(model.config()).net[0].padding == 2
    assert receptive_fields(read_spec(str(spec)), 6)[0].padding == 2
