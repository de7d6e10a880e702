"""gpucnn <-> PyTorch modules (``gpucnn.interop.to_torch`` / ``from_torch``): for every layer
type, the torch module computes gpucnn's forward and backward (float64 to 1e-10, float32 to 1e-4
relative to the largest value), a round trip back to gpucnn gives bit-identical outputs and
gradients, and what gpucnn lacks is refused by path and type."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from interop_cases import CASES, make_case, randomize_batchnorm  # noqa: E402
from gpucnn import nn  # noqa: E402
from gpucnn.interop import from_torch, to_torch  # noqa: E402
from gpucnn.interop.torch_layers import GlobalAvgPool2d, Residual  # noqa: E402

T = torch.nn
RTOL = {np.float32: 1e-4, np.float64: 1e-10}


def close(got, want, rtol, scale=0.0):
    """Equal to ``rtol`` relative to the largest of |want| and ``scale``."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(np.abs(want).max(), scale, 1e-30))


def gpucnn_pass(net, x, dout):
    """(output, input gradient, parameter gradients in named_parameters order)."""
    out = net.forward(x)
    dx = net.backward(dout)
    grads = net.gradients()
    return out, dx, [grads[name] for name, _ in net.named_parameters()]


def torch_pass(module, x, dout):
    xt = torch.from_numpy(x).requires_grad_(True)
    out = module(xt)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in module.parameters()]


def assert_passes_match(ours, theirs, rtol, transposed=()):
    """Outputs, input and parameter gradients (in order) equal to ``rtol``; a gradient that is
    rounding noise (a conv bias before batch norm: 0 in exact arithmetic) is compared to the
    largest gradient."""
    (out, dx, grads), (t_out, t_dx, t_grads) = ours, theirs
    close(t_out, out, rtol)
    close(t_dx, dx, rtol)
    assert len(grads) == len(t_grads)
    scale = max(np.abs(g).max() for g in grads)
    for i, (g, tg) in enumerate(zip(grads, t_grads)):
        close(tg.T if i in transposed else tg, g, rtol, scale)


def linear_weights(net):
    return {i for i, (name, p) in enumerate(net.named_parameters())
            if name.endswith("weight") and p.ndim == 2}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES)
def test_torch_twin_computes_gpucnns_forward_and_backward(case, dtype):
    model, _, x = make_case(case, dtype)
    twin = to_torch(model)
    assert not twin.training
    dout = np.random.default_rng(5).normal(size=model.forward(x).shape).astype(dtype)
    assert_passes_match(gpucnn_pass(model.net, x, dout), torch_pass(twin, x, dout), RTOL[dtype],
                        linear_weights(model.net))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES)
def test_round_trip_gives_bit_identical_outputs_and_gradients(case, dtype):
    model, _, x = make_case(case, dtype)
    back = from_torch(to_torch(model))
    dtypes = [p.dtype for p in model.parameters().values()]
    assert [p.dtype for p in back.parameters().values()] == dtypes
    dout = np.random.default_rng(5).normal(size=model.forward(x).shape).astype(dtype)
    ours, theirs = gpucnn_pass(model.net, x, dout), gpucnn_pass(back, x, dout)
    for a, b in zip([*ours[:2], *ours[2]], [*theirs[:2], *theirs[2]]):
        np.testing.assert_array_equal(a, b)
    state = list(back.state_dict().values())
    assert all(np.array_equal(a, b) for a, b in zip(model.net.state_dict().values(), state))


def test_weights_are_copied_transposed_and_batch_norm_statistics_are_buffers():
    model, _, _ = make_case("batchnorm1d")
    twin = to_torch(model)
    linear, bn = twin[0], twin[1]
    assert torch.equal(linear.weight, torch.from_numpy(model.net[0].weight.T))
    for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
                         ("running_var", "running_var")):
        assert np.array_equal(getattr(bn, theirs).detach().numpy(), getattr(model.net[1], ours))
    assert {n for n, _ in twin.named_buffers()} >= {"1.running_mean", "1.running_var"}
    model.net[0].weight[...] = 0  # the twin owns its weights
    assert linear.weight.abs().sum() > 0


