"""Build kernels/*.cu with g++ against cuda_host.h and launch them through ctypes.

``build(kdir, out_dir)`` writes a launcher with one ``extern "C"`` wrapper per kernel
instantiation listed in :data:`gpucnn.cuda.kernels.KERNELS` (the same list NVRTC compiles) and
returns an :class:`Emulator`, whose ``launch`` has the signature
:class:`gpucnn.cuda.host.Primitives` expects.
"""
from __future__ import annotations

import ctypes
import os
import subprocess

import numpy as np

from gpucnn.cuda.kernels import KERNELS, name_expression

HERE = os.path.dirname(os.path.abspath(__file__))
CXX_FLAGS = ["-std=c++20", "-pthread", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas"]

_CTYPES = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.uint64): ctypes.c_ulonglong,
           np.dtype(np.int32): ctypes.c_int, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


def wrapper_symbols():
    """{name expression: C symbol of its wrapper}."""
    exprs = [name_expression(k, inst) for k, kern in KERNELS.items() for inst in kern.instantiations()]
    return {e: f"emu_{i}" for i, e in enumerate(exprs)}


def launcher_source(kdir: str) -> str:
    kdir = os.path.abspath(kdir)
    files = sorted({k.file for k in KERNELS.values()})
    lines = [f'#include "{os.path.join(HERE, "cuda_host.h")}"']
    lines += [f'#include "{os.path.join(kdir, f)}"' for f in files]
    for expr, sym in wrapper_symbols().items():
        lines.append(f'extern "C" void {sym}(unsigned grid, unsigned block, void** args) '
                     f'{{ emu::launch_packed(grid, block, &{expr}, args); }}')
    return "\n".join(lines) + "\n"


class Emulator:
    def __init__(self, lib_path: str):
        self.lib = ctypes.CDLL(lib_path)
        self.symbols = wrapper_symbols()
        self.launches = []  # (name expression, grid, block) of every launch, for the tests

    def launch(self, kernel, expr, grid, block, args):
        keep = []
        for a in args:
            if isinstance(a, np.ndarray):
                keep.append(ctypes.c_void_p(a.ctypes.data))
            else:
                keep.append(_CTYPES[np.asarray(a).dtype](a.item()))
        ptrs = (ctypes.c_void_p * len(keep))(*[ctypes.addressof(k) for k in keep])
        self.launches.append((expr, grid, block))
        getattr(self.lib, self.symbols[expr])(ctypes.c_uint(grid), ctypes.c_uint(block), ptrs)


def build(kdir: str, out_dir: str, cxx: str = "g++") -> Emulator:
    src = os.path.join(out_dir, "launcher.cpp")
    lib = os.path.join(out_dir, "libkernels_emu.so")
    with open(src, "w") as f:
        f.write(launcher_source(kdir))
    proc = subprocess.run([cxx, *CXX_FLAGS, "-o", lib, src], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"g++ failed to build the kernel emulation:\n{proc.stderr}")
    return Emulator(lib)
