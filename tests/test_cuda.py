"""On a GPU: every primitive of gpucnn.cuda and every functional op, forward and backward, on
CuPy arrays against the NumPy path (float64 to 1e-10 relative, float32 to 1e-4; masks and
argmax bit-identical), plus the loader's compile cache and errors, out-of-memory hints and
64-bit indexing.  Skipped with the reason where CUDA is unusable."""
import numpy as np
import pytest

from emulation.cases import CONV_CASES, DROPOUT_CASES, POOL_CASES, activation_input, tied
from gpucnn import cpu, functional as F
from gpucnn.compare import compare_cuda_with_numpy
from gpucnn import device as backend
from gpucnn.device import cuda_status
from gpucnn.rng import Generator, drop_threshold, random_bits, stream_key

_STATUS = cuda_status()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _STATUS.available, reason=f"no usable GPU: {_STATUS.reason}")]

RTOL = {np.float32: 1e-4, np.float64: 1e-10}


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.fixture(scope="module")
def cuda():
    from gpucnn import cuda

    return cuda


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def close(got, want, dtype, floor=1e-30):
    """Relative to the largest magnitude, so near-zero entries of sums do not fail spuriously;
    ``floor``: the least magnitude to be relative to, for a value that is rounding noise."""
    got = backend.to_numpy(got)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(np.max(np.abs(want), initial=0.0)), floor)
    assert float(np.max(np.abs(got - want), initial=0.0)) <= RTOL[dtype] * scale


# --- primitives -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_im2col_col2im(cp, cuda, dtype, case):
    N, C, H, W, kh, kw, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    np.testing.assert_array_equal(cuda.im2col(cp.asarray(x), kh, kw, s, p).get(),
                                  cpu.im2col(x, kh, kw, s, p))
    cols_shape = cpu.im2col(x, kh, kw, s, p).shape
    dcols = rng.standard_normal(cols_shape).astype(dtype)
    got = cuda.col2im(cp.asarray(dcols), x.shape, kh, kw, s, p)
    close(got, np.ascontiguousarray(cpu.col2im(dcols, x.shape, kh, kw, s, p)), dtype)
    again = cuda.col2im(cp.asarray(dcols), x.shape, kh, kw, s, p)
    assert bool((got == again).all()), "col2im must be deterministic (a gather, no atomics)"


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool(cp, cuda, dtype, case):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(1)
    x = tied(rng, (N, C, H, W), dtype)
    out, arg = cuda.maxpool_forward(cp.asarray(x), size, stride)
    ref_out, ref_arg = cpu.maxpool_forward(x, size, stride)
    np.testing.assert_array_equal(out.get(), ref_out)
    assert arg.dtype == ref_arg.dtype
    np.testing.assert_array_equal(arg.get(), ref_arg)
    dout = rng.standard_normal(ref_out.shape).astype(dtype)
    got = cuda.maxpool_backward(cp.asarray(dout), arg, x.shape, size, stride)
    close(got, np.ascontiguousarray(cpu.maxpool_backward(dout, ref_arg, x.shape, size, stride)), dtype)


def test_im2col_and_maxpool_on_a_cnhw_view(cp, cuda, dtype):
    """A conv output is (C, N, H, W) in memory behind an NCHW view; both kernels read it in place."""
    x = np.random.default_rng(11).standard_normal((3, 2, 9, 8)).astype(dtype)
    gx = cp.asarray(x).transpose(1, 0, 2, 3)
    x = x.transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(cuda.im2col(gx, 3, 2, 2, 1).get(), cpu.im2col(x, 3, 2, 2, 1))
    out, arg = cuda.maxpool_forward(gx, 3, 2)
    ref_out, ref_arg = cpu.maxpool_forward(x, 3, 2)
    np.testing.assert_array_equal(out.get(), ref_out)
    np.testing.assert_array_equal(arg.get(), ref_arg)


def test_maxpool_nan_and_infinities(cp, cuda, dtype):
    x = np.array([[[[1.0, np.nan, 3.0, np.nan], [np.inf, 2.0, -np.inf, 0.0]]]], dtype=dtype)
    out, arg = cuda.maxpool_forward(cp.asarray(x), 2, 2)
    ref_out, ref_arg = cpu.maxpool_forward(x, 2, 2)
    np.testing.assert_array_equal(out.get(), ref_out)
    np.testing.assert_array_equal(arg.get(), ref_arg)


