"""(N, d1, ..., dk) -> (N, d1*...*dk) as a module."""
from __future__ import annotations

from .module import Module


class Flatten(Module):
    """(N, d1, ..., dk) -> (N, d1*...*dk)."""

    def forward(self, x):
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        return dout.reshape(self._take_cache())
