"""Batch normalisation layers, ``BatchNorm1d`` over features and ``BatchNorm2d`` per channel.

Names and argument order follow ``torch.nn``.  The learnable scale and shift are named ``gamma``
and ``beta`` (torch's ``weight`` and ``bias``) as in CS231n, which also keeps them out of L2: a
:class:`Classifier` regularises only parameters named ``*.weight``.  Its running statistics are buffers, so they are
saved with ``state_dict()`` (checkpoints, weights files), moved by ``.to()`` and restored on
resume.  Data-parallel training (gpucnn.distributed) normalises each rank's shard with its own
batch statistics, as PyTorch DDP without SyncBatchNorm; the running statistics are not yet
synchronised between ranks, so each rank scores its share of an accuracy check with its own.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..checks import check_int
from ..functional.normalization import check_eps, check_momentum
from .module import Module


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

    def forward(self, x, relu=False):
        """``relu``: relu of the result in the same pass (nn.Sequential fuses a ReLU after this
        layer); the backward then takes the gradient of that."""
        out, self._cache = self._forward(x, self.gamma, self.beta, self.running_mean,
                                         self.running_var, self.training, self.momentum, self.eps,
                                         relu)
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
