"""Pooling layers: max (fusing a ReLU before it when nn.Sequential asks), average and global average."""
from __future__ import annotations

from .. import functional as F
from ..checks import check_int
from .module import Module


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
