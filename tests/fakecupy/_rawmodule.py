"""``cupy.RawModule`` running the real kernel sources through the g++ host emulation.

The source text given to ``RawModule(code=...)`` is compiled by g++ after
``tests/emulation/cuda_host.h`` (CUDA built-ins mapped onto host threads), with one
``extern "C"`` launcher per entry point: each of ``name_expressions`` (template
instantiations, as gpucnn.cuda compiles today) and, without them, each ``extern "C"
__global__`` function of the source (plain per-dtype entry points).  Libraries are memoised by
a hash of everything that goes into them, in a per-user directory under the system temp dir,
so each kernel file is compiled once per machine, not once per test.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile

import numpy as np

from . import _count, _graph, _stream
from ._array import _device, _root, ndarray

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulation",
                      "cuda_host.h")
# EMU_FIBERS: a block's threads as fibers, not host threads (tests/emulation/cuda_host.h): the
# stand-in runs whole training steps, where a futex per barrier made a step take seconds
CXX_FLAGS = ("-std=c++20", "-pthread", "-O1", "-shared", "-fPIC", "-w", "-DEMU_FIBERS")
_KERNEL = re.compile(r'__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+'
                     r'(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(')
_EXTERN_C_BLOCK = re.compile(r'extern\s+"C"\s*\{')
_EXTERN_C_BEFORE = re.compile(r'extern\s+"C"\s*$')
_SCALARS = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.uint64): ctypes.c_ulonglong,
            np.dtype(np.int32): ctypes.c_int, np.dtype(np.uint32): ctypes.c_uint,
            np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
            np.dtype(np.bool_): ctypes.c_bool}
_libraries: dict[str, ctypes.CDLL] = {}


class CompileException(Exception):
    """``cupy.cuda.compiler.CompileException``: the compiler's log is the message."""

    def __init__(self, msg, source="", name="", options=(), backend="nvrtc"):
        super().__init__(msg)
        self._msg = msg

    def get_message(self) -> str:
        return self._msg


def cache_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"gpucnn-fakecupy-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def extern_c_kernels(code: str) -> list[str]:
    """Names of the kernels with C linkage, the ones CuPy finds by name without
    name_expressions: declared ``extern "C" __global__ ...`` or inside ``extern "C" { ... }``."""
    blocks = []
    for m in _EXTERN_C_BLOCK.finditer(code):
        depth, end = 1, m.end()
        while depth and end < len(code):
            depth += {"{": 1, "}": -1}.get(code[end], 0)
            end += 1
        blocks.append((m.end(), end))
    return [m.group(1) for m in _KERNEL.finditer(code)
            if _EXTERN_C_BEFORE.search(code, 0, m.start())
            or any(a <= m.start() < b for a, b in blocks)]


def _expanded(code: str, options) -> str:
    """The source after the preprocessor, as NVRTC sees it: entry points a macro defines
    (``ENTRIES(float, f32)``) appear by name.  ``__global__`` stays undefined here, so the kernel
    declarations keep it for :func:`extern_c_kernels`."""
    key = hashlib.sha256(code.encode() + repr(options).encode()).hexdigest()
    if key not in _expansions:
        proc = subprocess.run(["g++", "-E", "-P", "-x", "c++", *_host_options(options), "-"],
                              input=code, capture_output=True, text=True)
        if proc.returncode:
            raise CompileException(f"g++ -E (host emulation of NVRTC) failed:\n{proc.stderr}")
        _expansions[key] = proc.stdout
    return _expansions[key]


_expansions: dict = {}


def _host_options(options) -> list[str]:
    """The NVRTC options that change what the source means on the host too: macros and
    include paths, in g++'s spelling."""
    spelled = {"--define-macro=": "-D", "--undefine-macro=": "-U", "--include-path=": "-I"}
    out = []
    for o in options:
        for long, short in spelled.items():
            if o.startswith(long):
                o = short + o[len(long):]
        if o.startswith(("-D", "-U", "-I")):
            out.append(o)
    return out