def test_losses_are_0d_float64_device_arrays(cp, cuda, dtype):
    loss, _ = cuda.softmax_cross_entropy(cp.ones((3, 4), dtype), cp.asarray([0, 1, 3]))
    for value in (loss, cuda.sum_of_squares(cp.ones((5, 2), dtype))):
        assert isinstance(value, cp.ndarray) and value.shape == () and value.dtype == np.float64


@pytest.mark.parametrize("seed,counter,n,p", DROPOUT_CASES)
def test_dropout_mask_bit_identical(cuda, seed, counter, n, p):
    key, thr = stream_key(seed, 1), drop_threshold(p)
    with np.errstate(over="ignore"):
        want = random_bits(key, counter, n) >= np.uint64(thr)
    np.testing.assert_array_equal(cuda.dropout_keep_mask(key, counter, n, thr).get(), want)


def test_generator_masks_identical_across_devices(cp):
    cpu_gen, gpu_gen = Generator(42, 3), Generator(42, 3)
    for shape, p in [((4, 5, 6, 7), 0.4), ((1000,), 0.1), ((3, 333), 0.8)]:
        x = np.ones(shape)
        _, (m_cpu, _) = F.dropout_forward(x, p, True, cpu_gen)
        _, (m_gpu, _) = F.dropout_forward(cp.asarray(x), p, True, gpu_gen)
        np.testing.assert_array_equal(m_gpu.get(), m_cpu)
    assert cpu_gen.counter == gpu_gen.counter


@pytest.mark.parametrize("shape", [(5, 3, 4, 3), (2, 70, 1, 1), (300, 7), (4, 5, 9, 11)], ids=str)
def test_bias_grad(cp, cuda, dtype, shape):
    g = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    close(cuda.bias_grad(cp.asarray(g)), g.sum(axis=tuple(a for a in range(g.ndim) if a != 1)), dtype)


def test_compare_with_numpy(cuda, dtype):
    rows = compare_cuda_with_numpy(dtype)
    assert len(rows) >= 13 and all(d <= RTOL[dtype] for _, d in rows), rows


# --- functional ops on CuPy arrays --------------------------------------------------------------

