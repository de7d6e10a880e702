import os
import sys

import pytest

# tests/reference.py (the naive seed-formula implementations) is imported by name
sys.path.insert(0, os.path.dirname(__file__))

from fakecupy.plugin import fake_cupy, fake_host  # noqa: E402,F401  (the stand-in cupy fixtures)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """kernels/*.cu built with g++ against tests/emulation/cuda_host.h (emulation.emulator)."""
    from emulation.emulator import build
    from gpucnn.cuda.kernels import kernel_dir

    return build(kernel_dir(), str(tmp_path_factory.mktemp("cuda_emulation")))


from gpucnn import env  # noqa: E402

REQUIRE_CUDA = env.switch("GPUCNN_REQUIRE_CUDA")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With GPUCNN_REQUIRE_CUDA=1 a test marked ``cuda`` that skips fails with the skip reason
    (an error when it skipped at setup), so a run on a GPU machine cannot pass by skipping
    (a broken CuPy, an invisible GPU)."""
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("cuda")
            and REQUIRE_CUDA):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"GPUCNN_REQUIRE_CUDA=1 but this cuda test skipped: {reason}"
