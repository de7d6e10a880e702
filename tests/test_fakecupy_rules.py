"""The stand-in's CuPy rules that a GPU enforces and a kind stand-in would hide: cuBLAS refused
while a stream captures, a pool that hands freed memory out again, writes in flight on their
stream until ordered, several devices with contexts and CUDA_VISIBLE_DEVICES, an old driver,
and NCCL.  Each names the CuPy source it mirrors in tests/fakecupy."""
import shutil

import numpy as np
import pytest

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None,
                               reason="g++ is not installed: the kernel host emulation needs it")
CUBLAS = "calling cuBLAS API during stream capture is currently unsupported"


def _capturing(cp):
    s = cp.cuda.Stream(non_blocking=True)
    s.__enter__()
    s.begin_capture()
    return s


def _end(s):
    try:
        return s.end_capture()
    finally:
        s.__exit__(None, None, None)


def test_every_cublas_product_is_refused_during_a_capture_which_stays_valid(fake_cupy):
    cp = fake_cupy
    a, b = cp.ones((3, 4), np.float32), cp.ones((4, 5), np.float32)
    v = cp.ones(4, np.float64)
    refused = {"matmul": lambda: cp.matmul(a, b), "@": lambda: a @ b, "dot": lambda: cp.dot(a, b),
               "ndarray.dot": lambda: a.dot(b), "tensordot": lambda: cp.tensordot(a, b, 1),
               "inner": lambda: cp.inner(a, b.T), "matrix @ vector": lambda: b.T @ v.astype(np.float32),
               "batched": lambda: cp.matmul(cp.ones((2, 3, 4)), cp.ones((2, 4, 2)))}
    for name, product in refused.items():
        s = _capturing(cp)
        with pytest.raises(NotImplementedError, match=CUBLAS):
            product()
        _end(s)  # CuPy refuses before any CUDA call: the capture is still valid
    # what CuPy computes with its own kernels: a vector dot, an integer product, an empty one
    s = _capturing(cp)
    cp.dot(v, v)
    cp.ones((3, 4), np.int64) @ cp.ones((4, 2), np.int64)
    cp.ones((0, 4)) @ cp.ones((4, 2))
    assert _end(s).names == ["dot", "fill", "fill", "matmul", "fill", "fill", "matmul"]
    np.testing.assert_array_equal((a @ b).get(), np.full((3, 5), 4.0))  # outside a capture


def test_the_pool_hands_a_freed_chunk_to_the_next_allocation_on_its_stream(fake_cupy):
    """cupy/cuda/memory.pyx: sizes rounded to 512 bytes, one arena per stream, best fit."""
    cp = fake_cupy
    pool = cp.get_default_memory_pool()
    a = cp.empty(100, np.float32)
    ptr, used = a.data.ptr, pool.used_bytes()
    assert used == 512 and pool.total_bytes() == 512
    del a
    assert pool.used_bytes() == 0 and pool.total_bytes() == 512
    b = cp.empty(128, np.float32)  # 512 bytes too: the same chunk
    assert b.data.ptr == ptr and pool.total_bytes() == 512
    side = cp.cuda.Stream(non_blocking=True)
    del b
    with side:
        c = cp.empty(128, np.float32)  # another stream's arena: new memory
    assert c.data.ptr != ptr and pool.total_bytes() == 1024
    big = cp.empty(1024, np.float32)
    big_ptr = big.data.ptr
    del big
    small = cp.empty(10, np.float32)  # best fit: the 512-byte chunk, not the 4 KiB one
    assert small.data.ptr == ptr
    pool.free_all_blocks()
    assert pool.total_bytes() == 1024  # the 4 KiB block went back; two chunks are in use
    assert big_ptr != small.data.ptr


@needs_gxx
def test_a_buffer_handed_out_again_between_replays_is_overwritten_by_the_graph(fake_cupy):
    """A graph writes where its capture allocated, whoever the pool gave that memory to since:
    the hazard of a graph's memory reused between replays shows on the stand-in."""
    from gpucnn import cuda

    cp = fake_cupy
    x = cp.asarray(np.arange(4.0, dtype=np.float32))
    s = cp.cuda.Stream(non_blocking=True)
    s.wait_event(cp.cuda.get_current_stream().record())  # x's upload comes first
    with s:
        s.begin_capture()
        tmp = cuda.relu_forward(x - 2)  # two buffers of the graph's, dropped below
        out = tmp * 2
        graph = s.end_capture()
        del tmp
        reused = cp.zeros(4, np.float32)  # the pool hands it the temporary's memory
        graph.launch(s)
        s.synchronize()
    np.testing.assert_array_equal(reused.get(), [0, 0, 0, 1])  # was zeros: relu's output now
    np.testing.assert_array_equal(out.get(), [0, 0, 0, 2])


