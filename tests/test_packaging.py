"""The CUDA extras install what gpucnn needs on a machine without a system CUDA toolkit.

pip resolves each extra (``--dry-run``: metadata only, nothing downloaded past it) and the
report must list NVRTC (compiles kernels/*.cu), cuBLAS (every matmul) and the CUDA runtime
(CuPy's runtime and the headers every kernel compile includes); the multi-GPU extras also NCCL.
Needs the package index: skipped when it cannot be reached, unless GPUCNN_REQUIRE_NETWORK=1
(CI sets it), which turns that skip into a failure.
"""
import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from gpucnn import env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NVRTC, CUBLAS, CUDART, NCCL = "nvidia-cuda-nvrtc", "nvidia-cublas", "nvidia-cuda-runtime", "nvidia-nccl"
# extra -> (CuPy package, packages that must be in its install set); names match with or
# without the -cu12 suffix (CUDA 12 wheels carry it, CUDA 13 wheels do not)
EXTRAS = {
    "cuda12": ("cupy-cuda12x", (NVRTC, CUBLAS, CUDART)),
    "cuda13": ("cupy-cuda13x", (NVRTC, CUBLAS, CUDART)),
    "cuda12-mpi": ("cupy-cuda12x", (NVRTC, CUBLAS, CUDART, NCCL, "mpi4py")),
    "cuda13-mpi": ("cupy-cuda13x", (NVRTC, CUBLAS, CUDART, NCCL, "mpi4py")),
}


def _pip(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout)


def _index_url() -> str:
    """The index pip installs from (PIP_INDEX_URL, else pip's config, else PyPI)."""
    configured = _pip("config", "get", "global.index-url", timeout=60)
    url = os.environ.get("PIP_INDEX_URL") or (configured.returncode == 0 and configured.stdout.strip())
    return (url or "https://pypi.org/simple").rstrip("/")


def _index_reachable(url: str) -> bool:
    # the index itself: local extra indexes or find-links may answer while it does not
    try:
        with urllib.request.urlopen(f"{url}/cuda-toolkit/", timeout=30):
            return True
    except (OSError, ValueError):
        return False


def _resolve(extra: str, tmp_path) -> dict:
    """{normalised name: version} of what ``pip install '<repo>[extra]'`` would install."""
    report = tmp_path / f"{extra}.json"
    # fast-deps reads each wheel's metadata with HTTP range requests: without it pip downloads
    # every wheel whole (2 GB for the four extras) from an index that does not serve the wheels'
    # metadata files (PEP 658)
    done = _pip("install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps", "--quiet",
                "--report", str(report), f"{ROOT}[{extra}]")
    assert done.returncode == 0, f"extra={extra}: pip could not resolve it:\n{done.stderr}"
    items = json.loads(report.read_text())["install"]
    return {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
            for i in items}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    url = _index_url()
    if not _index_reachable(url):
        if env.switch("GPUCNN_REQUIRE_NETWORK"):
            pytest.fail(f"GPUCNN_REQUIRE_NETWORK=1: expected the package index {url} to be reachable")
        pytest.skip(f"the package index {url} is unreachable (GPUCNN_REQUIRE_NETWORK=1 makes this a "
                    f"failure)")
    tmp = tmp_path_factory.mktemp("pip-reports")
    with ThreadPoolExecutor(len(EXTRAS)) as pool:     # four resolutions at once: ~4x faster
        return dict(zip(EXTRAS, pool.map(lambda e: _resolve(e, tmp), EXTRAS)))


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_cuda_extra_installs_what_gpucnn_needs(extra, resolved):
    cupy, needed = EXTRAS[extra]
    names = resolved[extra]
    assert cupy in names, f"extra={extra}: expected {cupy} in the install set, got {sorted(names)}"
    # CuPy 14 is the first to find CUDA libraries in NVIDIA's wheels (cuda-pathfinder)
    major = int(names[cupy].split(".")[0])
    assert major >= 14, f"{cupy}={names[cupy]}: expected >= 14 (finds the NVIDIA wheels' libraries)"
    missing = [p for p in needed if not any(n == p or n.startswith(p + "-cu") for n in names)]
    assert not missing, f"extra={extra}: expected {missing} in the install set, got {sorted(names)}"
