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
    monkeypatch.setattr(backend, "_cuda_status", backend.CudaStatus(
        False, f"CuPy is not installed (test); {backend.CUDA_INSTALL_HINT}"))
    monkeypatch.setattr(backend, "_auto_fallback_warned", False)


def test_cuda_request_without_gpu_says_why_and_how_to_install(no_cuda):
    with pytest.raises(DeviceError) as e:
        backend.resolve_device("cuda")
    msg = str(e.value)
    assert "device='cuda'" in msg and "CuPy is not installed (test)" in msg
    assert msg.count("gpucnn[cuda12]") == 1 and msg.count("gpucnn[cuda13]") == 1  # the hint once
    assert isinstance(e.value, ValueError)


def test_auto_falls_back_to_cpu_with_one_plain_line(no_cuda, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning (with a file path) would raise here
        assert backend.resolve_device("auto") == "cpu"
        assert backend.resolve_device("auto") == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"gpucnn: device 'auto' is using the CPU: CuPy is not installed (test); "
                     f"{backend.CUDA_INSTALL_HINT}"]


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


class _StubCupy:
    """Just enough of CuPy for the probe: a driver and one GPU, with one step made to fail."""

    float32 = np.float32

    def __init__(self, fail=None):
        import types

        def step(name, result):
            def call(*args, **kwargs):
                if fail == name:
                    raise ImportError(f"lib{name}.so: cannot open shared object file")
                return result(*args, **kwargs) if callable(result) else result
            return call

        runtime = types.SimpleNamespace(
            driverGetVersion=lambda: 12040, getDeviceCount=lambda: 1,
            getDeviceProperties=lambda i: {"name": b"Stub GPU"}, runtimeGetVersion=lambda: 12040)
        self.cuda = types.SimpleNamespace(runtime=runtime, Device=lambda: types.SimpleNamespace(id=0),
                                          nvrtc=types.SimpleNamespace(getVersion=step("nvrtc", (12, 4))))
        self._kernel_step, self._matmul_step = step("kernel", None), step("cublas", None)
        self.__version__ = "14.0.0"

    def zeros(self, n, dtype):
        return _StubArray(np.zeros(n, dtype), self)

    def asarray(self, a, dtype):
        return _StubArray(np.asarray(a, dtype), self)

    def RawModule(self, code):
        stub = self

        class Module:
            def get_function(self, name):
                def launch(grid, block, args):
                    stub._kernel_step()
                    args[0].a += 1
                return launch
        return Module()


class _StubArray:
    def __init__(self, a, stub):
        self.a, self.stub = a, stub

    def get(self):
        return self.a

    def __matmul__(self, other):
        self.stub._matmul_step()
        return _StubArray(self.a @ other.a, self.stub)


@pytest.mark.parametrize("fail,words", [
    ("nvrtc", ["NVRTC (the kernel compiler) did not load", "libnvrtc.so"]),
    ("kernel", ["a trivial kernel did not compile and run"]),
    ("cublas", ["a 2x2 matmul (cuBLAS) did not run", "libcublas.so"]),
])
def test_probe_proves_the_path_and_names_the_failed_step(monkeypatch, capsys, fail, words):
    monkeypatch.setitem(sys.modules, "cupy", _StubCupy(fail))
    monkeypatch.setattr(backend, "_auto_fallback_warned", False)
    status = backend.cuda_status(refresh=True)
    try:
        assert not status.available
        for word in words + ["gpucnn[cuda12]"]:
            assert word in status.reason
        assert backend.resolve_device("auto") == "cpu"
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and status.reason in err[0]
        with pytest.raises(DeviceError) as e:
            backend.resolve_device("cuda")
        assert status.reason in str(e.value) and str(e.value).count("pip install") == 2  # 12, 13
    finally:
        monkeypatch.undo()
        backend.cuda_status(refresh=True)


def test_probe_passes_when_every_step_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _StubCupy())
    try:
        status = backend.cuda_status(refresh=True)
        assert status.available and status.device_name == "Stub GPU", status.reason
    finally:
        monkeypatch.undo()
        backend.cuda_status(refresh=True)


@pytest.mark.parametrize("driver, runtime, fix", [
    (12040, 13000, "or install gpucnn for CUDA 12: pip install 'gpucnn[cuda12]' (in place of the "
                   "cuda13 extra)"),
    (11080, 12040, "no gpucnn extra runs on a CUDA 11 driver"),
])
def test_a_driver_too_old_for_cupys_runtime_names_the_driver_needed_and_the_extra(
        fake_cupy, fake_host, driver, runtime, fix):
    """cupy-cuda13x on a CUDA 12 driver: CUDA says cudaErrorInsufficientDriver at the first call
    (fakecupy._devices); the probe names the driver each side needs and the extra that fits."""
    fake_host(driver=driver, runtime=runtime)
    status = backend.cuda_status(refresh=True)
    need = runtime // 1000
    assert not status.available and status.reason == (
        f"the NVIDIA driver supports CUDA {driver // 1000}.{driver % 1000 // 10} but CuPy "
        f"0.0.0+stand-in runs on the CUDA {need}.{runtime % 1000 // 10} runtime, which needs a "
        f"driver for CUDA {need}.0 or newer (Linux driver >= {backend.DRIVER_FOR_CUDA[need]}): "
        f"update the driver, {fix}")
    with pytest.raises(DeviceError, match="needs a driver for CUDA"):
        backend.resolve_device("cuda")
