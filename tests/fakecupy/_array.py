"""The stand-in ``cupy.ndarray`` and the array functions gpucnn calls, over NumPy.

The array wraps a NumPy array rather than subclassing it: ``np.asarray`` never asks a subclass
before viewing its memory, so only a wrapper can refuse implicit conversion to the host as CuPy
does.  Every operation unwraps its inputs (refusing NumPy arrays, as CuPy's kernels do, and
arrays of another device than the current one, as CuPy's ``_check_peer_access`` does where
peer access is unavailable: cupy/_core/_kernel.pyx), runs in NumPy and wraps the result,
counting one launch per elementwise op, reduction, matmul or copy, and one allocation per
result that owns a new buffer (views are free).  A new buffer is a chunk of the current pool
(fakecupy._memory) and every write is in flight on its stream until ordered
(fakecupy._stream).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _count, _devices, _graph, _memory, _stream
from ._buffers import new as _new, on_stream as _on_stream, root as _root, shadow as _shadow
from ._buffers import strides as _strides

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")
CUBLAS_PRODUCTS = ("matmul", "dot", "inner", "tensordot")


def _device(x, role="argument", same_device=True):
    """The NumPy array inside a stand-in array, checking its device and that its last write is
    ordered before the current stream's work; scalars pass."""
    if isinstance(x, ndarray):
        if same_device and x._dev != _devices.host.current:
            raise ValueError(f"The device where the array resides ({x._dev}) is different from "
                             f"the current device ({_devices.host.current}). Peer access is "
                             f"unavailable between these devices.")
        _stream.check_read(_root(x._a), f"device array {x._a.dtype}{x._a.shape}")
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"{role}=numpy.ndarray{x.shape}: expected a cupy array (CuPy refuses host "
                        f"arrays in device operations; move it with cupy.asarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_device(v, role) for v in x)
    return x


def _wrap(r, sources=(), launch=None):
    """Wrap NumPy result ``r`` (0-d results of NumPy come back as scalars; CuPy keeps arrays).
    A result in a buffer none of ``sources`` owns goes to a new buffer: an allocation, written
    on the current stream."""
    if isinstance(r, tuple):
        return tuple(_wrap(x, sources, launch) for x in r)
    if launch is not None:
        _count.launch(launch)
    if not isinstance(r, np.ndarray):
        r = np.asarray(r)
    root = _root(r)
    out = ndarray.__new__(ndarray)
    owners = [s for s in sources if isinstance(s, ndarray) and _root(s._a) is root]
    if owners:
        out._a, out._dev = r, owners[0]._dev
        return out
    out._a, out._dev = _new(r.shape, r.dtype, _strides(r.shape, r.itemsize, r.strides)), \
        _devices.host.current
    np.copyto(out._a, r)
    _stream.wrote(out._a, launch or "a new array")
    return out


def _record_redo(result, fn, args, kwargs, name):
    """Inside a capture: redo ``fn`` into ``result``'s memory at each launch."""
    if _graph.active is None:
        return
    targets, sargs, skwargs = _shadow([a._a for a in (result if isinstance(result, tuple)
                                                      else (result,))]), _shadow(args), \
        _shadow(kwargs)

    def replay():
        value = fn(*sargs, **skwargs)
        for t, v in zip(targets, value if isinstance(result, tuple) else (value,)):
            np.copyto(t, v, casting="unsafe")

    _graph.record(replay, name)


def _refuse_cublas(name, dargs, result_size):
    if name in CUBLAS_PRODUCTS and _graph.active is not None \
            and _graph.product_uses_cublas(np.asarray(dargs[0]), np.asarray(dargs[1]), result_size):
        _graph.refuse_cublas(name)


def _call(name, fn, args, kwargs):
    """Run NumPy function ``fn`` on the unwrapped arguments and wrap what it returns."""
    dargs = _device(args, f"{name} operand")
    if "out" in kwargs and kwargs["out"] is not None:
        out = kwargs["out"]
        kwargs = dict(kwargs, out=_device(out, "out"))
        _refuse_cublas(name, dargs, np.size(kwargs["out"]))
        fn(*dargs, **kwargs)
        _count.launch(name)
        for o in (out if isinstance(out, tuple) else (out,)):
            _stream.wrote(_root(o._a), name)
        if _graph.active is not None:
            sargs, skwargs = _shadow(dargs), _shadow(kwargs)
            _graph.record(lambda: fn(*sargs, **skwargs), name)
        return out
    dkwargs = {k: _device(v, k) for k, v in kwargs.items()}
    value = fn(*dargs, **dkwargs)
    _refuse_cublas(name, dargs, np.size(value))
    flat = [a for a in args for a in (a if isinstance(a, (list, tuple)) else (a,))]
    result = _wrap(value, flat, name)
    _record_redo(result, fn, dargs, dkwargs, name)
    return result


