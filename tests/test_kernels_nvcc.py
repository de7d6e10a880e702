"""Every kernel file compiles to PTX with nvcc, and its PTX entries are exactly the extern "C"
entry points gpucnn.cuda looks up (gpucnn.cuda.kernels.entry_names).

Architectures: sm_75 and sm_90.  CUDA 13 dropped sm_70 (Volta) -- `nvcc --list-gpu-arch` starts
at compute_75 -- so sm_75 (Turing) is the oldest target we check.  Skipped where nvcc is absent.
"""
import os
import re
import shutil
import subprocess

import pytest

from gpucnn.cuda.kernels import KERNELS, entry_names, kernel_dir

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (no CUDA toolkit here)")

ARCHS = ["sm_75", "sm_90"]
FILES = sorted(f for f in os.listdir(kernel_dir()) if f.endswith(".cu"))


def test_every_kernel_file_is_in_the_table():
    assert sorted({k.file for k in KERNELS.values()}) == FILES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", FILES)
def test_kernel_compiles_to_ptx_with_exactly_the_table_entry_points(tmp_path, file, arch):
    ptx = tmp_path / (file + ".ptx")
    proc = subprocess.run([NVCC, "--ptx", f"-arch={arch}", "--Werror", "all-warnings",
                           "-I", kernel_dir(), "-o", str(ptx), os.path.join(kernel_dir(), file)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # unmangled names: an entry that lost its extern "C" would show up as _Z...
    entries = re.findall(r"\.entry\s+(\w+)", ptx.read_text())
    assert sorted(entries) == sorted(entry_names(file))
