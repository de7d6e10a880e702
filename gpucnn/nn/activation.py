"""Activation layers: ReLU (adding a bias a layer before it left out, when nn.Sequential asks),
Sigmoid, LeakyReLU and Tanh."""
from __future__ import annotations

from .. import functional as F
from ..functional.activation import check_negative_slope
from .module import Module


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
