"""The argument checks every op of :mod:`gpucnn.functional` shares at its public boundary: arrays
(type, float dtype, rank), one device per op, a backward's ``dout`` against its forward, pooling
windows.  Errors read ``name=value: expected ...``."""
from __future__ import annotations

import numpy as np

from ..checks import check_int
from ..device import device_of, get_array_module


def check_array(name, a, ndim=None, min_ndim=None, batch=False):
    """-> the array module of float array ``a`` (numpy or cupy), of ``ndim`` (or at least
    ``min_ndim``) dimensions; ``batch``: a batch of at least one sample (an empty one would
    fail inside a reshape, or average nothing into NaN)."""
    xp = get_array_module(a)
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{name}: expected a numpy or cupy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}.dtype={a.dtype}: expected float32 or float64")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected {ndim} dimensions")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected at least {min_ndim} dimensions")
    if batch and (a.ndim == 0 or a.shape[0] == 0):
        raise ValueError(f"{name}.shape={tuple(a.shape)}: expected a batch of at least one sample")
    return xp


def check_same_device(**arrays):
    """The arrays given (None skipped) live on one device."""
    if all(type(a) is np.ndarray or a is None for a in arrays.values()):
        return  # the common case, without building the report (1.6 -> 0.5 us; ~30 calls a step)
    devices = {n: device_of(a) for n, a in arrays.items() if a is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"arrays live on different devices ({where}); move them with .to()")


def check_dout(dout, shape, like=None):
    """dout must have the forward output's shape and live where the forward's arrays do."""
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout.shape={tuple(dout.shape)}: expected {tuple(shape)}, the forward output's")
    if like is not None:
        check_same_device(dout=dout, forward=like)


def check_pool(name, x, size, stride):
    """-> (xp, size, stride) of a pooling op over ``x`` (N, C, H, W); stride None means size."""
    xp = check_array(name, x, ndim=4, batch=True)
    size = check_int("size", size, 1)
    stride = size if stride is None else check_int("stride", stride, 1)
    if size > x.shape[2] or size > x.shape[3]:
        raise ValueError(f"size={size}: larger than the input {name}.shape={tuple(x.shape)}")
    return xp, size, stride
