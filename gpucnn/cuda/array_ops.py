"""CUDA primitives written as CuPy array code rather than our kernels: batch norm
(:mod:`gpucnn.batchnorm`'s reductions and elementwise passes, CuPy's own kernels) and the
residual sum before a ReLU.  Methods of :class:`gpucnn.cuda.host.Primitives` (``self.xp`` is its
array module), bound there."""
from __future__ import annotations

from .. import batchnorm


def batchnorm_forward(self, x, gamma, beta, running_mean, running_var, train, momentum, eps,
                      relu):
    """gpucnn.batchnorm.forward over ``self.xp``."""
    return batchnorm.forward(self.xp, x, gamma, beta, running_mean, running_var, train,
                             momentum, eps, relu)


def batchnorm_backward(self, dout, saved, need_dx):
    """gpucnn.batchnorm.backward."""
    return batchnorm.backward(dout, saved, need_dx)


def add_relu_forward(self, a, b):
    """relu(a + b): the sum, then the relu kernel."""
    return self.relu_forward(a + b)
