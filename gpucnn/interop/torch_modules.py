"""gpucnn modules as ``torch.nn`` modules (:func:`to_torch`) and back (:func:`from_torch`).

Weights and batch norm's running statistics are copied (``Linear.weight`` transposed: gpucnn's is
(in, out), torch's (out, in); gpucnn's ``gamma``/``beta`` are torch's ``weight``/``bias``), and
each module's train/eval mode is carried.  The torch side uses standard modules wherever one
exists; gpucnn's ``Residual`` and ``GlobalAvgPool2d`` become the small modules of
:mod:`.torch_layers`, and a ``Linear`` whose input is not (N, features) gets a
``torch.nn.Flatten()`` before it (gpucnn's flattens its input itself).  Dropout masks are drawn
by each framework's own generator, so only evaluation-mode outputs match with dropout in train
mode.  torch is imported by these functions, never by ``import gpucnn``.
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import nn
from ..device import to_numpy
from ..models import Classifier
from ..rng import Generator
from .dlpack import from_dlpack
from .optional import require

IMAGES, ROWS = 4, 2  # the ranks of (N, C, H, W) and (N, features)
_SIMPLE = ("ReLU", "Sigmoid", "Tanh")  # the same class name, no arguments, in both
CONVERTIBLE = ("Sequential, Conv2d, Linear, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) + "
               "Flatten, BatchNorm1d, BatchNorm2d, ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, "
               "Flatten, and gpucnn.interop.torch_layers' Residual and GlobalAvgPool2d")


def to_torch(model: nn.Module):
    """``model`` (a :class:`~gpucnn.models.Classifier`, whose ``net`` is converted, or any
    gpucnn module) as a ``torch.nn.Module`` with the same weights, dtype, device and modes."""
    torch = require("torch")
    from . import torch_layers

    first = next((p for _, p in model.named_parameters()), None)
    like = torch.from_dlpack(first) if first is not None else torch.empty(0)
    config = model.config() if isinstance(model, Classifier) else None
    rank = len(config["input_dim"]) + 1 if config else None  # unknown: a Linear flattens
    return _ToTorch(torch, torch_layers, like.device, like.dtype).one(model, rank, "")[0]


class _ToTorch:
    def __init__(self, torch, layers, device, dtype):
        self.torch, self.layers = torch, layers
        self.factory = {"device": device, "dtype": dtype}

    def one(self, m, rank, path):
        """``(torch module, output rank)`` of ``m`` at ``path`` on an input of ``rank`` (None:
        unknown)."""
        parts, rank = self.parts(m, rank, path)
        return (parts[0] if len(parts) == 1 else self.torch.nn.Sequential(*parts)), rank

    def parts(self, m, rank, path):
        """``([torch modules in order], output rank)``: more than one for a flattening Linear."""
        T, kind = self.torch.nn, type(m)
        if isinstance(m, Classifier):
            return self.parts(m.net, rank, _join(path, "net"))
        if kind is nn.Sequential:
            out = []
            for name, child in m.children():
                more, rank = self.parts(child, rank, _join(path, name))
                out += more
            return [_mode(T.Sequential(*out), m)], rank
        if kind is nn.Residual:
            body, out_rank = self.one(m.body, rank, _join(path, "body"))
            projection = (None if m.projection is None
                          else self.one(m.projection, rank, _join(path, "projection"))[0])
            return [_mode(self.layers.Residual(body, projection), m)], out_rank
        if kind is nn.Linear:
            t = T.Linear(m.in_features, m.out_features, bias=m.bias is not None, **self.factory)
            self._copy(t, m, ("weight", "bias"), transpose="weight")
            flatten = [] if rank == ROWS else [_mode(T.Flatten(), m)]
            return flatten + [_mode(t, m)], ROWS
        if kind is nn.Conv2d:
            t = T.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                         bias=m.bias is not None, **self.factory)
            self._copy(t, m, ("weight", "bias"))
            return [_mode(t, m)], IMAGES
        if kind is nn.BatchNorm1d or kind is nn.BatchNorm2d:
            t = getattr(T, kind.__name__)(m.num_features, m.eps, m.momentum, **self.factory)
            self._copy(t, m, ("gamma", "beta", "running_mean", "running_var"))
            return [_mode(t, m)], ROWS if kind is nn.BatchNorm1d else IMAGES
        simple = {nn.MaxPool2d: lambda: T.MaxPool2d(m.kernel_size, m.stride),
                  nn.AvgPool2d: lambda: T.AvgPool2d(m.kernel_size, m.stride),
                  nn.GlobalAvgPool2d: self.layers.GlobalAvgPool2d, nn.Flatten: T.Flatten,
                  nn.ReLU: T.ReLU, nn.Sigmoid: T.Sigmoid, nn.Tanh: T.Tanh,
                  nn.LeakyReLU: lambda: T.LeakyReLU(m.negative_slope),
                  nn.Dropout: lambda: T.Dropout(m.p)}
        if kind not in simple:
            raise ValueError(f"{path or 'model'}={type(m).__name__}: no PyTorch equivalent is "
                             f"known; expected a layer of gpucnn.nn")
        out_rank = {nn.MaxPool2d: IMAGES, nn.AvgPool2d: IMAGES, nn.GlobalAvgPool2d: ROWS,
                    nn.Flatten: ROWS}.get(kind, rank)
        return [_mode(simple[kind](), m)], out_rank

    def _copy(self, t, m, names, transpose=None):
        """gpucnn's arrays into torch's parameters and buffers (gamma, beta: weight, bias)."""
        torch_names = {"gamma": "weight", "beta": "bias"}
        with self.torch.no_grad():
            for name in names:
                value = getattr(m, name)
                if value is not None:
                    src = self.torch.from_dlpack(value)  # a view: the one copy is copy_'s
                    getattr(t, torch_names.get(name, name)).copy_(src.T if name == transpose
                                                                  else src)


def _mode(module, like):
    module.training = like.training
    return module


def from_torch(module, *, seed: int | None = None) -> nn.Module:
    """The gpucnn module of a ``torch.nn.Module`` built from the layers gpucnn has (see
    ``CONVERTIBLE``), with its weights, running statistics and modes, on its device (the CPU or
    CUDA).  Dropout layers draw their masks from ``Generator(seed)``'s streams 1, 2, ... in
    order.  Anything else is a ValueError naming the module's path and type."""
    torch = require("torch")
    from . import torch_layers

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module={type(module).__name__}: expected a torch.nn.Module")
    devices = {t.device.type for t in itertools.chain(module.parameters(), module.buffers())}
    if not devices <= {"cpu"} and devices != {"cuda"}:
        raise ValueError(f"module: its tensors are on {sorted(devices)}: expected the CPU or "
                         f"CUDA, one of them")
    converted = _FromTorch(torch, torch_layers, Generator(seed)).module(module, "")
    return converted.to("cuda") if devices == {"cuda"} else converted


