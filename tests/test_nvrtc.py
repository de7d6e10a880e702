"""Every kernel file compiles through CuPy's own NVRTC path exactly as gpucnn.cuda's loader
compiles it, with no GPU, for sm_75 (CUDA 13's oldest) and sm_90; the cubin NVRTC returns
defines as global functions exactly the entry points the loader looks up.

What a ``cupy.RawModule(code=source, options=options)`` compiles on a GPU: CuPy's
``assemble_cupy_compiler_options(options)`` (include paths, C++ dialect), plus ``-ftz=true`` that
its cached compile appends, handed with the source to ``cupy.cuda.compiler.compile_using_nvrtc``
for the device's architecture.  Here only the device query is replaced: the architecture is
given, and CuPy's per-device choice of ``-arch`` (which asks the driver which device is current)
is set to what it picks for a GPU of that architecture, a cubin for ``-arch=sm_XX``.

Needs CuPy and the NVRTC library (``pip install cupy-cuda13x nvidia-cuda-nvrtc``); skipped with
the reason without them, and failed instead where ``GPUCNN_REQUIRE_NVRTC=1`` (the CI venv that
installs them), so that run cannot pass by skipping.
"""
import struct

import pytest

from gpucnn import env
from gpucnn.cuda.kernels import KERNELS
from gpucnn.cuda.loader import program

ARCHS = ["75", "90"]
FILES = sorted({k.file for k in KERNELS.values()})
REQUIRED = env.switch("GPUCNN_REQUIRE_NVRTC")


def _unavailable(why):
    if REQUIRED:
        pytest.fail(f"GPUCNN_REQUIRE_NVRTC=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def nvrtc_compile():
    """compile(program, arch) -> the bytes CuPy's NVRTC path produces for a GPU of ``arch``."""
    from gpucnn.device import import_cupy

    try:
        import_cupy()
        from cupy._core.core import assemble_cupy_compiler_options
        from cupy.cuda import compiler, nvrtc
    except Exception as e:  # a broken CuPy install raises more than ImportError
        _unavailable(f"CuPy is not importable ({type(e).__name__}: {e}); "
                     f"pip install cupy-cuda13x nvidia-cuda-nvrtc")
    try:
        nvrtc.getVersion()
    except Exception as e:
        _unavailable(f"CuPy cannot load NVRTC ({type(e).__name__}: {e}); pip install "
                     f"nvidia-cuda-nvrtc (CUDA 13) or nvidia-cuda-nvrtc-cu12 (CUDA 12)")
    if not hasattr(compiler, "_get_arch_for_options_for_nvrtc"):
        _unavailable(f"this CuPy's compiler has no _get_arch_for_options_for_nvrtc to give the "
                     f"architecture to; read cupy/cuda/compiler.py {compiler.__file__}")

    def compile(prog, arch):
        options = assemble_cupy_compiler_options(prog.options) + ("-ftz=true",)
        binary, _ = compiler.compile_using_nvrtc(prog.source, options, arch=arch)
        return binary

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                   lambda arch=None: (f"-arch=sm_{arch}", "cubin"))
        yield compile


def global_functions(elf: bytes) -> set:
    """Names of the global function symbols of a 64-bit little-endian ELF (a cubin)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError(f"elf[:5]={elf[:5]!r}: expected a 64-bit ELF (a cubin)")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    # (type, offset, size, link) of each section header
    sections = [struct.unpack_from("<4xI16xQQI", elf, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for kind, offset, size, link in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strtab = sections[link][1]
        for sym in range(offset, offset + size, 24):
            name, info = struct.unpack_from("<IB", elf, sym)
            if info == 0x12:  # STB_GLOBAL << 4 | STT_FUNC
                start = strtab + name
                names.add(elf[start:elf.index(b"\0", start)].decode())
    return names


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", FILES)
def test_kernel_file_compiles_with_cupys_nvrtc_and_defines_every_entry_point(nvrtc_compile, file,
                                                                               arch):
    prog = program(file)
    assert '#include "' not in prog.source  # what the loader compiles is self-contained
    assert global_functions(nvrtc_compile(prog, arch)) == set(prog.entries)


def test_a_broken_kernel_is_rejected_with_the_nvrtc_log(nvrtc_compile):
    from cupy.cuda.compiler import CompileException

    with pytest.raises(CompileException, match="error"):
        nvrtc_compile(program("pool.cu", source='extern "C" __global__ void broken( { }'), "75")
