"""The module-level array functions of the stand-in ``cupy`` (and the targets of NumPy's
``__array_function__`` dispatch, so ``np.mean(device_array)`` stays on the device as in CuPy)."""
from __future__ import annotations

import types

import numpy as np

from . import _count, _graph
from ._array import _call, _device, _record_redo, _wrap, ndarray


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return np.asarray(a, order=order)


def _upload(a, dtype=None, order="C"):
    _graph.refuse("cupy.asarray", "the current stream is capturing, so H2D transfers are "
                                  "disallowed")
    r = np.array(a, dtype=dtype, order=order, copy=True)  # CuPy copies lists and scalars too
    _count.upload("blocking")
    return _wrap(r)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _upload(a, dtype, order or "C")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray):
        return obj.astype(dtype or obj.dtype, copy=copy)
    return _upload(obj, dtype, "C" if order in ("K", "A") else order)


def ascontiguousarray(a, dtype=None):
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def get_array_module(*args):
    import sys

    return sys.modules[__package__] if any(isinstance(a, ndarray) for a in args) else np


# -- creation: an allocation; filling it is one kernel
def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def _filled(shape, dtype, value, order="C"):
    out = ndarray(shape, dtype, order=order)
    out.fill(value)
    return out


def zeros(shape, dtype=float, order="C"):
    return _filled(shape, dtype, 0, order)


def ones(shape, dtype=float, order="C"):
    return _filled(shape, dtype, 1, order)


def full(shape, fill_value, dtype=None, order="C"):
    return _filled(shape, dtype if dtype is not None else np.asarray(fill_value).dtype, fill_value,
                   order)


def _like(a, dtype):
    if not isinstance(a, ndarray):
        raise TypeError(f"a={type(a).__name__}: expected a cupy array")
    return a.shape, a.dtype if dtype is None else dtype


def empty_like(prototype, dtype=None, order="C", subok=None, shape=None):
    s, d = _like(prototype, dtype)
    return empty(s if shape is None else shape, d, order)


def zeros_like(a, dtype=None, order="C", subok=None, shape=None):
    s, d = _like(a, dtype)
    return zeros(s if shape is None else shape, d, order)


def ones_like(a, dtype=None, order="C", subok=None, shape=None):
    s, d = _like(a, dtype)
    return ones(s if shape is None else shape, d, order)


def full_like(a, fill_value, dtype=None, order="C", subok=None, shape=None):
    s, d = _like(a, dtype)
    return full(s if shape is None else shape, fill_value, d, order)


def arange(*args, **kwargs):
    result = _wrap(np.arange(*args, **kwargs), (), "arange")
    _record_redo(result, np.arange, args, kwargs, "arange")
    return result


# -- array code: one kernel each
def _kernel(name):
    fn = getattr(np, name)

    def impl(*args, **kwargs):
        return _call(name, fn, args, kwargs)

    impl.__name__ = name
    return impl


for _name in ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "any", "all", "var", "std",
              "dot", "inner", "tensordot", "where", "clip", "stack", "concatenate", "cumsum",
              "count_nonzero", "allclose", "array_equal"):
    globals()[_name] = _kernel(_name)


# -- views: no kernel unless NumPy had to copy
def reshape(a, newshape, order="C", copy=None):
    return _device_arg(a).reshape(newshape, order=order, copy=copy)


def transpose(a, axes=None):
    return _device_arg(a).transpose(*(axes or ()))


def ravel(a, order="C"):
    return _device_arg(a).ravel(order)


def squeeze(a, axis=None):
    return _device_arg(a).squeeze(axis)


def shape(a):
    return _device_arg(a).shape


def ndim(a):
    return _device_arg(a).ndim


def size(a, axis=None):
    return _device_arg(a).size if axis is None else _device_arg(a).shape[axis]


def _device_arg(a):
    if not isinstance(a, ndarray):
        raise TypeError(f"a={type(a).__name__}: expected a cupy array")
    return a


def _norm(x, ord=None, axis=None, keepdims=False):
    return _call("norm", np.linalg.norm, (x,), {"ord": ord, "axis": axis, "keepdims": keepdims})


linalg = types.ModuleType("cupy.linalg", "The stand-in's cupy.linalg.")
linalg.norm = _norm
_norm.__name__ = "norm"
