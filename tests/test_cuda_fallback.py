"""CuPy installed on a machine without a usable GPU: 'auto' falls back to the CPU with one
warning, 'cuda' fails with the reason, and a read-only home does not break importing CuPy.

Runs only where CuPy imports and CUDA is unusable (CI with the cuda extra, no GPU)."""
import os
import subprocess
import sys
import warnings

import pytest

from gpucnn import device as backend
from gpucnn.device import prepare_cupy_cache_dir


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


def test_auto_falls_back_to_cpu_with_one_line(fresh_backend, capsys):
    status = backend.cuda_status()
    assert not status.available and status.reason and status.cupy_version
    assert backend.resolve_device("auto") == "cpu"
    assert backend.resolve_device(None) == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and status.reason in lines[0]


def test_cuda_request_fails_with_the_reason(fresh_backend):
    with pytest.raises(backend.DeviceError, match="CUDA is unusable") as err:
        backend.resolve_device("cuda")
    assert backend.cuda_status().reason in str(err.value)


def test_cupy_imports_with_a_read_only_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUPY_CACHE_DIR"}
    env["HOME"] = "/dev/null/home"  # not a directory, so ~/.cupy cannot be created even by root
    # the child runs elsewhere, so it must be told where this gpucnn is (a checkout is not installed)
    here = os.path.dirname(os.path.dirname(os.path.abspath(backend.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    code = ("from gpucnn.device import import_cupy; import os; import_cupy(); "
            "print(os.environ['CUPY_CACHE_DIR'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "gpucnn-cupy-cache" in proc.stdout
