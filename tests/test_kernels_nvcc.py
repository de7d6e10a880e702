"""Every kernel file compiles to PTX with nvcc, and the PTX holds an entry for every kernel
instantiation gpucnn.cuda asks NVRTC for (gpucnn.cuda.kernels.KERNELS).

Architectures: sm_75 and sm_90.  CUDA 13 dropped sm_70 (Volta) -- `nvcc --list-gpu-arch` starts
at compute_75 -- so sm_75 (Turing) is the oldest target we check.  Skipped where nvcc is absent.
"""
import os
import re
import shutil
import subprocess

import pytest

from gpucnn.cuda.kernels import KERNELS, kernel_dir

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (no CUDA toolkit here)")

ARCHS = ["sm_75", "sm_90"]
FILES = sorted(f for f in os.listdir(kernel_dir()) if f.endswith(".cu"))
# Itanium mangling of the template arguments we instantiate.
_CODES = {"float": "f", "double": "d", "unsigned char": "h", "int": "i"}


def _entry_prefix(name, inst, tparams):
    """`extern "C"` kernels keep their name; templates mangle to _Z<len><name>I<args>E..."""
    if not tparams:
        return name + "("
    return f"_Z{len(name)}{name}I{''.join(_CODES[inst[p]] for p in tparams)}E"


def test_every_kernel_file_is_in_the_table():
    assert sorted({k.file for k in KERNELS.values()}) == FILES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", FILES)
def test_kernel_compiles_to_ptx_with_every_instantiation(tmp_path, file, arch):
    ptx = tmp_path / (file + ".ptx")
    proc = subprocess.run([NVCC, "--ptx", f"-arch={arch}", "--Werror", "all-warnings",
                           "-I", kernel_dir(), "-o", str(ptx), os.path.join(kernel_dir(), file)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    entries = re.findall(r"\.entry\s+(\S+)", ptx.read_text())
    for name, kern in KERNELS.items():
        if kern.file != file:
            continue
        for inst in kern.instantiations():
            prefix = _entry_prefix(name, inst, kern.tparams)
            assert any(e.startswith(prefix) for e in entries), (name, inst, entries)
