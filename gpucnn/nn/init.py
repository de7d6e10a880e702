"""Parameter initialisation; its random draws happen on the host, whatever the device."""
from __future__ import annotations

import numbers

import numpy as np

from ..checks import check_real
from ..rng import Generator


def host_rng(rng) -> np.random.Generator:
    """Initialisation draws happen on the host: accept a Generator, a seed or None."""
    if isinstance(rng, Generator):
        return rng.host
    if rng is None or isinstance(rng, numbers.Integral):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng={rng!r}: expected a gpucnn Generator, a numpy Generator, a seed or None")


def init_weight(shape, fan_in, weight_scale, dtype, rng):
    """He initialisation N(0, 2/fan_in) by default; N(0, weight_scale^2) when weight_scale is given
    (the CS231n convention)."""
    std = np.sqrt(2.0 / fan_in) if weight_scale is None else check_real("weight_scale",
                                                                         weight_scale, 0)
    return (host_rng(rng).standard_normal(shape) * std).astype(dtype)
