"""DLPack: gpucnn's arrays and parameters pass to and from PyTorch without a copy (the same
memory, seen from both sides), ``gpucnn.interop.from_dlpack`` picks NumPy or CuPy by where the
memory is, and refuses what neither can take.  The CuPy side runs on a GPU only
(``@pytest.mark.cuda``); without one, the stand-in checks where a CUDA producer is sent."""
import numpy as np
import pytest

from gpucnn import nn
from gpucnn.device import cuda_status
from gpucnn.interop import from_dlpack
from gpucnn.optim import SGD


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed")


def test_a_torch_tensor_becomes_a_numpy_array_over_the_same_memory():
    torch = _torch()
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    a = from_dlpack(t)
    assert type(a) is np.ndarray and a.ctypes.data == t.data_ptr() and a.shape == (3, 4)
    a[0, 0] = 42
    t[2, 3] = -1
    assert t[0, 0] == 42 and a[2, 3] == -1
    view = from_dlpack(t.T)  # strided views keep their strides, still no copy
    assert view.ctypes.data == t.data_ptr() and np.array_equal(view, t.T.numpy())


def test_gpucnn_parameters_are_torch_tensors_without_a_copy_both_ways():
    torch = _torch()
    layer = nn.Linear(4, 3)
    weight = torch.from_dlpack(layer.weight)  # gpucnn -> torch
    assert weight.data_ptr() == layer.weight.ctypes.data
    x = np.ones((2, 4), np.float32)
    layer.forward(x)
    layer.backward(np.ones((2, 3), np.float32))
    before = layer.weight.copy()
    SGD(layer.parameters(), lr=0.5).step(layer.gradients())  # gpucnn's in-place update...
    assert not np.array_equal(layer.weight, before)
    assert np.array_equal(weight.numpy(), layer.weight)  # ...is what torch reads
    shared = torch.zeros(3, 4)  # torch -> gpucnn: torch's (out, in) layout, as a transposed view
    layer.weight = from_dlpack(shared.T)
    shared[1, 2] = 5.0
    assert layer.weight[2, 1] == 5.0 and layer.forward(x)[0, 1] == 5.0 + layer.bias[1]


def test_numpy_arrays_pass_through_unchanged_in_memory():
    a = np.arange(6.0)
    assert from_dlpack(a).ctypes.data == a.ctypes.data


class Producer:
    """An array-like whose memory is on ``device``, as __dlpack_device__ reports it."""

    def __init__(self, device):
        self.device = device

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kwargs):
        raise AssertionError("not to be read here")


def test_what_neither_numpy_nor_cupy_can_take_is_one_line():
    with pytest.raises(TypeError, match=r"^x=list: expected an array with __dlpack__"):
        from_dlpack([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^x: its memory is on Metal device 0: expected the CPU "
                                         r"\(NumPy\) or a CUDA GPU \(CuPy\)$"):
        from_dlpack(Producer((8, 0)))


@pytest.mark.parametrize("device", [(2, 1), (13, 0)], ids=["cuda", "cuda-managed"])
def test_cuda_memory_goes_to_cupys_from_dlpack(fake_cupy, monkeypatch, device):
    # The stand-in has no DLPack (its arrays are host memory): this checks only where gpucnn
    # sends a CUDA producer; the real exchange is test_cupy_and_torch_share_gpu_memory.
    seen = []
    monkeypatch.setattr(fake_cupy, "from_dlpack", lambda x: seen.append(x) or "cupy array",
                        raising=False)
    producer = Producer(device)
    assert from_dlpack(producer) == "cupy array" and seen == [producer]


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_status().available, reason=f"no usable GPU: {cuda_status().reason}")
def test_cupy_and_torch_share_gpu_memory():
    import cupy

    a = cupy.arange(6, dtype=cupy.float32)
    b = from_dlpack(a)
    assert isinstance(b, cupy.ndarray) and b.data.ptr == a.data.ptr
    torch = _torch()
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    t = torch.from_dlpack(a)
    t[0] = 7.0
    torch.cuda.synchronize()
    assert t.data_ptr() == a.data.ptr and float(a[0]) == 7.0
    c = from_dlpack(t)
    assert isinstance(c, cupy.ndarray) and c.data.ptr == t.data_ptr()
