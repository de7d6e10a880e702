"""2-D convolution as a module: ``Conv2d(in_channels, out_channels, kernel_size, stride, padding)``."""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..checks import check_int
from ..shapes import same_padding
from .init import init_weight
from .module import Module


def _pair(name, v):
    """An int k or a pair (kh, kw) of positive ints -> (kh, kw)."""
    pair = (v, v) if not isinstance(v, (tuple, list)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                                 and i >= 1 for i in pair):
        raise ValueError(f"{name}={v!r}: expected a positive int or a pair of positive ints")
    return int(pair[0]), int(pair[1])


class Conv2d(Module):
    """2-D convolution (cross-correlation).  x (N, C_in, H, W) -> (N, C_out, OH, OW).

    weight (C_out, C_in, KH, KW), bias (C_out,).  He init unless ``weight_scale`` is given.
    ``padding="same"`` keeps the input's size: (k - 1) // 2 for an odd square kernel at
    stride 1 (``padding`` then holds that int).
    """

    param_names = ("weight", "bias")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *,
                 weight_scale=None, dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = check_int("stride", stride, 1)
        self.padding = check_int("padding", same_padding(padding, kernel_size,
                                                         self.stride), 0)
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        self.weight = init_weight((out_channels, in_channels, kh, kw), fan_in, weight_scale, dtype, rng)
        self.bias = np.zeros(out_channels, dtype=dtype) if bias else None

    def forward(self, x, add_bias=True, relu=False, bn=None):
        """``add_bias=False`` leaves the bias to the op after (nn.Sequential fuses it into a
        ReLU and max-pool on CUDA); the backward still gives its gradient.  ``relu``: relu of
        the result as one op (nn.Sequential fuses a ReLU after this layer where no pool
        follows); the backward then takes the gradient of that.  ``bn``: the BatchNorm2d after
        this layer, in evaluation, folded into the convolution (nn.Sequential in eval mode);
        the backward then gives its gamma and beta gradients too."""
        if (relu or bn is not None) and not add_bias:
            raise ValueError("relu=True or bn adds the bias itself: expected add_bias=True")
        if bn is not None:
            out, cache = F.conv2d_bn_eval_forward(x, self.weight, self.bias, bn.gamma, bn.beta,
                                                  bn.running_mean, bn.running_var, bn.eps,
                                                  self.stride, self.padding, relu)
            self._cache = (F.conv2d_bn_eval_backward, cache, bn)
        elif relu:
            out, cache = F.conv2d_relu_forward(x, self.weight, self.bias, self.stride, self.padding)
            self._cache = (F.conv2d_relu_backward, cache, None)
        else:
            out, cache = F.conv2d_forward(x, self.weight, self.bias, self.stride, self.padding,
                                          add_bias)
            self._cache = (F.conv2d_backward, cache, None)
        return out

    def backward(self, dout, need_dx=True):
        backward, cache, bn = self._take_cache()
        grads = backward(dout, cache, need_dx)
        dx, self.grads["weight"], self.grads["bias"] = grads[:3]
        if bn is not None:  # folded in: its gradients come from this layer's backward
            bn.grads["gamma"], bn.grads["beta"] = grads[3:]
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
