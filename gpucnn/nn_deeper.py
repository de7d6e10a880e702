"""Modules for deeper nets: batch norm, average pooling, LeakyReLU, Tanh and residual blocks.

Re-exported by :mod:`gpucnn.nn` (``nn.BatchNorm2d`` ...).  Names and argument order follow
``torch.nn``.  Batch norm's learnable scale and shift are named ``gamma`` and ``beta`` (torch's
``weight`` and ``bias``) as in CS231n, which also keeps them out of L2: a :class:`Classifier`
regularises only parameters named ``*.weight``.  Its running statistics are buffers, so they are
saved with ``state_dict()`` (checkpoints, weights files), moved by ``.to()`` and restored on
resume.  Data-parallel training (gpucnn.distributed) normalises each rank's shard with its own
batch statistics, as PyTorch DDP without SyncBatchNorm; the running statistics are not yet
synchronised between ranks, so each rank scores its share of an accuracy check with its own.
"""
from __future__ import annotations

import numpy as np

from . import functional as F
from .checks import check_int
from .functional.activation import check_negative_slope
from .functional.normalization import check_eps, check_momentum
from .nn import Module


class _BatchNorm(Module):
    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        super().__init__()
        self.num_features = check_int("num_features", num_features, 1)
        self.eps = check_eps(eps)
        self.momentum = check_momentum(momentum)
        self.gamma = np.ones(num_features, dtype=dtype)
        self.beta = np.zeros(num_features, dtype=dtype)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)

    def forward(self, x):
        out, self._cache = self._forward(x, self.gamma, self.beta, self.running_mean,
                                         self.running_var, self.training, self.momentum, self.eps)
        return out

    def backward(self, dout, need_dx=True):
        dx, self.grads["gamma"], self.grads["beta"] = self._backward(dout, self._take_cache(),
                                                                     need_dx)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over features: x (N, num_features) -> same shape.

    Training: batch statistics, running ones updated with ``momentum`` (PyTorch's meaning:
    running = (1 - momentum) * running + momentum * batch statistic, the variance unbiased);
    evaluation: the running statistics.  A training batch needs more than one row.
    """

    _forward = staticmethod(F.batchnorm_forward)
    _backward = staticmethod(F.batchnorm_backward)


class BatchNorm2d(_BatchNorm):
    """Batch norm per channel, statistics over N, H, W: x (N, num_features, H, W) -> same shape.
    Otherwise as :class:`BatchNorm1d`."""

    _forward = staticmethod(F.spatial_batchnorm_forward)
    _backward = staticmethod(F.spatial_batchnorm_backward)


class AvgPool2d(Module):
    """Average pooling over kernel_size x kernel_size windows every ``stride`` (default
    kernel_size); no padding."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else check_int("stride", stride, 1)

    def forward(self, x):
        out, self._cache = F.avgpool2d_forward(x, self.kernel_size, self.stride)
        return out

    def backward(self, dout, need_dx=True):
        return F.avgpool2d_backward(dout, self._take_cache())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class GlobalAvgPool2d(Module):
    """Mean over each channel's map: x (N, C, H, W) -> (N, C) (torch: AdaptiveAvgPool2d(1) then
    flatten)."""

    def forward(self, x):
        out, self._cache = F.global_avgpool2d_forward(x)
        return out

    def backward(self, dout, need_dx=True):
        return F.global_avgpool2d_backward(dout, self._take_cache())


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_negative_slope(negative_slope)

    def forward(self, x):
        out, self._cache = F.leaky_relu_forward(x, self.negative_slope)
        return out

    def backward(self, dout, need_dx=True):
        return F.leaky_relu_backward(dout, self._take_cache())

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    def forward(self, x):
        out, self._cache = F.tanh_forward(x)
        return out

    def backward(self, dout, need_dx=True):
        return F.tanh_backward(dout, self._take_cache())


class Residual(Module):
    """out = body(x) + shortcut(x): the shortcut is ``projection(x)`` when a projection is given
    (typically a 1x1 ``Conv2d``, strided when the body downsamples), else ``x`` itself.

    ``body`` is any module (usually a ``Sequential``) whose output has the shortcut's shape.
    Backward sums both paths' input gradients.  Parameters are named ``body.<...>`` and
    ``projection.<...>``.
    """

    def __init__(self, body: Module, projection: Module | None = None):
        super().__init__()
        for name, m in (("body", body), ("projection", projection)):
            if not (isinstance(m, Module) or (name == "projection" and m is None)):
                raise TypeError(f"{name}={type(m).__name__}: expected a gpucnn.nn.Module"
                                + (" or None" if name == "projection" else ""))
        self.body, self.projection = body, projection

    def children(self):
        own = [("body", self.body)]
        return own + [("projection", self.projection)] if self.projection is not None else own

    def forward(self, x):
        out = self.body.forward(x)
        shortcut = x if self.projection is None else self.projection.forward(x)
        if out.shape != shortcut.shape:
            raise ValueError(f"body(x).shape={tuple(out.shape)}: expected the shortcut's "
                             f"{tuple(shortcut.shape)}; give a projection (e.g. a 1x1 Conv2d) "
                             f"that maps x to the body's shape")
        return out + shortcut

    def backward(self, dout, need_dx=True):
        dx = self.body.backward(dout, need_dx=need_dx)
        dshort = dout if self.projection is None else self.projection.backward(dout, need_dx)
        return dx + dshort if need_dx else None

    def __repr__(self):
        body = repr(self.body).replace("\n", "\n  ")
        proj = "" if self.projection is None else f"\n  projection={self.projection!r}"
        return f"Residual(\n  body={body}{proj}\n)"