class _Refusal(ValueError):
    """A torch module gpucnn cannot take, named by its path and type."""


def _refuse(path, t, why):
    where = f"module {path!r}" if path else "module"
    return _Refusal(f"{where} ({type(t).__module__}.{type(t).__qualname__}): {why}")


def _square(path, t, name, value):
    """An int, or a pair of equal ints, as one int (gpucnn's pooling and strides are square)."""
    pair = value if isinstance(value, tuple) else (value, value)
    if len(pair) != 2 or pair[0] != pair[1]:
        raise _refuse(path, t, f"{name}={value!r}: expected equal sizes on both axes")
    return int(pair[0])


class _FromTorch:
    def __init__(self, torch, layers, base: Generator):
        self.torch, self.layers, self.base = torch, layers, base
        self.streams = itertools.count(1)

    def module(self, t, path):
        """The gpucnn module of torch module ``t`` at ``path`` (dotted, as named_modules)."""
        T, kind = self.torch.nn, type(t)
        try:
            if kind is T.Sequential:
                m = nn.Sequential(*self._sequence(t, path))
            elif kind is self.layers.Residual:
                projection = (None if t.projection is None
                              else self.module(t.projection, _join(path, "projection")))
                m = nn.Residual(self.module(t.body, _join(path, "body")), projection)
            elif kind is T.Conv2d:
                m = self._conv(t, path)
            elif kind is T.Linear:
                m = nn.Linear(t.in_features, t.out_features, t.bias is not None,
                              dtype=self._dtype(t, path, t.weight))
                self._copy(m, t, {"weight": t.weight.T, "bias": t.bias})
            elif kind is T.BatchNorm1d or kind is T.BatchNorm2d:
                m = self._batchnorm(t, path)
            elif kind is T.MaxPool2d or kind is T.AvgPool2d:
                m = self._pool(t, path)
            elif kind is T.LeakyReLU:
                m = nn.LeakyReLU(t.negative_slope)
            elif kind is T.Dropout:
                m = nn.Dropout(t.p, rng=self.base.spawn(next(self.streams)))
            elif kind is T.Flatten:
                if (t.start_dim, t.end_dim) != (1, -1):
                    raise _refuse(path, t, f"start_dim={t.start_dim}, end_dim={t.end_dim}: "
                                           f"expected 1 and -1 (gpucnn flattens to (N, -1))")
                m = nn.Flatten()
            elif kind is self.layers.GlobalAvgPool2d:
                m = nn.GlobalAvgPool2d()
            elif kind.__name__ in _SIMPLE and kind is getattr(T, kind.__name__):
                m = getattr(nn, kind.__name__)()
            else:
                raise _refuse(path, t, f"gpucnn has no such layer; it converts {CONVERTIBLE}")
        except _Refusal:
            raise
        except (TypeError, ValueError) as e:  # gpucnn's own checks (a dropout p of 1, ...)
            raise _refuse(path, t, str(e)) from None
        m.training = t.training
        return m

    def _sequence(self, t, path):
        children = list(t.named_children())
        out = []
        for i, (name, child) in enumerate(children):
            if type(child) is self.torch.nn.AdaptiveAvgPool2d:  # + Flatten: GlobalAvgPool2d
                after = children[i + 1][1] if i + 1 < len(children) else None
                if child.output_size not in (1, (1, 1)) or type(after) is not self.torch.nn.Flatten:
                    raise _refuse(_join(path, name), child, "expected AdaptiveAvgPool2d(1) right "
                                  "before a Flatten() (gpucnn's GlobalAvgPool2d gives (N, C))")
                out.append(_mode(nn.GlobalAvgPool2d(), child))
            else:
                out.append(self.module(child, _join(path, name)))
        return out

    def _conv(self, t, path):
        if t.groups != 1 or tuple(t.dilation) != (1, 1) or t.padding_mode != "zeros":
            raise _refuse(path, t, f"groups={t.groups}, dilation={t.dilation}, padding_mode="
                                   f"{t.padding_mode!r}: expected 1, (1, 1), 'zeros'")
        padding = t.padding
        if padding == "valid":
            padding = 0
        elif padding == "same":  # stride 1 (torch's rule): (k - 1) / 2 each side when k is odd
            if any(k % 2 == 0 for k in t.kernel_size):
                raise _refuse(path, t, f"padding='same' with kernel_size={t.kernel_size}: "
                                       f"expected odd sizes (even ones pad unequally)")
            padding = tuple((k - 1) // 2 for k in t.kernel_size)
        m = nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size,
                      _square(path, t, "stride", tuple(t.stride)),
                      _square(path, t, "padding", tuple(padding) if isinstance(padding, tuple)
                              else padding),
                      t.bias is not None, dtype=self._dtype(t, path, t.weight))
        self._copy(m, t, {"weight": t.weight, "bias": t.bias})
        return m

    def _batchnorm(self, t, path):
        if not t.track_running_stats or t.running_mean is None or t.momentum is None:
            raise _refuse(path, t, f"track_running_stats={t.track_running_stats}, momentum="
                                   f"{t.momentum}: expected running statistics updated with a "
                                   f"momentum (gpucnn's batch norm evaluates with them)")
        kind = nn.BatchNorm1d if type(t) is self.torch.nn.BatchNorm1d else nn.BatchNorm2d
        m = kind(t.num_features, t.eps, t.momentum, dtype=self._dtype(t, path, t.running_mean))
        self._copy(m, t, {"gamma": t.weight, "beta": t.bias, "running_mean": t.running_mean,
                          "running_var": t.running_var})  # weight None (affine=False): 1 and 0
        return m

    def _pool(self, t, path):
        extra = {"padding": (t.padding, 0), "ceil_mode": (t.ceil_mode, False)}
        if type(t) is self.torch.nn.MaxPool2d:
            extra.update(dilation=(t.dilation, 1), return_indices=(t.return_indices, False))
        else:
            extra.update(divisor_override=(t.divisor_override, None))
        bad = {k: v for k, (v, want) in extra.items()
               if v != want and v not in ((want, want), [want, want])}
        if bad:
            wants = ", ".join(f"{k}={extra[k][1]!r}" for k in bad)
            raise _refuse(path, t, f"{', '.join(f'{k}={v!r}' for k, v in bad.items())}: "
                                   f"expected {wants}")
        kernel = _square(path, t, "kernel_size", t.kernel_size)
        stride = _square(path, t, "stride", t.stride) if t.stride is not None else None
        kind = nn.MaxPool2d if type(t) is self.torch.nn.MaxPool2d else nn.AvgPool2d
        return kind(kernel, stride)

    def _dtype(self, t, path, tensor):
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in ("float32", "float64"):
            raise _refuse(path, t, f"dtype={name}: expected float32 or float64")
        return np.dtype(name)

    def _copy(self, m, t, values):
        for name, value in values.items():
            if value is not None:
                getattr(m, name)[...] = to_numpy(from_dlpack(value.detach()))


def _join(path, name):
    return f"{path}.{name}" if path else name
