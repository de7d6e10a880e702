"""CuPy installed on a machine without a usable GPU: 'auto' falls back to the CPU with one
warning, 'cuda' fails with the reason, and a read-only home does not break importing CuPy.

Runs only where CuPy imports and CUDA is unusable (CI with the cuda extra, no GPU)."""
import os
import subprocess
import sys
import warnings

import pytest

from gpucnn import backend
from gpucnn.cuda_launch import prepare_cupy_cache_dir


def _cupy_import_error():
    prepare_cupy_cache_dir()
    try:
        import cupy  # noqa: F401
    except Exception as e:  # a broken CuPy install raises more than ImportError
        return f"{type(e).__name__}: {e}"
    return None


_NO_CUPY = _cupy_import_error()
pytestmark = [
    pytest.mark.skipif(_NO_CUPY is not None, reason=f"CuPy is not importable here ({_NO_CUPY})"),
    pytest.mark.skipif(_NO_CUPY is None and backend.cuda_status().available,
                       reason="a GPU is usable here, so the no-GPU fallback cannot be observed"),
]


@pytest.fixture
def fresh_backend(monkeypatch):
    monkeypatch.setattr(backend, "_cuda_status", None)
    monkeypatch.setattr(backend, "_auto_fallback_warned", False)
    monkeypatch.delenv("GPUCNN_DEVICE", raising=False)


def test_auto_falls_back_to_cpu_with_one_warning(fresh_backend):
    status = backend.cuda_status()
    assert not status.available and status.reason and status.cupy_version
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.resolve_device("auto") == "cpu"
        assert backend.resolve_device(None) == "cpu"
    assert len(caught) == 1 and status.reason in str(caught[0].message)


def test_cuda_request_fails_with_the_reason(fresh_backend):
    with pytest.raises(backend.DeviceError, match="CUDA is unusable") as err:
        backend.resolve_device("cuda")
    assert backend.cuda_status().reason in str(err.value)


def test_cupy_imports_with_a_read_only_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUPY_CACHE_DIR"}
    env["HOME"] = "/dev/null/home"  # not a directory, so ~/.cupy cannot be created even by root
    code = ("from gpucnn.backend import cuda_status; import gpucnn.cuda_launch as c; "
            "c.prepare_cupy_cache_dir(); import cupy, os; print(os.environ['CUPY_CACHE_DIR'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "gpucnn-cupy-cache" in proc.stdout