def test_a_write_on_a_non_blocking_stream_is_in_flight_until_ordered(fake_cupy):
    from fakecupy._stream import StreamOrderError

    cp = fake_cupy
    side = cp.cuda.Stream(non_blocking=True)
    with side:
        y = cp.arange(3.0) + 1
    with pytest.raises(StreamOrderError, match=r"read on Stream\(null\) while its write on"):
        float(y.sum())
    blocking = cp.cuda.Stream()
    with blocking:
        z = cp.arange(3.0) * 2
    np.testing.assert_array_equal(z.get(), [0, 2, 4])  # implicitly ordered with the null stream
    cp.cuda.get_current_stream().wait_event(side.record())
    np.testing.assert_array_equal(y.get(), [1, 2, 3])


def test_releasing_a_buffer_another_streams_write_may_still_fill_fails_the_test():
    from fakecupy.plugin import installed

    with pytest.raises(AssertionError, match=r"released while its write on Stream\(\d+\)"):
        with installed() as cp:
            y = cp.zeros(3)  # the null stream's arena
            side = cp.cuda.Stream(non_blocking=True)
            side.wait_event(cp.cuda.get_current_stream().record())
            with side:
                y += 1
            del y


def test_devices_ordinals_and_contexts(fake_cupy, fake_host):
    """cupy/cuda/device.pyx: use() sets the device (a context, CUDA 12); 'with' sets the
    previous one again on exit; compute_capability and mem_info visit their device."""
    cp = fake_cupy
    host = fake_host(gpus=4, visible="2,0")
    assert cp.cuda.runtime.getDeviceCount() == 2 and host.contexts == []
    assert cp.cuda.Device(1).pci_bus_id != cp.cuda.Device(0).pci_bus_id and host.contexts == []
    cp.cuda.Device(1).use()
    assert cp.cuda.Device().id == 1 and host.contexts == [0]  # ordinal 1 is host GPU 0
    a = cp.ones(3)
    assert a.device == cp.cuda.Device(1) and host.contexts == [0]
    with cp.cuda.Device(0):
        with pytest.raises(ValueError, match=r"resides \(1\) is different from the current "
                                             r"device \(0\)\. Peer access is unavailable"):
            a + 1
        np.testing.assert_array_equal(a.get(), [1, 1, 1])  # get() follows the array's device
    assert host.contexts == [0, 2] and cp.cuda.Device().id == 1
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorInvalidDevice"):
        cp.cuda.Device(2).use()


def test_the_environment_describes_the_host(fake_cupy, fake_host):
    cp = fake_cupy
    fake_host(gpus=2, visible="")
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorNoDevice"):
        cp.cuda.runtime.getDeviceCount()
    fake_host(gpus=3, visible="1,7,2")  # CUDA stops at the first index that is not a GPU
    assert cp.cuda.runtime.getDeviceCount() == 1
    fake_host(gpus=1, driver=11080)
    assert cp.cuda.runtime.driverGetVersion() == 11080
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match=r"cudaErrorInsufficientDriver: "
                                                               r"CUDA driver version is insufficient"):
        cp.cuda.runtime.getDeviceCount()


def test_a_one_rank_nccl_communicator_reduces_in_place_on_its_stream(fake_cupy):
    from fakecupy._stream import StreamOrderError

    cp = fake_cupy
    nccl = cp.cuda.nccl
    assert nccl.available and len(nccl.get_unique_id()) == 128
    with pytest.raises(ValueError, match="commId length 3 != 128"):
        nccl.NcclCommunicator(1, b"abc", 0)
    comm = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
    buf = cp.arange(5.0)
    side = cp.cuda.Stream(non_blocking=True)
    side.wait_event(cp.cuda.get_current_stream().record())
    comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, side.ptr)
    with pytest.raises(StreamOrderError, match="NCCL allReduce"):
        buf.get()
    side.synchronize()
    np.testing.assert_array_equal(buf.get(), np.arange(5.0))
    with pytest.raises(nccl.NcclError, match="NCCL_ERROR_UNHANDLED_CUDA_ERROR"):
        comm.allReduce(12345, 12345, 1, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, side.ptr)
