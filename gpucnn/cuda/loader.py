"""Compile kernels/<file> with NVRTC through ``cupy.RawModule`` and launch its kernels.

Importable without CuPy: :class:`Loader` is handed the ``cupy`` module.  A kernel file is
compiled once per (device, file); each kernel function is looked up once per (device, file,
name), so a launch is a dictionary hit and the call.  CuPy keeps the compiled binaries in its
on-disk cache (``CUPY_CACHE_DIR``, see :func:`gpucnn.device.prepare_cupy_cache_dir`).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from .kernels import KERNELS, entry_names, kernel_source

# NVRTC options gpucnn adds to CuPy's own (CuPy appends its include paths, the C++ dialect and
# -ftz=true).  None today; tests/test_nvrtc.py compiles with whatever is here.
OPTIONS: tuple = ()


class Program(NamedTuple):
    """What the loader hands NVRTC for one kernel file, and the entry points it looks up."""

    file: str
    source: str
    options: tuple
    entries: list


def program(file: str, source: str | None = None) -> Program:
    """The NVRTC input for kernels/<file>: its text with includes inlined (or ``source``), the
    options and the entry points.  The one place they come from, for the loader and the tests."""
    return Program(file, kernel_source(file) if source is None else source, OPTIONS,
                   entry_names(file))


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel file; the message names the file and carries the compiler log."""


class Loader:
    """Kernel modules and functions of ``cupy``'s current device, compiled on first use."""

    def __init__(self, cupy):
        self.cupy = cupy
        self._modules: dict = {}    # (device id, file) -> compiled cupy.RawModule
        self._functions: dict = {}  # (device id, file, name) -> cupy.RawKernel

    def module(self, file: str, source: str | None = None):
        """The compiled ``cupy.RawModule`` of kernels/<file> on the current device.

        ``source`` replaces the file's text and bypasses the memo (the tests check the error
        path with it).
        """
        key = (self.cupy.cuda.runtime.getDevice(), file)
        if source is None and key in self._modules:
            return self._modules[key]
        prog = program(file, source)
        # No name_expressions: CuPy 13.x and 14.0 skip their disk cache for modules built with
        # them (cupy#9667, #10173); the kernels' extern "C" entry points need none.
        module = self.cupy.RawModule(code=prog.source, options=prog.options)
        try:
            module.compile()
        except self.cupy.cuda.compiler.CompileException as e:
            raise KernelCompileError(f"compiling kernels/{file} with NVRTC failed:\n"
                                     f"{e.get_message()}") from e
        if source is None:
            self._modules[key] = module
        return module

    def function(self, file: str, name: str):
        """The entry point ``name`` of kernels/<file> on the current device."""
        key = (self.cupy.cuda.runtime.getDevice(), file, name)
        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = self.module(file).get_function(name)
        return fn

    def launch(self, kernel: str, name: str, grid: int, block: int, args) -> None:
        """Run entry point ``name`` of table kernel ``kernel``; the launch signature
        :class:`gpucnn.cuda.host.Primitives` expects."""
        self.function(KERNELS[kernel].file, name)((grid,), (block,), tuple(args))

    def guard_memory(self, name: str, impl):
        """``impl`` (primitive ``name``) with CUDA out-of-memory re-raised as a MemoryError that
        names the input shape and hints at the batch size."""
        oom = self.cupy.cuda.memory.OutOfMemoryError

        @functools.wraps(impl)
        def wrapper(*args, **kwargs):
            try:
                return impl(*args, **kwargs)
            except oom as e:
                shape = next((tuple(a.shape) for a in args if hasattr(a, "shape")), None)
                where = f"input shape {shape}, batch size {shape[0]}" if shape else f"arguments {args}"
                raise MemoryError(f"CUDA out of memory in {name} ({where}): {e}. "
                                  f"Lower the batch size.") from e

        return wrapper
