"""gpucnn's device rules on the CUDA path, run on the CPU through the stand-in cupy.

functional's rule: float arrays given to one op live on one device, else one ValueError naming
them and saying ``.to()``; integer labels may live on the host.  nn's rule: ``load_state_dict``
copies values onto each parameter's device, and a CUDA model given device values never goes
through the host.
"""
import numpy as np
import pytest

from gpucnn import functional as F, nn
from gpucnn.rng import Generator

pytestmark = pytest.mark.usefixtures("fake_cupy")
RNG = np.random.default_rng(0)


def _r(*shape):
    return RNG.standard_normal(shape)


def _mixed_calls():
    """(op, arguments, names that must appear): each call has exactly one float array on the
    other device, given as the string "other:<name>" placeholder resolved per direction."""
    x, w, b = _r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4)
    out, _ = F.conv2d_forward(x, w, b, 1, 1)
    pooled, _ = F.maxpool2d_forward(x, 2, 2)
    xl, wl, bl = _r(2, 5), _r(5, 3), _r(3)
    return {
        "conv2d_forward x": (lambda on: F.conv2d_forward(on(x, True), on(w), on(b), 1, 1), "x", "w"),
        "conv2d_forward w": (lambda on: F.conv2d_forward(on(x), on(w, True), on(b), 1, 1), "w", "x"),
        "conv2d_forward b": (lambda on: F.conv2d_forward(on(x), on(w), on(b, True), 1, 1), "b", "x"),
        "conv2d_backward": (lambda on: F.conv2d_backward(
            on(out, True), F.conv2d_forward(on(x), on(w), on(b), 1, 1)[1]), "dout", "forward"),
        "maxpool2d_backward": (lambda on: F.maxpool2d_backward(
            on(pooled, True), F.maxpool2d_forward(on(x), 2, 2)[1]), "dout", "forward"),
        "relu_backward": (lambda on: F.relu_backward(on(x, True), F.relu_forward(on(x))[1]),
                          "dout", "forward"),
        "sigmoid_backward": (lambda on: F.sigmoid_backward(on(x, True), F.sigmoid_forward(on(x))[1]),
                             "dout", "forward"),
        "dropout_backward": (lambda on: F.dropout_backward(
            on(x, True), F.dropout_forward(on(x), 0.5, True, Generator(0))[1]), "dout", "forward"),
        "linear_forward x": (lambda on: F.linear_forward(on(xl, True), on(wl), on(bl)), "x", "w"),
        "linear_forward b": (lambda on: F.linear_forward(on(xl), on(wl), on(bl, True)), "b", "x"),
        "linear_backward": (lambda on: F.linear_backward(
            on(_r(2, 3), True), F.linear_forward(on(xl), on(wl), on(bl))[1]), "dout", "forward"),
        "mse_loss": (lambda on: F.mse_loss(on(xl), on(xl, True)), "target", "pred"),
        "l2_penalty": (lambda on: F.l2_penalty([on(wl), on(w, True)], 0.1), "weights[1]", "weights[0]"),
    }


CALLS = _mixed_calls()


@pytest.mark.parametrize("home", ["cpu", "cuda"])
@pytest.mark.parametrize("case", list(CALLS))
def test_a_float_array_on_the_other_device_is_one_clear_error(fake_cupy, case, home):
    call, odd, other = CALLS[case]
    away = "cuda" if home == "cpu" else "cpu"

    def on(a, is_odd=False):
        return fake_cupy.asarray(a) if (away if is_odd else home) == "cuda" else a

    with pytest.raises(ValueError) as e:
        call(on)
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("move them with .to()")
    assert f"{odd} on {away}" in msg and f"{other} on {home}" in msg


def test_host_labels_with_device_scores_work(fake_cupy):
    scores = _r(6, 4)
    y = np.array([0, 3, 1, 2, 3, 0])
    loss, dscores = F.softmax_cross_entropy(fake_cupy.asarray(scores), y)
    ref_loss, ref_d = F.softmax_cross_entropy(scores, y)
    assert abs(float(loss) - ref_loss) <= 1e-12 * ref_loss
    np.testing.assert_allclose(dscores.get(), ref_d, rtol=1e-12)


def test_device_labels_with_host_scores_are_one_clear_error(fake_cupy):
    with pytest.raises(ValueError, match=r"move them with \.to\(\)"):
        F.softmax_cross_entropy(_r(3, 4), fake_cupy.asarray(np.array([0, 1, 2])))


def test_the_readme_example_runs_on_cuda(fake_cupy):
    cp = fake_cupy
    x = np.random.rand(8, 1, 8, 8).astype(np.float32)
    w, b = np.random.randn(4, 1, 3, 3).astype(np.float32), np.zeros(4, np.float32)
    out, cache = F.conv2d_forward(cp.asarray(x), w=cp.asarray(w), b=cp.asarray(b), stride=1, pad=1)
    dx, dw, db = F.conv2d_backward(cp.ones_like(out), cache)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 4 * 4, 10, rng=1)).to("cuda")
    loss, dscores = F.softmax_cross_entropy(net(cp.asarray(x)), np.arange(8) % 10)
    net.backward(dscores)
    grads = net.gradients()
    assert set(grads) == {"0.weight", "0.bias", "4.weight", "4.bias"}
    assert all(isinstance(g, cp.ndarray) for g in (dx, dw, db, *grads.values()))
    ref = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 4 * 4, 10, rng=1))
    ref_loss, _ = F.softmax_cross_entropy(ref(x), np.arange(8) % 10)
    assert abs(float(loss) - ref_loss) <= 1e-5 * ref_loss


# --- load_state_dict --------------------------------------------------------------------------

def _net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, rng=0, dtype=np.float64), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 5, rng=1, dtype=np.float64))


def _values(cp):
    src = _net()
    for p in src.parameters().values():
        p[...] = RNG.standard_normal(p.shape)
    return src.state_dict(), {k: cp.asarray(v) for k, v in src.state_dict().items()}


def test_a_cpu_model_takes_device_values(fake_cupy):
    host, device_values = _values(fake_cupy)
    model = _net()
    model.load_state_dict(device_values)
    for name, p in model.parameters().items():
        assert isinstance(p, np.ndarray)
        np.testing.assert_array_equal(p, host[name])


def test_a_cuda_model_takes_device_values_without_touching_the_host(fake_cupy):
    host, device_values = _values(fake_cupy)
    model = _net().to("cuda")
    with fake_cupy.counting() as c:
        model.load_state_dict(device_values)
    assert not c.syncs and not c.uploads, c.report()
    for name, p in model.parameters().items():
        assert isinstance(p, fake_cupy.ndarray)
        np.testing.assert_array_equal(p.get(), host[name])
        device_values[name] += 1  # a copy, not the caller's array
        np.testing.assert_array_equal(p.get(), host[name])


def test_a_cuda_model_takes_host_values_with_one_upload_each(fake_cupy):
    host, _ = _values(fake_cupy)
    model = _net().to("cuda")
    with fake_cupy.counting() as c:
        model.load_state_dict(host)
    assert not c.syncs and len(c.uploads) == len(host), c.report()
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p.get(), host[name])
