"""Small-sample statistics for replicated runs: Student t intervals, paired differences, verdicts.

Everything is a 95% two-sided interval of a mean across seeds: ``mean +/- t(0.975, n - 1) * s /
sqrt(n)`` with ``s`` the sample standard deviation.  No SciPy: the t quantile comes from a table
for 1..30 degrees of freedom and a Cornish-Fisher expansion beyond (error below 1e-5 there).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# t(0.975, df) for df = 1..30 (standard tables, 9 digits).
T975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
        2.364624252, 2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
        2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
        2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
        2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456)
Z975 = 1.959963984540054  # the normal 0.975 quantile, the limit of t(0.975, df)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (95% two-sided)."""
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df={df!r}: expected an integer number of degrees of freedom >= 1")
    if df <= len(T975):
        return T975[df - 1]
    z, v = Z975, float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


@dataclass(frozen=True)
class Interval:
    """A mean across ``n`` seeds and its 95% interval [low, high]; NaN bounds when n < 2."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, fmt: str = "+.3f") -> str:
        """``+0.068 (95% interval +0.059 to +0.077, 8 seeds)``."""
        if self.n < 2:
            return f"{self.mean:{fmt}} (1 seed: no interval)"
        return (f"{self.mean:{fmt}} (95% interval {self.low:{fmt}} to {self.high:{fmt}}, "
                f"{self.n} seeds)")


def mean_interval(values) -> Interval:
    """The mean of ``values`` (one per seed) with its 95% t interval."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"values: expected a non-empty 1-D sequence, got shape {x.shape}")
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return Interval(mean, mean - half, mean + half, len(x))


def paired_difference(before: dict, after: dict) -> Interval:
    """Interval of ``after[k] - before[k]`` over the keys (seeds) both have.

    Pairing by seed removes what two runs with one seed share (initialisation, batch order,
    training subset), so the interval is that of the effect alone.
    """
    common = sorted(set(before) & set(after))
    if not common:
        raise ValueError(f"seeds {sorted(before)} and {sorted(after)}: expected some in common "
                         f"to pair")
    return mean_interval([after[k] - before[k] for k in common])


def band(rows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width per column of ``rows`` (seeds, epochs); half-width 0 for 1 seed."""
    x = np.asarray(rows, dtype=float)
    n = x.shape[0]
    if n < 2:
        return x.mean(axis=0), np.zeros(x.shape[1])
    return x.mean(axis=0), t975(n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)


VERDICTS = ("narrows", "widens", "little", "unclear")


def verdict(change: Interval, margin: float) -> str:
    """What a change of the gap says, from its interval.

    "narrows" / "widens": the interval excludes zero.  "little": it does not, and it lies
    within +/- ``margin`` (so any effect is too small to matter).  "unclear": neither; more
    seeds would tell.
    """
    if change.n < 2:
        return "unclear"
    if change.high < 0:
        return "narrows"
    if change.low > 0:
        return "widens"
    return "little" if -margin <= change.low and change.high <= margin else "unclear"
