"""The fully connected layer: ``Linear(in_features, out_features)``; its weight is
(in_features, out_features), the layout ``F.linear_forward`` multiplies by (torch's is transposed)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..checks import check_int
from .init import init_weight
from .module import Module


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
