"""gpucnn.cpu_runtime: the process settings the CPU path makes through C APIs (glibc's malloc
thresholds, OpenBLAS's threads), checked in fresh processes so that import order is real."""
import os
import subprocess
import sys

import pytest

import gpucnn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # examples/resnet.toml
INSTALLED = os.path.dirname(os.path.dirname(os.path.abspath(gpucnn.__file__)))  # what is tested
GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

# Training steps of the shipped ResNet; prints the page faults per step after warm-up.
STEPS = """
import resource, numpy as np
from gpucnn.models import build_model, read_spec
from gpucnn.optim import SGD
model = build_model(read_spec("examples/resnet.toml"), (3, 16, 16), reg=1e-3, seed=0)
X = np.random.default_rng(0).standard_normal((32, 3, 16, 16)).astype(np.float32)
y = np.arange(32) % 10
opt = SGD(model.parameters(), lr=1e-3)
for _ in range(3):
    model.train_step(X, y, opt)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.train_step(X, y, opt)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _run(code, **env):
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": INSTALLED, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_training_steps_fault_in_almost_no_pages_after_warm_up():
    """Without the thresholds a step took 620-1360 faults (NumPy 2.2-2.5) here (glibc 2.36);
    with them 0-6 with gpucnn imported first and 0-220 with NumPy first (NumPy 2.2's
    OpenBLAS, under load), so the bound is relative.  glibc's own dynamic threshold sometimes
    learns the block sizes without help (one CI run read 0.2 faults untuned): the slack of 50
    faults a step keeps that from failing a tuned run that faulted as little."""
    untuned = float(_run("import numpy\n" + STEPS, GPUCNN_MALLOPT="0"))
    for code in ("import numpy\n" + STEPS, STEPS):
        assert float(_run(code)) < untuned / 4 + 50


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_malloc_tuning_yields_to_the_users_choice():
    code = "from gpucnn import cpu_runtime; print(cpu_runtime.tune_malloc())"
    assert _run(code) == "True"
    assert _run(code, GPUCNN_MALLOPT="0") == "False"
    assert _run(code, MALLOC_TRIM_THRESHOLD_="1000000") == "False"
