"""Small-sample statistics for replicated runs: Student t intervals, paired differences, verdicts.

Everything is a two-sided interval of a mean across seeds, 95% unless a ``level`` says otherwise:
``mean +/- t((1 + level) / 2, n - 1) * s / sqrt(n)`` with ``s`` the sample standard deviation.
No SciPy: Student's t distribution function comes from the regularised incomplete beta function
(a continued fraction), and its quantile from bisection on it (to 1e-12).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95


def _check_df(df) -> None:
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df={df!r}: expected an integer number of degrees of freedom >= 1")


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method); it
    converges fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    out = d
    for m in range(1, 1000):
        for coef in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                     -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + coef * d
            c = 1.0 + coef / c
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = c if abs(c) > tiny else tiny
            step = c * d
            out *= step
        if abs(step - 1.0) < 1e-15:
            break
    return out


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return max(0.0, min(1.0, x))
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                     + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` >= 1 degrees of freedom."""
    _check_df(df)
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` >= 1 degrees of freedom, 0.5 <= p < 1."""
    _check_df(df)
    if not 0.5 <= p < 1:
        raise ValueError(f"p={p!r}: expected a probability in [0.5, 1)")
    return _t_quantile(float(p), int(df))


@functools.lru_cache(maxsize=None)
def _t_quantile(p: float, df: int) -> float:
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    while high - low > 1e-12 * max(1.0, high):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (95% two-sided)."""
    return t_quantile(0.975, df)


@dataclass(frozen=True)
class Interval:
    """A mean across ``n`` seeds and its interval [low, high] at ``level`` (95%); NaN bounds when
    n < 2."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

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
        return (f"{self.mean:{fmt}} ({100 * self.level:g}% interval {self.low:{fmt}} to "
                f"{self.high:{fmt}}, {self.n} seeds)")


def mean_interval(values, level: float = LEVEL) -> Interval:
    """The mean of ``values`` (one per seed) with its t interval at ``level``."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"values: expected a non-empty 1-D sequence, got shape {x.shape}")
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, 1, level)
    half = t_quantile((1 + level) / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return Interval(mean, mean - half, mean + half, len(x), level)


def paired_difference(before: dict, after: dict, level: float = LEVEL) -> Interval:
    """Interval (at ``level``) of ``after[k] - before[k]`` over the keys (seeds) both have.

    Pairing by seed removes what two runs with one seed share (initialisation, batch order,
    training subset), so the interval is that of the effect alone.
    """
    common = sorted(set(before) & set(after))
    if not common:
        raise ValueError(f"seeds {sorted(before)} and {sorted(after)}: expected some in common "
                         f"to pair")
    return mean_interval([after[k] - before[k] for k in common], level)


def band(rows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width per column of ``rows`` (seeds, epochs); half-width 0 for 1 seed."""
    x = np.asarray(rows, dtype=float)
    n = x.shape[0]
    if n < 2:
        return x.mean(axis=0), np.zeros(x.shape[1])
    return x.mean(axis=0), t975(n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)


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


def direction(change: Interval) -> str:
    """"higher" / "lower" when the interval of a change lies above / below zero,
    "indistinguishable" when it holds zero (or there is no interval: one seed)."""
    if change.n >= 2 and change.low > 0:
        return "higher"
    if change.n >= 2 and change.high < 0:
        return "lower"
    return "indistinguishable"


def family_level(comparisons: int, level: float = LEVEL) -> float:
    """The level each of ``comparisons`` intervals needs for all of them to hold together at
    ``level`` (Bonferroni): 1 - (1 - level) / comparisons."""
    return 1 - (1 - level) / max(1, comparisons)
