"""Device dispatch, device choice and the counter-based random streams."""
import sys
import warnings

import numpy as np
import pytest

from gpucnn import cpu, rng
from gpucnn import device as backend
from gpucnn.device import DeviceError
from gpucnn.rng import Generator


def test_numpy_arrays_dispatch_to_numpy_without_importing_cupy():
    assert backend.get_array_module(np.zeros(2)) is np
    assert backend.get_array_module(1.0, [1]) is np
    assert backend.device_of(np.zeros(2)) == "cpu"
    if not backend.cuda_status().available:
        assert "cupy" not in sys.modules or backend.cuda_status().cupy_version


def test_cuda_status_never_raises_and_explains():
    status = backend.cuda_status(refresh=True)
    assert isinstance(status.available, bool)
    if not status.available:
        assert status.reason


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(backend, "_cuda_status",
                        backend.CudaStatus(False, "CuPy is not installed (test)"))
    monkeypatch.setattr(backend, "_auto_fallback_warned", False)


def test_cuda_request_without_gpu_says_why_and_how_to_install(no_cuda):
    with pytest.raises(DeviceError) as e:
        backend.resolve_device("cuda")
    msg = str(e.value)
    assert "device='cuda'" in msg and "CuPy is not installed (test)" in msg
    assert "gpucnn[cuda12]" in msg and "gpucnn[cuda13]" in msg
    assert isinstance(e.value, ValueError)


def test_auto_falls_back_to_cpu_with_one_plain_line(no_cuda, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning (with a file path) would raise here
        assert backend.resolve_device("auto") == "cpu"
        assert backend.resolve_device("auto") == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["gpucnn: device 'auto' is using the CPU: CuPy is not installed (test)"]


def test_environment_variable_selects_the_device(no_cuda, monkeypatch):
    monkeypatch.setenv("GPUCNN_DEVICE", "cpu")
    assert backend.resolve_device(None) == "cpu"
    monkeypatch.setenv("GPUCNN_DEVICE", "tpu")
    with pytest.raises(DeviceError, match=r"GPUCNN_DEVICE='tpu'.*cpu, cuda, auto"):
        backend.resolve_device(None)
    monkeypatch.setenv("GPUCNN_DEVICE", "cuda")
    with pytest.raises(DeviceError, match="GPUCNN_DEVICE='cuda' but CUDA is unusable"):
        backend.resolve_device(None)


def test_unknown_device_name():
    with pytest.raises(DeviceError, match=r"device='gpu0'.*expected one of cpu, cuda, auto"):
        backend.resolve_device("gpu0")


def test_to_device_cpu_round_trip():
    x = np.arange(6.0).reshape(2, 3)
    assert backend.to_device(x, "cpu") is x
    np.testing.assert_array_equal(backend.to_numpy(x), x)


def test_random_bits_are_uniform_and_reproducible():
    bits = rng.random_bits(rng.stream_key(1, 0), 0, 200_000)
    assert bits.dtype == np.uint64 and bits.max() < 2 ** 24
    u = bits / 2.0 ** 24
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    hist = np.bincount(bits >> np.uint64(20), minlength=16)
    assert hist.min() > 0.9 * 200_000 / 16
    np.testing.assert_array_equal(bits, rng.random_bits(rng.stream_key(1, 0), 0, 200_000))


def test_random_bits_are_a_function_of_the_counter():
    key = rng.stream_key(5, 2)
    whole = rng.random_bits(key, 100, 50)
    np.testing.assert_array_equal(whole[20:], rng.random_bits(key, 120, 30))
    assert not np.array_equal(whole, rng.random_bits(rng.stream_key(5, 3), 100, 50))


def keep_mask(g, n, p):
    """A dropout keep-mask drawn from generator ``g`` as functional.dropout_forward draws it."""
    return cpu.dropout_keep_mask(g.key, g.reserve(n), n, rng.drop_threshold(p))


def test_generator_streams_and_state_round_trip():
    g = Generator(seed=42)
    keep_mask(g, 100, 0.5)
    g.host.integers(0, 10, 5)
    saved = g.state()
    a, a_host = keep_mask(g, 21, 0.2), g.host.standard_normal(4)
    h = Generator(seed=0)
    h.set_state(saved)
    np.testing.assert_array_equal(keep_mask(h, 21, 0.2), a)
    np.testing.assert_array_equal(h.host.standard_normal(4), a_host)
    assert not np.array_equal(keep_mask(g.spawn(1), 50, 0.5), keep_mask(Generator(42), 50, 0.5))


def test_keep_mask_drop_rate_and_edges():
    g = Generator(seed=3)
    assert keep_mask(g, 1000, 0.0).all()
    assert abs(1 - keep_mask(g, 100_000, 0.25).mean() - 0.25) < 0.01
    with pytest.raises(ValueError, match="seed=-1"):
        Generator(seed=-1)