def _pair(cp, rng, shape, dtype, scale=1.0):
    a = (rng.standard_normal(shape) * scale).astype(dtype)
    return a, cp.asarray(a)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_forward_backward(cp, dtype, case):
    N, C, H, W, kh, kw, s, p = case
    rng = np.random.default_rng(3)
    x, gx = _pair(cp, rng, (N, C, H, W), dtype)
    w, gw = _pair(cp, rng, (4, C, kh, kw), dtype)
    b, gb = _pair(cp, rng, (4,), dtype)
    out, cache = F.conv2d_forward(x, w, b, s, p)
    gout, gcache = F.conv2d_forward(gx, gw, gb, s, p)
    close(gout, out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(F.conv2d_backward(cp.asarray(dout), gcache), F.conv2d_backward(dout, cache)):
        close(got, want, dtype)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool2d_forward_backward(cp, dtype, case):
    N, C, H, W, size, stride = case
    rng = np.random.default_rng(4)
    x = tied(rng, (N, C, H, W), dtype)
    out, cache = F.maxpool2d_forward(x, size, stride)
    gout, gcache = F.maxpool2d_forward(cp.asarray(x), size, stride)
    close(gout, out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    close(F.maxpool2d_backward(cp.asarray(dout), gcache), F.maxpool2d_backward(dout, cache), dtype)


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_activations(cp, dtype, name):
    rng = np.random.default_rng(5)
    x = activation_input(rng, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    fwd, bwd = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    out, cache = fwd(x)
    gout, gcache = fwd(cp.asarray(x))
    np.testing.assert_allclose(gout.get(), out, rtol=RTOL[dtype])
    np.testing.assert_allclose(bwd(cp.asarray(dout), gcache).get(), bwd(dout, cache), rtol=RTOL[dtype])


def test_activation_on_a_non_contiguous_view(cp, dtype):
    x = np.random.default_rng(6).standard_normal((3, 2, 5, 4)).astype(dtype).transpose(1, 0, 2, 3)
    close(F.relu_forward(cp.asarray(x))[0], F.relu_forward(x)[0], dtype)


def test_dropout_forward_backward(cp, dtype):
    rng = np.random.default_rng(7)
    x, gx = _pair(cp, rng, (8, 3, 5, 5), dtype)
    out, cache = F.dropout_forward(x, 0.4, True, Generator(9, 0))
    gout, gcache = F.dropout_forward(gx, 0.4, True, Generator(9, 0))
    close(gout, out, dtype)
    np.testing.assert_array_equal(gcache[0].get(), cache[0])
    dout = rng.standard_normal(x.shape).astype(dtype)
    close(F.dropout_backward(cp.asarray(dout), gcache), F.dropout_backward(dout, cache), dtype)


def test_linear_forward_backward(cp, dtype):
    rng = np.random.default_rng(8)
    x, gx = _pair(cp, rng, (7, 3, 2, 5), dtype)
    w, gw = _pair(cp, rng, (30, 11), dtype)
    b, gb = _pair(cp, rng, (11,), dtype)
    out, cache = F.linear_forward(x, w, b)
    gout, gcache = F.linear_forward(gx, gw, gb)
    close(gout, out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(F.linear_backward(cp.asarray(dout), gcache), F.linear_backward(dout, cache)):
        close(got, want, dtype)


@pytest.mark.parametrize("N,K", [(9, 10), (1, 1), (5, 300), (70, 3)])
def test_softmax_cross_entropy(cp, dtype, N, K):
    rng = np.random.default_rng(9)
    scores = (rng.standard_normal((N, K)) * 8).astype(dtype)
    y = rng.integers(0, K, size=N)
    loss, ds = F.softmax_cross_entropy(scores, y)
    gloss, gds = F.softmax_cross_entropy(cp.asarray(scores), cp.asarray(y))
    assert abs(float(gloss) - float(loss)) <= RTOL[dtype] * abs(float(loss))
    close(gds, ds, dtype)


def test_mse_and_l2(cp, dtype):
    rng = np.random.default_rng(10)
    p, gp = _pair(cp, rng, (6, 4), dtype)
    t, gt = _pair(cp, rng, (6, 4), dtype)
    loss, d = F.mse_loss(p, t)
    gloss, gd = F.mse_loss(gp, gt)
    assert abs(float(gloss) - float(loss)) <= RTOL[dtype] * abs(float(loss))
    close(gd, d, dtype)
    l2, grads = F.l2_penalty([p, t], 0.1)
    gl2, ggrads = F.l2_penalty([gp, gt], 0.1)
    assert abs(gl2 - l2) <= RTOL[dtype] * l2
    for got, want in zip(ggrads, grads):
        close(got, want, dtype)


# --- loader, memory, indexing ---------------------------------------------------------------------

def test_each_module_compiles_once(cuda):
    assert cuda.compile_module("conv.cu") is cuda.compile_module("conv.cu")


def test_compile_error_names_the_file_and_carries_the_log(cuda):
    with pytest.raises(cuda.KernelCompileError, match=r"kernels/pool\.cu") as err:
        cuda.compile_module("pool.cu", source="__global__ void broken( { }")
    assert "error" in str(err.value).lower()


def test_out_of_memory_names_the_op_and_hints_at_the_batch_size(cp, cuda):
    x = cp.zeros((512, 64, 64, 64), dtype=cp.float64)  # 1 GiB; its 15x15 im2col needs ~240 GiB
    with pytest.raises(MemoryError, match=r"(?s)im2col \(input shape \(512, 64, 64, 64\), batch size 512\).*"
                                          r"Lower the batch size"):
        cuda.im2col(x, 15, 15, 1, 7)


@pytest.mark.slow
def test_indices_past_2_to_the_31(cuda):
    """A 32-bit index would stop short of (or wrap before) the tail of a 2^31 + 100 element mask."""
    n, key, thr = (1 << 31) + 100, stream_key(1, 2), drop_threshold(0.5)
    tail = cuda.dropout_keep_mask(key, 5, n, thr)[-100:].get()
    with np.errstate(over="ignore"):
        want = random_bits(key, 5 + n - 100, 100) >= np.uint64(thr)
    np.testing.assert_array_equal(tail, want)


# --- modules and training, CPU against GPU --------------------------------------------------------

def _net(dtype, seed):
    from gpucnn import nn

    return nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=1, padding=1, dtype=dtype, rng=seed), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.3, rng=Generator(seed, stream=1)),
        nn.Conv2d(5, 4, (3, 2), stride=2, padding=1, dtype=dtype, rng=seed + 1), nn.Sigmoid(),
        nn.MaxPool2d(3, 1), nn.Flatten(), nn.Linear(4 * 1 * 1, 6, dtype=dtype, rng=seed + 2))


def test_every_module_forward_and_backward_matches_numpy(cp, dtype):
    rng = np.random.default_rng(3)
    host, gpu = _net(dtype, 0), _net(dtype, 0).to("cuda")
    x = rng.standard_normal((4, 3, 11, 9)).astype(dtype)
    out = host.forward(x)
    close(gpu.forward(cp.asarray(x)), out, dtype)  # dropout masks are bit-identical, so this holds
    dout = rng.standard_normal(out.shape).astype(dtype)
    close(gpu.backward(cp.asarray(dout)), host.backward(dout), dtype)
    want = host.gradients()
    for name, grad in gpu.gradients().items():
        close(grad, want[name], dtype)


def test_twenty_training_steps_match_numpy(cp, dtype):
    """A small ThreeLayerConvNet with dropout and L2, 20 momentum-SGD steps on each device."""
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.optim import make_optimizer

    rng = np.random.default_rng(4)
    X = rng.standard_normal((20 * 8, 3, 9, 9)).astype(dtype)
    y = rng.integers(0, 10, 20 * 8)
    models = {}
    for device in ("cpu", "cuda"):
        model = ThreeLayerConvNet((3, 9, 9), num_filters=6, filter_size=3, hidden_dim=20, reg=0.01,
                                  dropout=0.3, weight_scale=None, dtype=dtype, seed=5).to(device)
        opt = make_optimizer("momentum", model.parameters(), lr=0.05)
        xp = cp if device == "cuda" else np
        for step in range(20):
            batch = slice(8 * step, 8 * step + 8)
            _, grads = model.loss(xp.asarray(X[batch]), xp.asarray(y[batch]))
            opt.step(grads)
        models[device] = model
    want = models["cpu"].state_dict()
    for name, value in models["cuda"].state_dict().items():
        close(value, want[name], dtype)


def test_a_cuda_graph_replays_the_training_step(cp, capsys):
    """Trainer(cuda_graph=True) on the GPU: captured on the second step (no notice) and
    replayed, with dropout, momentum and an lr decay.  Every step of it multiplies with gemm.cu
    (CuPy refuses cuBLAS in a capture): the same losses and weights as eager steps with gemm.cu
    bit for bit, and as eager steps with cuBLAS to float32 rounding."""
    from gpucnn import cuda
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import Trainer

    rng = np.random.default_rng(5)
    data = {"X_train": rng.standard_normal((12, 3, 8, 8)).astype(np.float32),
            "y_train": rng.integers(0, 10, 12),
            "X_val": rng.standard_normal((6, 3, 8, 8)).astype(np.float32),
            "y_val": rng.integers(0, 10, 6)}
    runs = {}
    for run, graph, gemm in (("graph", True, False), ("cublas", False, False),
                             ("gemm", False, True)):
        model = ThreeLayerConvNet((3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10,
                                  reg=0.01, dropout=0.3, seed=1)
        with cuda.gemm_kernels(gemm):
            trainer = Trainer(model, data, optimizer="momentum", batch_size=5, epochs=2,
                              optim_config={"lr": 0.05, "lr_decay": 0.5}, device="cuda",
                              progress=False, cuda_graph=graph)
            runs[run] = (trainer.train().loss, model.state_dict(), trainer)
    assert capsys.readouterr().err == "" and runs["graph"][2]._graph.graph is not None
    assert runs["graph"][0] == runs["gemm"][0]
    np.testing.assert_allclose(runs["graph"][0], runs["cublas"][0], rtol=1e-5)
    for name, value in runs["graph"][1].items():
        np.testing.assert_array_equal(value, runs["gemm"][1][name], err_msg=name)
        close(value, runs["cublas"][1][name], np.float32)
