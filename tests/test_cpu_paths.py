"""The two CPU paths of the conv and fused relu+pool primitives -- native C kernels split over
worker threads, and the NumPy reference -- against the naive formulas and each other."""
import numpy as np
import pytest

import reference as ref
from gpucnn import cpu, cpu_threads, native

PATHS = ["numpy", pytest.param("native", marks=pytest.mark.skipif(
    not native.available, reason=f"gpucnn._native is not built: {native.reason}"))]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run the test on one CPU path; 'native' split over 3 worker threads (odd batch splits)."""
    monkeypatch.setattr(native, "available", request.param == "native")
    if request.param == "native":  # small shapes: split them anyway, to test the split
        monkeypatch.setenv("GPUCNN_CPU_THREADS", "3")
        monkeypatch.setattr(cpu_threads, "MIN_WORK_PER_THREAD", 1)
    return request.param


CONVS = [((2, 3, 7, 6), (4, 3, 3, 2), 1, 0), ((5, 2, 9, 8), (3, 2, 3, 3), 2, 1),
         ((1, 1, 5, 5), (2, 1, 5, 5), 1, 2), ((4, 3, 8, 8), (6, 3, 7, 7), 1, 3)]


@pytest.mark.parametrize("xs,ws,stride,pad", CONVS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_primitives_match_the_naive_formulas(path, xs, ws, stride, pad, bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    out, saved = cpu.conv2d_forward(x, w, b, stride, pad)
    np.testing.assert_allclose(out, ref.conv_forward(x, w, b if bias else np.zeros(ws[0]), stride, pad),
                               rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = cpu.conv2d_backward(dout, saved, w, x.shape, stride, pad, True, bias)
    want_dw, want_db = ref.conv_weight_grad(x, dout, w.shape, stride, pad)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-11)
    np.testing.assert_allclose(dx, ref.conv_input_grad(dout, w, x.shape, stride, pad), rtol=1e-11,
                               atol=1e-12)
    if bias:
        np.testing.assert_allclose(db, want_db, rtol=1e-12)
    else:
        assert db is None
    assert cpu.conv2d_backward(dout, saved, w, x.shape, stride, pad, False, bias)[0] is None


@pytest.mark.parametrize("shape,size,stride", [((3, 4, 8, 8), 2, 2), ((2, 3, 9, 11), 3, 2),
                                               ((5, 2, 6, 7), 2, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_maxpool_is_relu_then_maxpool_exactly(path, shape, size, stride, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, size=shape).astype(dtype)  # few levels: ties, all-negative windows
    x.flat[::17] = np.nan
    out, arg = cpu.relu_maxpool_forward(x, size, stride)
    want_out, want_arg = cpu.maxpool_forward(cpu.relu_forward(x), size, stride)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(arg, want_arg)
    dout = rng.standard_normal(out.shape).astype(dtype)
    relu_out = cpu.relu_forward(x)
    want_dx = cpu.relu_backward(cpu.maxpool_backward(dout, want_arg, x.shape, size, stride), relu_out)
    # overlapping windows (stride < size) sum in another order: float rounding, not exactness
    np.testing.assert_allclose(cpu.relu_maxpool_backward(dout, arg, out, x.shape, size, stride),
                               np.where(np.isnan(want_dx), 0, want_dx), rtol=1e-6, atol=1e-6)


def test_threads_setting_is_validated(monkeypatch):
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "zero")
    with pytest.raises(ValueError, match="GPUCNN_CPU_THREADS='zero': expected an integer >= 1"):
        cpu.threads()


def test_sequential_fuses_relu_then_maxpool_and_matches_the_layers_one_by_one(path):
    from gpucnn import nn

    rng = np.random.default_rng(3)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=0), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.ReLU(), nn.Linear(12, 4, dtype=np.float64, rng=1))
    assert net._steps == [(0, 2), (3, 3), (4, 4), (5, 5)]  # conv, relu + pool: one step
    x = rng.standard_normal((5, 2, 4, 4))
    out = net(x)
    dout = rng.standard_normal(out.shape)
    dx = net.backward(dout)
    grads = net.gradients()
    y, caches = x, []
    for layer in net.layers:  # unfused: each layer on its own
        y = layer.forward(y)
    np.testing.assert_allclose(out, y, rtol=1e-13)
    d = dout
    for i in range(len(net.layers) - 1, -1, -1):
        d = net.layers[i].backward(d)
    np.testing.assert_allclose(dx, d, rtol=1e-12, atol=1e-14)
    for k, g in net.gradients().items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-12)


def test_op_paths_name_the_path_and_a_missing_extension_is_noticed_once(monkeypatch, capsys):
    monkeypatch.setattr(native, "available", False)
    monkeypatch.setattr(native, "reason", "not built (no C compiler at install time?): test")
    monkeypatch.setattr(cpu, "_numpy_path_noticed", False)
    assert "im2col + GEMM" in cpu.op_paths()["conv2d"]
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    cpu.conv2d_forward(x, w, None, 1, 0)
    cpu.conv2d_forward(x, w, None, 1, 0)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "slower NumPy path" in err[0] and "C compiler" in err[0]
    monkeypatch.setattr(native, "reason", "disabled by GPUCNN_NATIVE=0")
    monkeypatch.setattr(cpu, "_numpy_path_noticed", False)
    cpu.conv2d_forward(x, w, None, 1, 0)
    assert capsys.readouterr().err == ""  # asked for: no notice


def test_small_work_is_not_split_over_threads(monkeypatch):
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "2")
    ranges = []
    cpu_threads.split(50, lambda n0, n1: ranges.append((n0, n1)), work=1000)
    assert ranges == [(0, 50)]
    cpu_threads.split(50, lambda n0, n1: ranges.append((n0, n1)), work=1 << 20)
    assert sorted(ranges[1:]) == [(0, 25), (25, 50)]
    cpu_threads.split(50, lambda n0, n1: ranges.append((n0, n1)), work=1 << 20, elementwise=True)
    assert ranges[3:] == [(0, 50)]  # a memory-bound pass keeps 1M elements to one thread


@pytest.mark.skipif(not native.available, reason=f"gpucnn._native is not built: {native.reason}")
def test_a_conv_is_split_by_its_fmas_not_its_output_count(monkeypatch):
    """Batch 8, 5x5, 48 -> 64 channels at 8x8 outputs: 32K outputs but 39M FMAs, two threads'
    worth; a 1x1 layer with as many outputs stays on one thread."""
    monkeypatch.setenv("GPUCNN_CPU_THREADS", "2")
    calls, forward = [], native.conv2d_forward

    def recording(*args, parts=1, **kwargs):
        calls.append(parts)
        return forward(*args, parts=parts, **kwargs)

    monkeypatch.setattr(native, "conv2d_forward", recording)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 48, 16, 16)).astype(np.float32)
    cpu.conv2d_forward(x, rng.standard_normal((64, 48, 5, 5)).astype(np.float32), None, 2, 2)
    assert calls == [2]
    cpu.conv2d_forward(x, rng.standard_normal((64, 48, 1, 1)).astype(np.float32), None, 2, 0)
    assert calls == [2, 1]
