"""Device buffers of the stand-in: a new one is a chunk of the current pool (fakecupy._memory),
registered with the stream model (fakecupy._stream) and the capture (fakecupy._graph); a
replay closure holds a shadow of an array instead of the array, so dropping the array gives
its memory back to the pool, as on a GPU."""
from __future__ import annotations

import contextlib

import numpy as np

from . import _count, _graph, _memory, _stream


@contextlib.contextmanager
def on_stream(stream):
    """``stream`` current inside (no change for None)."""
    if stream is None:
        yield
        return
    with stream:
        yield


def root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def strides(shape, itemsize, like=None, order="C"):
    """Dense strides for a new buffer: C or F order, or the order of ``like``'s strides
    (NumPy's order='K', which CuPy's elementwise results keep too)."""
    dims = range(len(shape))
    if like is not None:
        dims = sorted(dims, key=lambda d: -abs(like[d]))
    elif order == "F":
        dims = reversed(dims)
    strides, step = [0] * len(shape), itemsize
    for d in reversed(list(dims)):
        strides[d] = step
        step *= shape[d]
    return tuple(strides)


def new(shape, dtype, strides) -> np.ndarray:
    """A new device buffer from the current pool: its root array."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    pointer = _memory.current_pool().malloc(nbytes)
    root = _memory.array_over(pointer, shape, dtype, strides)
    _count.allocation(shape, dtype)
    _stream.allocated(root, pointer.mem.chunk.block, pointer.device_id)
    _graph.allocated(root)
    return root


def shadow(x):
    """What a replay closure holds instead of an array: a view of the same memory that does
    not keep the array's buffer alive (the pool may hand it out again, as on a GPU); scalars
    and host arrays pass, lists and tuples are walked."""
    if isinstance(x, (list, tuple)):
        return type(x)(shadow(v) for v in x)
    if isinstance(x, dict):
        return {k: shadow(v) for k, v in x.items()}
    buf = _stream.buffers.get(id(root(x))) if isinstance(x, np.ndarray) else None
    if buf is None:
        return x
    return np.ndarray(x.shape, x.dtype, buffer=buf.block.mem, strides=x.strides,
                      offset=x.ctypes.data - buf.block.address)
