"""What the stand-in counts: kernel launches, device allocations, host uploads and device-to-host
synchronisations, into every :class:`Counter` opened by :func:`counting`.

These are the costs a GPU step pays that a CPU profile does not show: each launch costs a few
microseconds of host time, each allocation a trip through the memory pool, and each sync stalls
the host until the device queue drains, so they are what a test pins per training step.
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
_active: list["Counter"] = []
_phases: list[str] = [""]


def where(depth: int = 3) -> str:
    """The innermost ``depth`` frames outside the stand-in and NumPy, as ``dir/file.py:line fn``
    joined by `` < ``: enough to tell which line of gpucnn caused an event."""
    import numpy

    skip = (HERE, os.path.dirname(numpy.__file__))
    frame, parts = sys._getframe(1), []
    while frame is not None and len(parts) < depth:
        path = frame.f_code.co_filename
        if not path.startswith(skip) and path != contextlib.__file__:
            short = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
            parts.append(f"{short}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(parts)


@dataclass
class Counter:
    """Events seen while it was open.

    ``launches``: {kernel or operation name: count}; ``allocations``: [(shape, dtype, where)] of
    every new device buffer (views are free); ``uploads``: [(kind, where)] of host-to-device
    copies, kind ``"blocking"`` for a copy on the consumer's stream (from pageable memory the
    host waits for it) and ``"async"`` for one on another stream; ``syncs``: [(what, where)] of
    every point where the host waits for the device.  ``phases``: {phase: {"launches": n, ...}}
    for the events inside ``with phase(name)`` blocks (the innermost one names them).
    """

    launches: collections.Counter = field(default_factory=collections.Counter)
    allocations: list = field(default_factory=list)
    uploads: list = field(default_factory=list)
    syncs: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)

    def _note(self, kind: str) -> None:
        if _phases[-1]:
            self.phases.setdefault(_phases[-1], collections.Counter())[kind] += 1

    @property
    def n_launches(self) -> int:
        return sum(self.launches.values())

    def summary(self) -> dict:
        """Totals, for printing and for comparing with recorded bounds."""
        return {"launches": self.n_launches, "allocations": len(self.allocations),
                "uploads": len(self.uploads), "syncs": len(self.syncs)}

    def report(self) -> str:
        """A multi-line account: totals, launches by name, and where each sync happened."""
        lines = [", ".join(f"{k} {v}" for k, v in self.summary().items())]
        lines += [f"  phase {name}: " + ", ".join(f"{k} {n[k]}" for k in self.summary())
                  for name, n in self.phases.items()]
        lines += [f"  launch {name}: {n}" for name, n in sorted(self.launches.items())]
        lines += [f"  sync {what} at {at}" for what, at in self.syncs]
        return "\n".join(lines)


@contextlib.contextmanager
def counting():
    """``with counting() as c:`` counts into ``c`` (nested counters all count)."""
    c = Counter()
    _active.append(c)
    try:
        yield c
    finally:
        _active.remove(c)


@contextlib.contextmanager
def phase(name: str):
    """Events inside the block are also counted under ``Counter.phases[name]``."""
    _phases.append(name)
    try:
        yield
    finally:
        _phases.pop()


def launch(name: str) -> None:
    for c in _active:
        c.launches[name] += 1
        c._note("launches")


def allocation(shape, dtype) -> None:
    if _active:
        at = where(1)
        for c in _active:
            c.allocations.append((tuple(shape), str(dtype), at))
            c._note("allocations")


def upload(kind: str) -> None:
    if _active:
        at = where(2)
        for c in _active:
            c.uploads.append((kind, at))
            c._note("uploads")


def sync(what: str) -> None:
    if _active:
        at = where(3)
        for c in _active:
            c.syncs.append((what, at))
            c._note("syncs")
