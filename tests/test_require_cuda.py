"""The GPUCNN_REQUIRE_CUDA=1 hook of tests/conftest.py, run on a small suite in a subprocess:
skips of `cuda` tests (at setup or in the body) become failures naming the reason; other
skips, xfails and passes are left alone; without the variable nothing changes."""
import os
import re
import shutil
import subprocess
import sys

SUITE = '''
import pytest

@pytest.mark.cuda
@pytest.mark.skipif(True, reason="no usable GPU: driver missing")
def test_cuda_skipped_at_setup():
    pass

@pytest.mark.cuda
def test_cuda_skipped_in_body():
    pytest.skip("CuPy sees no device")

@pytest.mark.cuda
@pytest.mark.xfail(reason="known", strict=True)
def test_cuda_xfail():
    assert False

@pytest.mark.cuda
def test_cuda_runs():
    pass

@pytest.mark.skip(reason="not a GPU test")
def test_cpu_skipped():
    pass
'''


def _run(tmp_path, require):
    shutil.copy(os.path.join(os.path.dirname(__file__), "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    cuda: needs a GPU\n")
    env = {k: v for k, v in os.environ.items() if k != "GPUCNN_REQUIRE_CUDA"}
    # the copied conftest imports the stand-in cupy's fixture from this tests folder
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                      env.get("PYTHONPATH")]))
    if require:
        env["GPUCNN_REQUIRE_CUDA"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfs", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout


def test_required_cuda_skips_fail_with_their_reason(tmp_path):
    rc, out = _run(tmp_path, require=True)
    assert rc == 1, out
    # a skip at setup turns into an error (setup failed), one in the body into a failure
    assert re.search(r"^1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error", out, re.M), out
    assert "GPUCNN_REQUIRE_CUDA=1 but this cuda test skipped: no usable GPU: driver missing" in out
    assert "GPUCNN_REQUIRE_CUDA=1 but this cuda test skipped: CuPy sees no device" in out


def test_without_the_variable_skips_stay_skips(tmp_path):
    rc, out = _run(tmp_path, require=False)
    assert rc == 0, out
    assert re.search(r"^1 passed, 3 skipped, 1 xfailed", out, re.M), out
