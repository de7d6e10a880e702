"""Build kernels/*.cu with g++ against cuda_host.h and launch them through ctypes.

``build(kdir, out_dir)`` writes a launcher with one ``extern "C"`` wrapper per kernel entry point
listed in :data:`gpucnn.cuda.kernels.KERNELS` (the same entry points NVRTC compiles and the
loader looks up) and returns an :class:`Emulator`, whose ``launch`` has the signature
:class:`gpucnn.cuda.host.Primitives` expects.
"""
from __future__ import annotations

import ctypes
import os
import subprocess

import numpy as np

from gpucnn.cuda.kernels import KERNELS, entry_names

HERE = os.path.dirname(os.path.abspath(__file__))
CXX_FLAGS = ["-std=c++20", "-pthread", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas"]

_CTYPES = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.uint64): ctypes.c_ulonglong,
           np.dtype(np.int32): ctypes.c_int, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}
FILES = sorted({k.file for k in KERNELS.values()})


def launcher_source(kdir: str) -> str:
    """Every kernel file, then ``emu_<entry>(grid, block, args)`` launching each entry point."""
    kdir = os.path.abspath(kdir)
    lines = [f'#include "{os.path.join(HERE, "cuda_host.h")}"']
    lines += [f'#include "{os.path.join(kdir, f)}"' for f in FILES]
    for entry in (e for f in FILES for e in entry_names(f)):
        lines.append(f'extern "C" void emu_{entry}(unsigned grid, unsigned block, void** args) '
                     f'{{ emu::launch_packed(grid, block, &{entry}, args); }}')
    return "\n".join(lines) + "\n"


class Emulator:
    def __init__(self, lib_path: str):
        self.lib = ctypes.CDLL(lib_path)
        self.launches = []  # (entry, grid, block) of every launch, for the tests

    def launch(self, kernel, entry, grid, block, args):
        keep = []
        for a in args:
            if isinstance(a, np.ndarray) and a.dtype.names:  # a struct, passed by value
                keep.append((ctypes.c_char * a.nbytes).from_address(a.ctypes.data))
            elif isinstance(a, np.ndarray):
                keep.append(ctypes.c_void_p(a.ctypes.data))
            else:
                keep.append(_CTYPES[np.asarray(a).dtype](a.item()))
        ptrs = (ctypes.c_void_p * len(keep))(*[ctypes.addressof(k) for k in keep])
        self.launches.append((entry, grid, block))
        getattr(self.lib, f"emu_{entry}")(ctypes.c_uint(grid), ctypes.c_uint(block), ptrs)


def build(kdir: str, out_dir: str, cxx: str = "g++") -> Emulator:
    src = os.path.join(out_dir, "launcher.cpp")
    lib = os.path.join(out_dir, "libkernels_emu.so")
    with open(src, "w") as f:
        f.write(launcher_source(kdir))
    proc = subprocess.run([cxx, *CXX_FLAGS, "-o", lib, src], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"g++ failed to build the kernel emulation:\n{proc.stderr}")
    return Emulator(lib)