class RawModule:
    """Compiled lazily (on ``compile()`` or the first ``get_function``), as CuPy does."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            if path is None:
                raise ValueError("code=None, path=None: expected the kernel source or its path")
            with open(path, encoding="utf-8") as f:
                code = f.read()
        self.code, self.options = code, tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        entries = list(self.name_expressions) + extern_c_kernels(_expanded(code, self.options))
        self._symbols = {e: f"emu_entry_{i}" for i, e in enumerate(dict.fromkeys(entries))}
        self._lib = None

    def _launcher(self) -> str:
        lines = [f'#include "{HEADER}"', self.code]
        lines += [f'extern "C" void {sym}(unsigned grid, unsigned block, void** args) '
                  f'{{ emu::launch_packed(grid, block, &{expr}, args); }}'
                  for expr, sym in self._symbols.items()]
        return "\n".join(lines) + "\n"

    def compile(self, log_stream=None):
        if self._lib is not None:
            return
        source = self._launcher()
        with open(HEADER, "rb") as f:
            header = f.read()
        flags = [*CXX_FLAGS, *_host_options(self.options)]
        key = hashlib.sha256(header + source.encode() + " ".join(flags).encode()).hexdigest()[:24]
        if key not in _libraries:
            _libraries[key] = ctypes.CDLL(self._build(key, source, flags))
        self._lib = _libraries[key]

    @staticmethod
    def _build(key, source, flags) -> str:
        lib = os.path.join(cache_dir(), f"{key}.so")
        if os.path.exists(lib):
            return lib
        src = os.path.join(cache_dir(), f"{key}.{os.getpid()}.cpp")
        tmp = f"{lib}.{os.getpid()}.tmp"
        with open(src, "w") as f:
            f.write(source)
        proc = subprocess.run(["g++", *flags, "-o", tmp, src], capture_output=True, text=True)
        os.remove(src)
        if proc.returncode:
            raise CompileException(f"g++ (host emulation of NVRTC) failed:\n{proc.stderr}")
        os.replace(tmp, lib)  # atomic: concurrent test processes never load a partial library
        return lib

    def get_function(self, name: str) -> "Function":
        self.compile()
        if name not in self._symbols:
            raise RuntimeError(f"name={name!r}: expected one of this module's kernels "
                               f"{sorted(self._symbols)} (CUDA_ERROR_NOT_FOUND)")
        return Function(name, getattr(self._lib, self._symbols[name]))


class RawKernel:
    """``cupy.RawKernel(code, name, options)``: one extern "C" kernel of ``code``."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self._module, self.name = RawModule(code=code, options=options), name

    def compile(self, log_stream=None):
        self._module.compile()

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        self._module.get_function(self.name)(grid, block, args, shared_mem, stream)


def _dim(v, what) -> int:
    dims = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if not 1 <= len(dims) <= 3 or any(int(d) < 1 for d in dims) or any(int(d) != 1 for d in dims[1:]):
        raise ValueError(f"{what}={v!r}: expected (x,) or (x, 1, 1) with x >= 1 (the emulation "
                         f"runs one-dimensional launches)")
    return int(dims[0])


class Function:
    """``RawModule.get_function(name)``: ``fn(grid, block, args)`` is one launch."""

    def __init__(self, name, entry):
        self.name, self._entry = name, entry

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        g, b = _dim(grid, "grid"), _dim(block, "block")
        keep, touched = [], []  # ctypes arguments; buffers the kernel may write
        for pos, a in enumerate(args):
            if isinstance(a, ndarray):
                keep.append(ctypes.c_void_p(_device(a).ctypes.data))
                touched.append(_root(a._a))
            elif isinstance(a, np.ndarray) and a.size == 1:  # by value, as CuPy passes it
                keep.append((ctypes.c_char * a.nbytes).from_address(a.ctypes.data))
                touched += _pointed_to(a)
            elif isinstance(a, np.ndarray):
                raise TypeError(f"args[{pos}]=numpy.ndarray{a.shape}: only NumPy arrays of size "
                                f"one pass by value; pass a cupy array for device memory")
            elif isinstance(a, np.generic) and a.dtype in _SCALARS:
                keep.append(_SCALARS[a.dtype](a.item()))
            elif isinstance(a, (bool, int, float)):
                keep.append({bool: ctypes.c_bool, int: ctypes.c_longlong,
                             float: ctypes.c_double}[type(a)](a))
            else:
                raise TypeError(f"args[{pos}]={type(a).__name__}: expected a cupy array or a scalar")
        ptrs = (ctypes.c_void_p * len(keep))(*[ctypes.addressof(k) for k in keep])
        _count.launch(self.name)
        before = [(r, r.copy()) for r in touched]
        self._entry(ctypes.c_uint(g), ctypes.c_uint(b), ptrs)
        for root, saved in before:  # what it wrote is in flight on the current stream
            if not np.array_equal(root, saved, equal_nan=root.dtype.kind in "fc"):
                _stream.wrote(root, self.name)
        # a replay holds the ctypes arguments, the host structs they point into and the memory
        # blocks, not the arrays: a buffer the program drops goes back to the pool
        held = (keep, [a for a in args if isinstance(a, np.ndarray)],
                [_stream.buffers[id(r)].block for r in touched])
        _graph.record(lambda held=held: self._entry(ctypes.c_uint(g), ctypes.c_uint(b), ptrs),
                      self.name)


def _pointed_to(struct: np.ndarray) -> list:
    """The live device buffers a by-value struct's 64-bit unsigned fields point into (a table
    of addresses, such as sgd_update_all's): the kernel may write them."""
    addresses = {int(v) for name in struct.dtype.names or ()
                 if struct.dtype[name].base == np.uint64 for v in np.ravel(struct[name]) if v}
    return [root for root in list(_graph._live.values())
            if any(root.ctypes.data <= p < root.ctypes.data + max(root.nbytes, 1)
                   for p in addresses)]
