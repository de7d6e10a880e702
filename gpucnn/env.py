"""The environment variables gpucnn reads, each read here and only here, so every one refuses a
value it does not know in the same words: ``NAME='value': expected ...``.

An empty variable counts as unset (``GPUCNN_DEVICE= gpucnn train`` is the shell's way to clear
it for one command).  The variables: ``GPUCNN_DEVICE`` (cpu, cuda, auto), ``GPUCNN_NATIVE``
(0 or 1), ``GPUCNN_CPU_THREADS`` (an integer >= 1), ``GPUCNN_MALLOPT`` (0 or 1: 0 leaves glibc's
malloc thresholds alone), ``GPUCNN_DATA`` (a folder), and the test
suite's ``GPUCNN_REQUIRE_CUDA``, ``GPUCNN_REQUIRE_NATIVE``, ``GPUCNN_REQUIRE_NVRTC`` and
``GPUCNN_REQUIRE_NETWORK`` (0 or 1: 1 turns a skip into a failure).
"""
from __future__ import annotations

import os

SWITCH = {"0": False, "1": True}


def _value(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices`` (case-insensitive), ``default`` when unset."""
    value = _value(name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)} (or unset)")
    return value.lower()


def switch(name: str, default: bool = False) -> bool:
    """``0`` or ``1``; ``default`` when unset.  Anything else (``yes``, ``off``, ``true``) is
    refused rather than guessed: a variable that seems set but does nothing hides a mistake."""
    value = _value(name)
    if value is None:
        return default
    if value not in SWITCH:
        raise ValueError(f"{name}={value!r}: expected 0 or 1 (or unset: "
                         f"{'1' if default else '0'})")
    return SWITCH[value]


def count(name: str, low: int = 1) -> int | None:
    """An integer >= ``low``; None when unset."""
    value = _value(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < low:
        raise ValueError(f"{name}={value!r}: expected an integer >= {low} (or unset)")
    return int(value)


def check_all(devices: tuple[str, ...]) -> None:
    """Read every variable the package reads (``devices``: the device names), so that a bad
    value is refused at start-up, also by a command that would not have read it."""
    choice("GPUCNN_DEVICE", devices, "auto")
    switch("GPUCNN_NATIVE", default=True)
    count("GPUCNN_CPU_THREADS")
    switch("GPUCNN_MALLOPT", default=True)
    folder("GPUCNN_DATA")


def folder(name: str) -> str | None:
    """A folder path (``~`` expanded, absolute), which may not exist yet but must not be a file;
    None when unset."""
    value = _value(name)
    if value is None:
        return None
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name}={value!r}: expected a folder, found a file")
    return path
