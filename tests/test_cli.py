"""The core commands a user runs to trust an install."""
import subprocess
import sys

from gpucnn.cli import main


def test_info_lists_versions_device_and_kernels(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("gpucnn", "numpy", "auto device", "cupy", "kernels"):
        assert word in out


def test_check_passes_every_op_on_cpu(capsys):
    assert main(["check", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for op in ("conv2d", "maxpool2d", "relu", "sigmoid", "dropout", "linear",
               "softmax cross-entropy", "mse", "l2 penalty"):
        assert op in out


def test_bad_device_is_one_clear_line(capsys):
    assert main(["check", "--device", "tpu"]) == 1
    err = capsys.readouterr().err
    assert "device='tpu'" in err and "Traceback" not in err


def test_console_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "gpucnn.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "gpucnn" in out.stdout
