"""Inverted dropout (seeds/002): ``p`` is the probability of dropping, survivors scaled by
1/(1-p); masks from a counter-based stream, the same on every device."""
from __future__ import annotations

from .. import primitives
from ..checks import check_probability
from ..rng import Generator, drop_threshold
from ._checks import check_array, check_dout


def dropout_forward(x, p, train, rng: Generator | None):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the rest
    scaled by 1/(1-p); in evaluation (or with p == 0) the identity.

    The mask comes from ``rng`` (a :class:`gpucnn.rng.Generator`), so the same seed gives the
    same mask on every device.
    """
    xp = check_array("x", x)
    p = check_probability("p", p)
    if not train or p == 0:
        return x, None
    if not isinstance(rng, Generator):
        raise TypeError(f"rng={rng!r}: dropout in training needs a gpucnn.rng.Generator")
    scale = x.dtype.type(1.0 / (1.0 - p))
    out, mask = primitives.for_array_module(xp).dropout_forward(
        x, rng.key, rng.reserve(x.size), drop_threshold(p), scale)
    return out, (mask, scale)


def dropout_backward(dout, cache):
    """Reuses the forward mask: dx = dout * mask / (1 - p)."""
    if cache is None:
        return dout
    mask, scale = cache
    check_dout(dout, mask.shape, mask)
    return primitives.of(dout).dropout_backward(dout, mask, scale)