def test_training_mode_batch_statistics_and_running_updates_match():
    model, _, x = make_case("resnet.toml", np.float64)
    model.train()
    twin = to_torch(model)
    assert all(m.training for m in twin.modules())
    dout = np.random.default_rng(5).normal(size=(len(x), 10))
    assert_passes_match(gpucnn_pass(model.net, x, dout), torch_pass(twin, x, dout), 1e-10,
                        linear_weights(model.net))
    ours = dict(model.net.named_buffers())
    theirs = {k: v for k, v in twin.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    assert len(ours) == len(theirs) == 10
    for a, b in zip(ours.values(), theirs.values()):
        close(b.numpy(), a, 1e-12)


def test_each_modules_mode_is_carried_both_ways():
    model, _, _ = make_case("residual with conv projection")
    model.train()
    model.net[0].body[1].eval()
    twin = to_torch(model)
    assert twin.training and twin[0].body.training and not twin[0].body[1].training
    twin[0].projection.eval()
    back = from_torch(twin)
    assert [m.training for m in back.modules()] == [m.training for m in twin.modules()]


def hand_written_torch_net():
    """A torch net written as a PyTorch user would, with every form from_torch takes."""
    torch.manual_seed(0)
    body = T.Sequential(T.Conv2d(6, 6, 3, padding="same", bias=False), T.BatchNorm2d(6, affine=False),
                        T.LeakyReLU(0.1))
    net = T.Sequential(
        T.Conv2d(3, 6, (3, 3), stride=(1, 1), padding=(1, 1)), T.BatchNorm2d(6, eps=1e-3, momentum=0.2),
        T.ReLU(inplace=True), Residual(body), T.MaxPool2d((2, 2)), T.Sigmoid(),
        Residual(T.Sequential(T.Conv2d(6, 8, 3, stride=2, padding="valid"), T.Tanh()),
                 T.Conv2d(6, 8, 3, stride=2)),
        T.AvgPool2d(1, 1), T.AdaptiveAvgPool2d(1), T.Flatten(), T.Dropout(0.3),
        T.Sequential(T.Linear(8, 7), T.BatchNorm1d(7)), T.Linear(7, 5))
    return net.double()


def test_a_hand_written_torch_net_converts_and_computes_the_same():
    net = hand_written_torch_net()
    x = np.random.default_rng(0).normal(size=(4, 3, 10, 10))
    with torch.no_grad():
        for _ in range(3):  # running statistics that are not the initial 0 and 1
            net(torch.from_numpy(np.random.default_rng(_).normal(1, 2, size=x.shape)))
    net.eval()
    ours = from_torch(net)
    assert [type(m).__name__ for m in ours.layers][7:10] == ["AvgPool2d", "GlobalAvgPool2d", "Flatten"]
    dout = np.random.default_rng(5).normal(size=(4, 5))
    (out, dx, grads), (t_out, t_dx, t_grads) = gpucnn_pass(ours, x, dout), torch_pass(net, x, dout)
    close(t_out, out, 1e-10)
    close(t_dx, dx, 1e-10)
    # Names match (AdaptiveAvgPool2d + Flatten became GlobalAvgPool2d + Flatten), but for
    # gamma/beta (torch's weight/bias), which the affine=False batch norm lacks in torch.
    ours_named = dict(zip((n for n, _ in ours.named_parameters()), grads))
    theirs_named = dict(zip((n for n, _ in net.named_parameters()), t_grads))
    renamed = {n.replace("gamma", "weight").replace("beta", "bias"): g for n, g in ours_named.items()}
    assert set(renamed) - set(theirs_named) == {"3.body.1.weight", "3.body.1.bias"}
    scale = max(np.abs(g).max() for g in t_grads)
    for name, g in theirs_named.items():
        close(g.T if g.ndim == 2 else g, renamed[name], 1e-10, scale)
    pooled = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    want = GlobalAvgPool2d()(torch.from_numpy(pooled)).numpy()
    close(from_torch(GlobalAvgPool2d())(pooled), want, 1e-12)


def test_dropout_streams_come_from_the_seed():
    net = T.Sequential(T.Linear(6, 6), T.Dropout(0.5), T.Linear(6, 3), T.Dropout(0.5)).double()
    x = np.ones((5, 6))
    first, again, other = (from_torch(net, seed=s) for s in (4, 4, 5))
    assert np.array_equal(first(x), again(x)) and not np.array_equal(first(x), other(x))


class Custom(T.Sequential):
    pass


@pytest.mark.parametrize("module, message", [
    (T.Sequential(T.Linear(2, 2), T.GELU()), "module '1' (torch.nn.modules.activation.GELU): "
                                            "gpucnn has no such layer; it converts Sequential"),
    (T.Sequential(T.Sequential(T.ReLU(), T.ReLU(), T.Conv2d(4, 4, 3, groups=2))),
     "module '0.2' (torch.nn.modules.conv.Conv2d): groups=2, dilation=(1, 1)"),
    (Residual(T.Identity()), "module 'body' (torch.nn.modules.linear.Identity): gpucnn has no such"),
    (T.Sequential(T.AdaptiveAvgPool2d(2), T.Flatten()),
     "module '0' (torch.nn.modules.pooling.AdaptiveAvgPool2d): expected AdaptiveAvgPool2d(1)"),
    (T.Sequential(T.AdaptiveAvgPool2d(1)), "module '0' (torch.nn.modules.pooling.AdaptiveAvgPool2d)"),
    (T.Flatten(start_dim=2), "module (torch.nn.modules.flatten.Flatten): start_dim=2, end_dim=-1"),
    (T.BatchNorm2d(3, track_running_stats=False), "module (torch.nn.modules.batchnorm.BatchNorm2d): "
                                                  "track_running_stats=False"),
    (T.BatchNorm1d(3, momentum=None), "module (torch.nn.modules.batchnorm.BatchNorm1d): "
                                      "track_running_stats=True, momentum=None"),
    (T.MaxPool2d(2, padding=1),
     "module (torch.nn.modules.pooling.MaxPool2d): padding=1: expected padding=0"),
    (T.AvgPool2d(2, ceil_mode=True), "ceil_mode=True: expected ceil_mode=False"),
    (T.MaxPool2d((2, 3)), "kernel_size=(2, 3): expected equal sizes on both axes"),
    (T.Conv2d(3, 3, 3, stride=(1, 2)), "stride=(1, 2): expected equal sizes on both axes"),
    (T.Conv2d(3, 3, 2, padding="same"), "padding='same' with kernel_size=(2, 2): expected odd"),
    (T.Dropout(1.0), "module (torch.nn.modules.dropout.Dropout): p=1.0: expected a drop probability"),
    (T.Linear(2, 2).half(), "module (torch.nn.modules.linear.Linear): dtype=float16: expected"),
    (Custom(T.ReLU()), "module (test_interop_torch.Custom): gpucnn has no such layer"),
])
def test_what_gpucnn_lacks_is_refused_by_path_and_type(module, message):
    with pytest.raises(ValueError) as e:
        from_torch(module)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_arguments_are_one_line():
    with pytest.raises(TypeError, match=r"^module=ndarray: expected a torch.nn.Module$"):
        from_torch(np.zeros(3))
    with pytest.raises(ValueError, match=r"^module: its tensors are on \['meta'\]: expected the "
                                         r"CPU or CUDA, one of them$"):
        from_torch(T.Linear(2, 2, device="meta"))

    class Scale(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"^1=Scale: no PyTorch equivalent is known"):
        to_torch(nn.Sequential(nn.ReLU(), Scale()))


def test_a_model_without_input_shape_flattens_before_each_linear_it_cannot_rule_out():
    net = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))
    twin = to_torch(net)
    assert [type(m).__name__ for m in twin] == ["Flatten", "Linear", "ReLU", "Linear"]
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)
    close(twin(torch.from_numpy(x)).detach().numpy(), net(x), 1e-6)
    randomize_batchnorm(net, np.random.default_rng(0))  # no batch norm: a no-op
