"""The ``fake_cupy`` fixture: the stand-in as ``cupy`` for one test, everything restored after.

Registered in tests/conftest.py.  gpucnn caches what it learnt about CUDA in two places, and
both are reset on the way in and restored on the way out: ``gpucnn.device``'s probe result and
the modules that bound ``cupy`` when imported (``gpucnn.cuda`` and its submodules,
``gpucnn.data._prefetch``, and any other gpucnn module holding a ``cupy`` global).  Whatever
``cupy`` was imported before (real CuPy in a venv without a GPU) is put back untouched.
"""
from __future__ import annotations

import contextlib
import gc
import sys
import types

import pytest


def _is_cupy(name: str) -> bool:
    return name == "cupy" or name.startswith("cupy.")


def _binds_cupy(name: str, mod) -> bool:
    """A gpucnn module that captured ``cupy`` at import time, so it must be re-imported."""
    if not (name == "gpucnn.cuda" or name.startswith(("gpucnn.cuda.", "gpucnn.data._prefetch"))):
        return name.startswith("gpucnn.") and isinstance(getattr(mod, "cupy", None), types.ModuleType)
    return True


def _take(predicate) -> dict:
    """Remove the matching modules from sys.modules and from their parent packages' attributes
    (``from gpucnn import cuda`` reads the attribute before sys.modules)."""
    taken = {n: m for n, m in list(sys.modules.items()) if predicate(n, m)}
    for name in taken:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and getattr(sys.modules[parent], child, None) is taken[name]:
            delattr(sys.modules[parent], child)
    return taken


def _put_back(mods: dict) -> None:
    sys.modules.update(mods)  # all first: a parent may come after its child in the dict
    for name, mod in mods.items():
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, mod)


@contextlib.contextmanager
def installed():
    """The stand-in as ``cupy`` inside the block; yields it.  Raises AssertionError at the end
    if a device buffer was released while an upload into it was still in flight."""
    import fakecupy
    from fakecupy import _stream
    from gpucnn import device

    if sys.modules.get("cupy") is fakecupy:  # the shim installed it for the whole process
        yield from _fresh(fakecupy, device)
        return
    real_cupy = _take(lambda n, m: _is_cupy(n))
    old_gpucnn = _take(_binds_cupy)
    old_status = device._cuda_status
    fake = fakecupy.modules()
    sys.modules.update(fake)
    device._cuda_status = None
    fakecupy.reset()
    try:
        yield fakecupy
    finally:
        if _stream.in_flight():  # a buffer kept alive by a reference cycle is checked now
            gc.collect()
        _take(_binds_cupy)
        for name in fake:
            sys.modules.pop(name, None)
        _put_back(real_cupy)
        _put_back(old_gpucnn)
        device._cuda_status = old_status
    if _stream.violations:
        raise AssertionError("stream ordering violated: " + "; ".join(_stream.violations))


def _fresh(fakecupy, device):
    """installed()'s body where the stand-in is ``cupy`` already: a fresh device for the block."""
    from fakecupy import _stream

    old_status = device._cuda_status
    device._cuda_status = None
    fakecupy.reset()
    try:
        yield fakecupy
    finally:
        if _stream.in_flight():
            gc.collect()
        device._cuda_status = old_status
    if _stream.violations:
        raise AssertionError("stream ordering violated: " + "; ".join(_stream.violations))


@pytest.fixture
def fake_cupy():
    """The stand-in ``cupy`` module (see :mod:`fakecupy`), installed for this test."""
    with installed() as cp:
        yield cp


@pytest.fixture
def fake_host(fake_cupy, monkeypatch):
    """``fake_host(gpus=1, visible=None, driver=None, runtime=None)`` makes the stand-in a fresh
    process on a host with ``gpus`` GPUs, ``CUDA_VISIBLE_DEVICES=visible`` (None: unset), a
    driver for CUDA ``driver`` and CuPy built for CUDA ``runtime`` (e.g. 12040; None: the
    stand-in's, and the driver the runtime's), as fakecupy._devices reads them from the
    environment; returns that host (``.contexts``, ``.current``...)."""
    from fakecupy import _devices
    from gpucnn import device

    def configure(gpus=1, visible=None, driver=None, runtime=None):
        monkeypatch.setenv("FAKECUPY_GPUS", str(gpus))
        for name, value in (("CUDA_VISIBLE_DEVICES", visible), ("FAKECUPY_DRIVER", driver),
                            ("FAKECUPY_RUNTIME", runtime)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))
        fake_cupy.reset()
        device._cuda_status = None
        return _devices.host

    return configure
