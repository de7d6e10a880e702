"""On a GPU: batch norm, average pooling, LeakyReLU, tanh and residual nets on CuPy arrays
against the NumPy path (float64 to 1e-10 relative, float32 to 1e-4), running statistics updated
in place on the device, buffers moved by ``.to()``, gradient rows of ``gpucnn check`` on CUDA.
Skipped with the reason where CUDA is unusable."""
import numpy as np
import pytest

from emulation.cases import POOL_CASES
from gpucnn import functional as F
from gpucnn.device import cuda_status

_STATUS = cuda_status()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _STATUS.available, reason=f"no usable GPU: {_STATUS.reason}")]

# the comparison helpers and fixtures of the main GPU suite
from test_cuda import RTOL, close, cp, dtype  # noqa: E402,F401


BN_SHAPES = [(7, 5), (1, 3, 1, 2), (4, 3, 5, 7), (2, 6, 9, 4)]


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_forward_backward_and_running_stats(cp, dtype, shape, train):
    rng = np.random.default_rng(0)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    g, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    grm, grv = cp.asarray(rm), cp.asarray(rv)
    fwd, bwd = ((F.batchnorm_forward, F.batchnorm_backward) if len(shape) == 2 else
                (F.spatial_batchnorm_forward, F.spatial_batchnorm_backward))
    out, cache = fwd(x, g, b, rm, rv, train, 0.2, 1e-3)
    gout, gcache = fwd(cp.asarray(x), cp.asarray(g), cp.asarray(b), grm, grv, train, 0.2, 1e-3)
    close(gout, out, dtype)
    close(grm, rm, dtype), close(grv, rv, dtype)   # updated in place on the device
    dout = rng.standard_normal(shape).astype(dtype)
    for got, want in zip(bwd(cp.asarray(dout), gcache), bwd(dout, cache)):
        close(got, want, dtype)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avgpool_forward_backward(cp, dtype, case):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    out, cache = F.avgpool2d_forward(x, size, stride)
    gout, gcache = F.avgpool2d_forward(cp.asarray(x), size, stride)
    close(gout, out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    close(F.avgpool2d_backward(cp.asarray(dout), gcache), F.avgpool2d_backward(dout, cache), dtype)


def test_global_avgpool_on_a_cnhw_view(cp, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 6, 7)).astype(dtype)
    gx = cp.ascontiguousarray(cp.asarray(x).transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    out, cache = F.global_avgpool2d_forward(x)
    gout, gcache = F.global_avgpool2d_forward(gx)
    close(gout, out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    close(F.global_avgpool2d_backward(cp.asarray(dout), gcache),
          F.global_avgpool2d_backward(dout, cache), dtype)


@pytest.mark.parametrize("name", ["leaky_relu", "tanh"])
def test_activations(cp, dtype, name):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 3, 5, 6)) * 3).astype(dtype)
    x[0, 0, 0, :3] = 0   # the kink of LeakyReLU: the slope on both devices
    fwd, bwd = {"leaky_relu": (lambda a: F.leaky_relu_forward(a, 0.2), F.leaky_relu_backward),
                "tanh": (F.tanh_forward, F.tanh_backward)}[name]
    out, cache = fwd(x)
    gout, gcache = fwd(cp.asarray(x))
    close(gout, out, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    close(bwd(cp.asarray(dout), gcache), bwd(dout, cache), dtype)


def test_gradient_rows_pass_on_cuda():
    from gpucnn.gradcheck import TOLERANCE, _deeper_checks, check_ops

    names = {row[0] for row in _deeper_checks(np.random.default_rng(0))}
    rows = [r for r in check_ops("cuda") if r[0] in names]
    assert rows and all(err < TOLERANCE for _, _, err in rows), rows


def _resnet(dtype):
    from gpucnn.models import build_model

    conv = {"type": "conv2d", "kernel_size": 3, "padding": 1}
    spec = [{**conv, "out_channels": 4}, {"type": "batchnorm2d"}, {"type": "relu"},
            {"type": "residual", "layers": [{**conv, "out_channels": 6, "stride": 2},
                                            {"type": "batchnorm2d"}, {"type": "leaky_relu"},
                                            {**conv, "out_channels": 6}]},
            {"type": "tanh"}, {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
            {"type": "global_avgpool2d"}, {"type": "linear", "out_features": 5},
            {"type": "batchnorm1d"}, {"type": "linear", "out_features": 3}]
    return build_model(spec, (2, 9, 8), reg=0.01, dtype=dtype, seed=4)


def test_to_cuda_moves_running_statistics(cp):
    model = _resnet(np.float32).to("cuda")
    for name, buf in model.named_buffers():
        assert isinstance(buf, cp.ndarray), name
    state = model.to("cpu").state_dict()
    assert any(k.endswith("running_mean") for k in state)


def test_ten_training_steps_of_a_residual_bn_net_match_numpy(cp):
    """Parameters and running statistics after 10 momentum steps, then evaluation scores (not
    Adam: it would turn the rounding noise of bias gradients that batch norm cancels into
    full-size steps of either sign)."""
    from gpucnn.optim import make_optimizer

    rng = np.random.default_rng(5)
    X = rng.standard_normal((10 * 6, 2, 9, 8))
    y = rng.integers(0, 3, 10 * 6)
    models = {}
    for device in ("cpu", "cuda"):
        model = _resnet(np.float64).to(device)
        opt = make_optimizer("momentum", model.parameters(), lr=0.05)
        xp = cp if device == "cuda" else np
        for step in range(10):
            batch = slice(6 * step, 6 * step + 6)
            _, grads = model.loss(xp.asarray(X[batch]), xp.asarray(y[batch]))
            opt.step(grads)
        models[device] = model
    want = models["cpu"].state_dict()
    for name, value in models["cuda"].state_dict().items():
        # a conv bias before batch norm gets a gradient of rounding noise (BN cancels it): its
        # values stay ~1e-17, different on each device, so it is held to 1e-14 absolute
        close(value, want[name], np.float64, floor=1e-4)
    close(models["cuda"].loss(cp.asarray(X[:6])), models["cpu"].loss(X[:6]), np.float64)
