"""The argument checks shared by every public boundary (functional ops, modules, optimizers,
data, the trainer and the settings schemas), so a bad value always reads the same way:
``name=value: expected ...``.  ``name`` is what the user typed: a keyword, a TOML key or a flag.
"""
from __future__ import annotations

import difflib
import math
import numbers


def check_int(name: str, value, low: int) -> int:
    """``value`` as an int, if it is an integer (not a bool) >= ``low``."""
    if type(value) is int and value >= low:  # the common case, without the slow ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r}: expected an integer >= {low}")
    return int(value)


def check_real(name: str, value, low: float, high: float = math.inf, low_open: bool = False,
               high_open: bool = True) -> float:
    """``value`` as a float, if it is a finite number (not a bool) in the interval from ``low``
    to ``high``, each end open or closed as asked."""
    # float and int first: the ABC checks cost ~1 us, and several run per layer per step
    number = type(value) in (float, int) or (isinstance(value, numbers.Real)
                                              and not isinstance(value, bool))
    ok = (number and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name}={value!r}: expected a number in {lo}{low}, {high}{hi}")
    return float(value)


def check_probability(name: str, value) -> float:
    """A drop probability: a number in [0, 1) (1 would drop everything)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r}: expected a drop probability in [0, 1)")
    return float(value)


def did_you_mean(key: str, known, synonyms: dict | None = None) -> str:
    """A hint for an unknown name, to append to its error: `` (did you mean 'padding'?)`` when
    ``synonyms`` maps ``key`` to a known name or ``key`` is close to one (a typo), the
    synonym's text in parentheses when it is an explanation (``in_channels``: inferred), else
    ``""``."""
    known = list(known)
    hint = (synonyms or {}).get(key)
    if hint is not None and " " in hint:  # an explanation, not a name
        return f" ({hint})"
    if hint not in known and isinstance(key, str):  # a synonym of something not here: a typo?
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = close[0] if close else None
    return f" (did you mean {hint!r}?)" if hint in known else ""
