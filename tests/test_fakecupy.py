"""The stand-in cupy itself (tests/fakecupy): it must refuse what CuPy refuses, count what a GPU
pays, run kernel sources in both entry-point styles, model upload ordering, and leave no trace
outside the test that installed it."""
import shutil
import sys
import types

import numpy as np
import pytest

from fakecupy.plugin import installed

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None,
                               reason="g++ is not installed: the kernel host emulation needs it")


def test_arrays_are_cupy_arrays_to_gpucnn(fake_cupy):
    from gpucnn.device import cuda_status, device_of, get_array_module

    a = fake_cupy.asarray(np.arange(6.0).reshape(2, 3))
    assert device_of(a) == "cuda" and get_array_module(a) is fake_cupy
    assert cuda_status().available
    for result in (a + 1, a * a, np.exp(a), a.sum(axis=0), a.T, a[0], a @ a.T, -a, a > 0):
        assert isinstance(result, fake_cupy.ndarray)
    assert isinstance(a.sum(), fake_cupy.ndarray) and a.sum().shape == ()  # 0-d stays on device


def test_host_conversion_and_mixing_raise_as_in_cupy(fake_cupy):
    a = fake_cupy.asarray(np.ones((2, 3)))
    host = np.ones((2, 3))
    for implicit in (lambda: np.asarray(a), lambda: np.array([a, a]), lambda: a + host,
                     lambda: host * a, lambda: np.maximum(a, host), lambda: a.__setitem__(0, host[0]),
                     lambda: fake_cupy.stack([a, host])):
        with pytest.raises(TypeError):
            implicit()
    np.testing.assert_array_equal(a.get(), host)


def test_counts_launches_allocations_and_syncs(fake_cupy):
    a = fake_cupy.asarray(np.ones((4, 5), np.float32))
    with fake_cupy.counting() as c:
        b = a * 2          # one kernel, one new buffer
        b -= a             # in place: a kernel, no buffer
        v = b.T[1:]        # views: free
        s = v.sum()        # a reduction and its 0-d result
        value = float(s)   # the host waits
    assert value == 16.0
    assert c.launches == {"multiply": 1, "subtract": 1, "sum": 1}
    assert [shape for shape, _, _ in c.allocations] == [(4, 5), ()]
    assert [what for what, _ in c.syncs] == ["float()"]
    assert "test_fakecupy.py" in c.syncs[0][1]  # where: the line that synchronised


def test_the_fixture_restores_whatever_cupy_was_there(monkeypatch):
    from gpucnn import device

    real, real_cuda = types.ModuleType("cupy"), types.ModuleType("cupy.cuda")
    real.cuda = real_cuda
    monkeypatch.setitem(sys.modules, "cupy", real)
    monkeypatch.setitem(sys.modules, "cupy.cuda", real_cuda)
    monkeypatch.setattr(device, "_cuda_status", device.CudaStatus(False, "no GPU here"))
    with installed() as cp:
        assert sys.modules["cupy"] is cp and device.import_cupy() is cp
        assert device.cuda_status().available
        from gpucnn import cuda

        assert type(cuda.relu_forward(cp.zeros(3))) is cp.ndarray and cuda._loader.cupy is cp
    assert sys.modules["cupy"] is real and sys.modules["cupy.cuda"] is real_cuda is real.cuda
    assert device.cuda_status().reason == "no GPU here"
    assert ("gpucnn.cuda" not in sys.modules or sys.modules["gpucnn.cuda"]._loader is None
            or sys.modules["gpucnn.cuda"]._loader.cupy is not cp)


KERNELS = r'''
typedef long long idx_t;
template <typename T>
__global__ void axpy(T a, const T* x, T* y, idx_t n) {
    for (idx_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] += a * x[i];
}
template __global__ void axpy<float>(float, const float*, float*, idx_t);
template __global__ void axpy<double>(double, const double*, double*, idx_t);
extern "C" __global__ void axpy_f64(double a, const double* x, double* y, idx_t n) {
    axpy<double>(a, x, y, n);
}
extern "C" {
__global__ void __launch_bounds__(256) axpy_f64_in_block(double a, const double* x, double* y,
                                                         idx_t n) {
    axpy<double>(a, x, y, n);
}
}
'''


@needs_gxx
@pytest.mark.parametrize("names, name", [(["axpy<double>", "axpy<float>"], "axpy<double>"),
                                         (None, "axpy_f64"), (None, "axpy_f64_in_block")],
                         ids=["templates", "extern-C", "extern-C-block"])
def test_raw_module_runs_both_entry_point_styles(fake_cupy, names, name):
    mod = fake_cupy.RawModule(code=KERNELS, options=("-std=c++17",), name_expressions=names)
    x = fake_cupy.asarray(np.arange(1000.0))
    y = fake_cupy.ones(1000)
    with fake_cupy.counting() as c:
        mod.get_function(name)((3,), (32,), (np.float64(2.0), x, y, np.int64(1000)))
    np.testing.assert_array_equal(y.get(), 1 + 2 * np.arange(1000.0))
    assert c.launches == {name: 1} and not c.allocations
    with pytest.raises(TypeError):  # host arrays are not kernel arguments
        mod.get_function(name)((1,), (32,), (np.float64(1.0), np.ones(3), y, np.int64(3)))
    with pytest.raises(RuntimeError, match="name='nope'"):
        mod.get_function("nope")
    if names is None:  # C linkage: RawKernel finds it by name too
        fake_cupy.RawKernel(KERNELS, name)((1,), (64,), (np.float64(1.0), x, y, np.int64(1000)))
        np.testing.assert_array_equal(y.get(), 1 + 3 * np.arange(1000.0))
    assert "axpy" not in mod._symbols  # a C++ template has no C name to look up