def _copied(name, fn, self, *args, **kwargs):
    """A method that returns a view when it can and a copy otherwise (one copy kernel)."""
    source = _device(self)
    r = fn(source, *args, **kwargs)
    new = _root(r) is not _root(self._a)
    result = _wrap(r, (self,), name if new else None)
    if new:
        _record_redo(result, fn, (source, *args), kwargs, name)
    return result


def _copy(self, how, name="copy"):
    """A copy kernel: ``how(source)`` into a new buffer."""
    source = _device(self)
    result = _wrap(how(source), (self,), name)
    _record_redo(result, how, (source,), {}, name)
    return result


class ndarray:
    """``cupy.ndarray`` on the host; ``type(a).__module__`` is ``cupy`` for device detection."""

    __module__ = "cupy"
    __slots__ = ("_a", "_dev", "__weakref__")
    __array_priority__ = 100.0

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None:
            raise NotImplementedError("memptr: arrays over given memory are not modelled by "
                                      "the stand-in")
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        itemsize = np.dtype(dtype).itemsize
        self._a = _new(shape, dtype, strides or _strides(shape, itemsize, order=order))
        self._dev = _devices.host.current

    # -- attributes that read no data
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T, (self,)))
    # cupy.cuda.MemoryPointer: ``ptr`` is the device address of the first element
    data = property(lambda self: _memory.MemoryPointer(
        _memory._Address(self._a.ctypes.data, self._dev), 0))
    device = property(lambda self: _devices.Device(self._dev))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- refused or synchronising conversions to the host
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        """The host copy, made on ``stream`` (the current one), which the host then waits for;
        any device (CuPy switches to the array's)."""
        _graph.refuse("ndarray.get", "the current stream is capturing, so synchronous API calls "
                                     "are disallowed")
        _count.sync("ndarray.get")
        with _on_stream(stream):
            a = np.array(_device(self, same_device=False), order=order)
            _stream.host_waited()
        if out is None:
            return a
        out[...] = a
        return out

    def _scalar(self, what, convert):
        _graph.refuse(what, "the current stream is capturing, so synchronous API calls are "
                            "disallowed")
        _count.sync(what)
        value = convert(_device(self, same_device=False))
        _stream.host_waited()
        return value

    def __float__(self):
        return self._scalar("float()", float)

    def __int__(self):
        return self._scalar("int()", int)

    def __bool__(self):
        return self._scalar("bool()", bool)

    def __index__(self):
        return self._scalar("index", lambda a: a.__index__())

    def __complex__(self):
        return self._scalar("complex()", complex)

    def item(self):
        return self._scalar("item()", lambda a: a.item())

    def tolist(self):
        return self._scalar("tolist()", lambda a: a.tolist())

    def __repr__(self):
        return self._scalar("repr()", lambda a: repr(a).replace("array(", "cupy.ndarray(", 1))

    def __str__(self):
        return self._scalar("str()", str)

    def __format__(self, spec):
        return self._scalar("format()", lambda a: format(a.item() if a.ndim == 0 else a, spec))

    # -- uploads
    def set(self, arr, stream=None):
        """A copy from the host on ``stream`` (the current one): in flight for other streams
        until ordered (fakecupy._stream)."""
        if isinstance(arr, ndarray) or not isinstance(arr, np.ndarray):
            raise TypeError(f"arr={type(arr).__name__}: expected a numpy.ndarray")
        if arr.shape != self.shape:
            raise ValueError(f"arr.shape={arr.shape}: expected {self.shape}, the array's shape")
        if arr.dtype != self.dtype:
            raise TypeError(f"arr.dtype={arr.dtype}: expected {self.dtype}, the array's dtype")
        _graph.refuse("ndarray.set", "the current stream is capturing, so H2D transfers are "
                                     "disallowed")
        self._a[...] = arr
        current = _stream.get_current_stream()
        _count.upload("blocking" if stream is None or stream is current else "async")
        _stream.wrote(_root(self._a), f"device array {self.dtype}{self.shape}", stream, "copy")

    # -- ufuncs, NumPy functions and operators
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        if out is not None:
            kwargs["out"] = out if len(out) > 1 else out[0]
        return _call(name, fn, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import _functions

        impl = getattr(_functions, func.__name__, None)
        return NotImplemented if impl is None else impl(*args, **kwargs)

    # -- indexing
    def __getitem__(self, key):
        return _copied("take", np.ndarray.__getitem__, self, _device(key, "index"))

    def __setitem__(self, key, value):
        dest, key, value, name = (_device(self), _device(key, "index"), _device(value, "value"),
                                  "copy" if isinstance(value, ndarray) else "fill")
        dest[key] = value
        _count.launch(name)
        _stream.wrote(_root(dest), name)
        if _graph.active is not None:
            sdest, skey, svalue = _shadow(dest), _shadow(key), _shadow(value)
            _graph.record(lambda: sdest.__setitem__(skey, svalue), name)

    # -- shape and type
    def reshape(self, *shape, order="C", copy=None):
        """A view where the memory allows (``copy=None``), else a copy kernel."""
        if copy is not None:
            raise NotImplementedError("reshape(copy=...): not modelled by the stand-in")
        return _copied("copy", np.reshape, self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        return _wrap(self._a.transpose(*axes), (self,))

    def swapaxes(self, axis1, axis2):
        return _wrap(self._a.swapaxes(axis1, axis2), (self,))

    def squeeze(self, axis=None):
        return _wrap(self._a.squeeze(axis), (self,))

    def ravel(self, order="C"):
        return _copied("copy", np.ravel, self, order=order)

    def flatten(self, order="C"):
        return _copy(self, lambda a: a.flatten(order))

    def view(self, dtype=None, type=None):
        if type is not None:
            raise NotImplementedError("view(type=...): not modelled by the stand-in")
        return _wrap(self._a.view(dtype) if dtype is not None else self._a.view(), (self,))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _copy(self, lambda a: a.astype(dtype, order=order))

    def copy(self, order="C"):
        return _copy(self, lambda a: a.copy(order=order))

    def fill(self, value):
        dest, value = _device(self), _device(value, "value")
        dest.fill(value)
        _count.launch("fill")
        _stream.wrote(_root(dest), "fill")
        if _graph.active is not None:
            sdest = _shadow(dest)
            _graph.record(lambda: sdest.fill(value), "fill")

    # -- reductions and products: one kernel each
    def _reduce(name):  # noqa: N805  (a class-body helper that builds methods)
        def method(self, *args, **kwargs):
            return _call(name, getattr(np, name), (self, *args), kwargs)

        method.__name__ = name
        return method

    sum, mean, max, min = _reduce("sum"), _reduce("mean"), _reduce("max"), _reduce("min")
    prod = _reduce("prod")
    argmax, argmin, any, all = _reduce("argmax"), _reduce("argmin"), _reduce("any"), _reduce("all")
    var, std, dot, clip = _reduce("var"), _reduce("std"), _reduce("dot"), _reduce("clip")
    del _reduce


def _operator(name, reflected=False, inplace=False):
    ufunc = getattr(np, name)
    if inplace:
        def op(self, other):
            return ufunc(self, other, out=(self,))
    elif reflected:
        def op(self, other):
            return ufunc(other, self)
    else:
        def op(self, other):
            return ufunc(self, other)
    return op


for _dunder, _ufunc in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                        ("truediv", "true_divide"), ("floordiv", "floor_divide"),
                        ("mod", "remainder"), ("pow", "power"), ("matmul", "matmul"),
                        ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                        ("lshift", "left_shift"), ("rshift", "right_shift")):
    setattr(ndarray, f"__{_dunder}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_dunder}__", _operator(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_dunder}__", _operator(_ufunc, inplace=True))
for _dunder, _ufunc in (("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                        ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")):
    setattr(ndarray, f"__{_dunder}__", _operator(_ufunc))
for _dunder, _ufunc in (("neg", "negative"), ("pos", "positive"), ("abs", "absolute"),
                        ("invert", "invert")):
    setattr(ndarray, f"__{_dunder}__", lambda self, _u=getattr(np, _ufunc): _u(self))
ndarray.__hash__ = None
