"""Inverted dropout as a module; it owns its random stream."""
from __future__ import annotations

from .. import functional as F
from ..checks import check_probability
from ..rng import Generator
from .module import Module


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