@needs_gxx
def test_raw_module_compile_errors_carry_the_log(fake_cupy):
    mod = fake_cupy.RawModule(code="__global__ void broken( {")
    with pytest.raises(fake_cupy.cuda.compiler.CompileException) as e:
        mod.compile()
    assert "error" in e.value.get_message()


def _side_upload(cp):
    side = cp.cuda.Stream(non_blocking=True)
    d = cp.empty((3,), np.float32)
    d.set(np.arange(3, dtype=np.float32), stream=side)
    return side, d, side.record()


def test_reading_an_upload_in_flight_raises_until_a_stream_waits(fake_cupy):
    from fakecupy._stream import StreamOrderError

    _, d, event = _side_upload(fake_cupy)
    with pytest.raises(StreamOrderError, match="in flight"):
        d + 1
    fake_cupy.cuda.get_current_stream().wait_event(event)
    np.testing.assert_array_equal((d + 1).get(), [1, 2, 3])


def test_releasing_an_upload_in_flight_fails_the_test():
    with pytest.raises(AssertionError, match="released while its copy"):
        with installed() as cp:
            _side_upload(cp)  # the device array dies with no one waiting for its copy
    with installed() as cp:
        _, d, event = _side_upload(cp)
        event.synchronize()
        del d


def test_out_of_memory_becomes_gpucnns_hint(fake_cupy):
    from gpucnn import cuda

    pool = fake_cupy.get_default_memory_pool()
    x = fake_cupy.asarray(np.ones((64, 3, 16, 16), np.float32))
    pool.set_limit(size=pool.used_bytes() + 1024)
    try:
        with pytest.raises(MemoryError, match="batch size 64.*Lower the batch size"):
            cuda.im2col(x, 3, 3, 1, 1)
    finally:
        pool.set_limit(size=0)


@needs_gxx
def test_a_capture_runs_nothing_and_its_graph_replays_the_work_on_the_same_buffers(fake_cupy):
    """As on a GPU: after capture the old buffers are as they were and the new ones garbage;
    each launch redoes the captured work (array code and kernels) reading the buffers' current
    contents; syncs and uploads during a capture are refused and invalidate it; the null
    stream cannot capture; allocations go to using_allocator's pool."""
    from gpucnn import cuda

    x = fake_cupy.asarray(np.arange(4.0, dtype=np.float32))
    acc = fake_cupy.zeros(4, np.float32)
    pool = fake_cupy.cuda.MemoryPool()
    s = fake_cupy.cuda.Stream(non_blocking=True)
    with s, fake_cupy.cuda.using_allocator(pool.malloc):
        s.begin_capture()
        assert s.is_capturing()
        y = cuda.relu_forward(x - 1)  # a ufunc, then a kernel into a new buffer
        acc += y
        graph = s.end_capture()
    assert graph.names == ["subtract", "relu_forward_f32", "add"] and pool.used_bytes() > 0
    np.testing.assert_array_equal(acc.get(), np.zeros(4))
    assert np.isnan(y.get()).all()  # never written: the graph has not run
    graph.launch()
    graph.launch()
    np.testing.assert_array_equal(acc.get(), [0, 0, 2, 4])
    x.set(np.full(4, 3.0, np.float32))  # the graph reads x as it is at launch
    with fake_cupy.counting() as c:
        graph.launch()
    assert dict(c.launches) == {"graph": 1} and not c.allocations
    np.testing.assert_array_equal(acc.get(), [2, 2, 4, 6])
    for refused, words in ((lambda: float(acc.sum()), "synchronous API calls"),
                           (lambda: acc.set(np.ones(4, np.float32)), "H2D transfers"),
                           (lambda: fake_cupy.asarray(np.ones(2)), "H2D transfers")):
        with s:
            s.begin_capture()
            with pytest.raises(RuntimeError, match=words):
                refused()
            with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureInvalidated"):
                s.end_capture()
    with pytest.raises(RuntimeError, match="default"):
        fake_cupy.cuda.get_current_stream().begin_capture()


def test_each_installation_sends_ops_to_its_own_gpucnn_cuda():
    """gpucnn.primitives remembers the module CuPy arrays go to; each installation imports
    gpucnn.cuda afresh (bound to the cupy installed), and ops must reach that one."""
    from gpucnn import primitives

    reached = []
    for _ in range(2):
        with installed() as cp:
            reached.append(primitives.of(cp.zeros(1)))
            assert reached[-1] is sys.modules["gpucnn.cuda"]
    assert reached[0] is not reached[1]
