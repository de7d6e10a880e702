"""Layers as modules: parameters, their gradients, train/eval mode and device placement over
:mod:`gpucnn.functional`.

Names and argument order follow ``torch.nn`` (``Conv2d(in_channels, out_channels, kernel_size,
stride, padding)``).  Differences a PyTorch user should know: ``backward(dout)`` is explicit (no
autograd) and *sets* ``grads`` rather than accumulating; ``Linear.weight`` is (in_features,
out_features), the layout ``F.linear_forward`` multiplies by.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from .checks import check_int, check_probability, check_real
from .device import device_of, resolve_device, to_device, to_numpy
from .rng import Generator


_EMPTY = object()  # "no forward cache held"; distinct from None, which dropout uses in eval


def _pair(name, v):
    """An int k or a pair (kh, kw) of positive ints -> (kh, kw)."""
    pair = (v, v) if not isinstance(v, (tuple, list)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                                 and i >= 1 for i in pair):
        raise ValueError(f"{name}={v!r}: expected a positive int or a pair of positive ints")
    return int(pair[0]), int(pair[1])


def _host_rng(rng) -> np.random.Generator:
    """Initialisation draws happen on the host: accept a Generator, a seed or None."""
    if isinstance(rng, Generator):
        return rng.host
    if rng is None or isinstance(rng, numbers.Integral):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng={rng!r}: expected a gpucnn Generator, a numpy Generator, a seed or None")


def init_weight(shape, fan_in, weight_scale, dtype, rng):
    """He initialisation N(0, 2/fan_in) by default; N(0, weight_scale^2) when weight_scale is given
    (the CS231n convention)."""
    std = np.sqrt(2.0 / fan_in) if weight_scale is None else check_real("weight_scale",
                                                                         weight_scale, 0)
    return (_host_rng(rng).standard_normal(shape) * std).astype(dtype)


class Module:
    """Base class: holds parameters (``param_names`` attributes), buffers (``buffer_names``:
    arrays that are state but not trained, such as running statistics), random streams (any
    :class:`gpucnn.rng.Generator` attribute), ``grads`` and child modules.

    State is found by walking the modules, so saving, loading and moving a model needs no
    knowledge of its layer types.
    """

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()

    def __init__(self):
        self.training = True
        self.grads: dict[str, object] = {}
        self._cache = _EMPTY

    # -- computation: subclasses define forward(x) and backward(dout, need_dx=True)
    def __call__(self, x):
        return self.forward(x)

    def _take_cache(self):
        """The forward's cache, released so big buffers (im2col columns) die with the step."""
        if self._cache is _EMPTY:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward before it")
        cache, self._cache = self._cache, _EMPTY
        return cache

    # -- structure
    def children(self) -> list[tuple[str, "Module"]]:
        return []

    def _walk(self, prefix, own):
        """(dotted name, value) for ``own(module)``'s (name, value) pairs of every module."""
        for name, value in own(self):
            yield prefix + name, value
        for child_name, child in self.children():
            yield from child._walk(f"{prefix}{child_name}.", own)

    def named_parameters(self, prefix=""):
        return self._walk(prefix, lambda m: ((n, getattr(m, n)) for n in m.param_names
                                             if getattr(m, n) is not None))

    def named_buffers(self, prefix=""):
        return self._walk(prefix, lambda m: ((n, getattr(m, n)) for n in m.buffer_names
                                             if getattr(m, n) is not None))

    def named_generators(self, prefix=""):
        """Every random stream the model owns (dropout masks...), as (dotted name, Generator)."""
        return self._walk(prefix, lambda m: ((n, v) for n, v in vars(m).items()
                                             if isinstance(v, Generator)))

    def parameters(self) -> dict:
        """{dotted name: array}; the arrays themselves, so in-place updates reach the layer."""
        return dict(self.named_parameters())

    def gradients(self) -> dict:
        """{dotted name: gradient array} from the last backward."""
        out = {}
        for name in self.param_names:
            if name in self.grads and self.grads[name] is not None:
                out[name] = self.grads[name]
        for child_name, child in self.children():
            out.update({f"{child_name}.{k}": v for k, v in child.gradients().items()})
        return out

    def modules(self):
        yield self
        for _, child in self.children():
            yield from child.modules()

    # -- mode and device
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @property
    def device(self) -> str:
        for _, p in self.named_parameters():
            return device_of(p)
        return "cpu"

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to ``device`` ("cpu", "cuda" or "auto"); returns self.
        Random streams are device-independent and stay as they are."""
        device = resolve_device(device)
        for m in self.modules():
            for name in m.param_names + m.buffer_names:
                if getattr(m, name) is not None:
                    setattr(m, name, to_device(getattr(m, name), device))
            m.grads = {}
            m._cache = _EMPTY
        return self

    # -- persistence
    def state_dict(self) -> dict:
        """{dotted name: NumPy copy} of every parameter and buffer."""
        return {k: np.array(to_numpy(v)) for k, v in (*self.named_parameters(),
                                                      *self.named_buffers())}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (NumPy or CuPy) into the parameters and buffers, on their device and in
        their dtype; names and shapes must match."""
        own = dict((*self.named_parameters(), *self.named_buffers()))
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {type(self).__name__}: "
                             f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        for name, param in own.items():
            value = state[name]
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"state_dict[{name!r}].shape={tuple(value.shape)}: expected "
                                 f"{tuple(param.shape)}")
            param[...] = to_device(value, device_of(param))  # one copy, never via the host twice

    def extra_state(self) -> dict:
        """{dotted name: state} of every random stream, JSON-able (checkpoints store it)."""
        return {name: g.state() for name, g in self.named_generators()}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`; the model must own the same streams."""
        own = dict(self.named_generators())
        if set(own) != set(state):
            raise ValueError(f"random streams {sorted(state)}: expected this model's "
                             f"{sorted(own)}")
        for name, g in own.items():
            g.set_state(state[name])

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""


class Conv2d(Module):
    """2-D convolution (cross-correlation).  x (N, C_in, H, W) -> (N, C_out, OH, OW).

    weight (C_out, C_in, KH, KW), bias (C_out,).  He init unless ``weight_scale`` is given.
    """

    param_names = ("weight", "bias")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *,
                 weight_scale=None, dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = check_int("stride", stride, 1)
        self.padding = check_int("padding", padding, 0)
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        self.weight = init_weight((out_channels, in_channels, kh, kw), fan_in, weight_scale, dtype, rng)
        self.bias = np.zeros(out_channels, dtype=dtype) if bias else None

    def forward(self, x, add_bias=True):
        """``add_bias=False`` leaves the bias to the op after (nn.Sequential fuses it into a
        ReLU on CUDA); the backward still gives its gradient."""
        out, self._cache = F.conv2d_forward(x, self.weight, self.bias, self.stride, self.padding,
                                            add_bias)
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["weight"], self.grads["bias"] = F.conv2d_backward(dout, self._take_cache(), need_dx)
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Linear(Module):
    """Fully connected: x (N, ...) flattened to (N, in_features) -> (N, out_features).

    weight (in_features, out_features), bias (out_features,).
    """

    param_names = ("weight", "bias")

    def __init__(self, in_features, out_features, bias=True, *, weight_scale=None,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.weight = init_weight((in_features, out_features), in_features, weight_scale, dtype, rng)
        self.bias = np.zeros(out_features, dtype=dtype) if bias else None

    def forward(self, x, add_bias=True):
        """``add_bias=False``: as Conv2d's."""
        out, self._cache = F.linear_forward(x, self.weight, self.bias, add_bias)
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["weight"], self.grads["bias"] = F.linear_backward(dout, self._take_cache(), need_dx)
        return dx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class MaxPool2d(Module):
    """Max pooling over kernel_size x kernel_size windows every ``stride`` (default kernel_size)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else check_int("stride", stride, 1)

    def forward(self, x, after_relu=False, bias=None):
        """``after_relu=True`` pools relu(x) in one fused pass (nn.Sequential asks for it when a
        ReLU comes right before this layer), relu(x + bias) with a ``bias`` (a conv's, left
        out of x); the same values, argmax and gradients."""
        fused = bool(after_relu)
        if fused:
            out, cache = F.relu_maxpool2d_forward(x, self.kernel_size, self.stride, bias)
        elif bias is not None:
            raise ValueError("bias: expected None without after_relu=True")
        else:
            out, cache = F.maxpool2d_forward(x, self.kernel_size, self.stride)
        self._cache = (fused, cache)
        return out

    def backward(self, dout, need_dx=True):
        fused, cache = self._take_cache()
        return (F.relu_maxpool2d_backward if fused else F.maxpool2d_backward)(dout, cache)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class ReLU(Module):
    def forward(self, x, bias=None):
        """``bias``: relu(x + bias), the bias a Conv2d or Linear left out (nn.Sequential)."""
        out, self._cache = F.relu_forward(x, bias)
        return out

    def backward(self, dout, need_dx=True):
        return F.relu_backward(dout, self._take_cache())


class Sigmoid(Module):
    def forward(self, x):
        out, self._cache = F.sigmoid_forward(x)
        return out

    def backward(self, dout, need_dx=True):
        return F.sigmoid_backward(dout, self._take_cache())


class Dropout(Module):
    """Inverted dropout with drop probability ``p``; identity in eval mode.

    Masks come from ``rng`` (a :class:`gpucnn.rng.Generator`; a fresh one if None), so a
    seeded model drops the same units on every device.
    """

    def __init__(self, p=0.5, rng: Generator | None = None):
        super().__init__()
        self.p = check_probability("p", p)
        self.rng = rng if rng is not None else Generator()

    def forward(self, x):
        out, self._cache = F.dropout_forward(x, self.p, self.training, self.rng)
        return out

    def backward(self, dout, need_dx=True):
        return F.dropout_backward(dout, self._take_cache())

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """(N, d1, ..., dk) -> (N, d1*...*dk)."""

    def forward(self, x):
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        return dout.reshape(self._take_cache())


# --- modules for deeper nets ------------------------------------------------------------------
# In nn_deeper (this file would pass 400 lines), re-exported so that ``nn.<Module>`` names every
# layer.  Imported last: nn_deeper subclasses Module above.
from .nn_deeper import (  # noqa: E402,F401
    AvgPool2d, BatchNorm1d, BatchNorm2d, GlobalAvgPool2d, LeakyReLU, Residual, Tanh)
from .nn_sequential import Sequential  # noqa: E402,F401  (likewise, with its fusions)
