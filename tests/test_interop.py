"""gpucnn.interop without its optional packages: ``import gpucnn`` (and the CLI, and
gpucnn.interop itself) never imports torch, onnx or onnxruntime, and a function or command that
needs a missing one says in one line how to install it, before any work."""
import subprocess
import sys

import pytest

from gpucnn import nn
from gpucnn.cli import main
from gpucnn.interop import from_torch, to_onnx, to_torch
from gpucnn.models import Classifier
from gpucnn.train import save_weights


def test_importing_gpucnn_and_its_commands_loads_no_optional_package():
    code = ("import sys, gpucnn, gpucnn.interop, gpucnn.models; from gpucnn.cli.main import "
            "build_parser; build_parser(); print(sorted({'torch', 'onnx', 'onnxruntime'} & "
            "set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def without(monkeypatch):
    """``without("onnx")``: the package cannot be imported (as when it is not installed)."""
    return lambda name: monkeypatch.setitem(sys.modules, name, None)


def test_a_missing_package_is_one_line_saying_how_to_install_it(without):
    without("onnx")
    without("torch")
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(RuntimeError,
                       match=r"^onnx is not installed \(.*\); pip install 'gpucnn\[onnx\]'$"):
        to_onnx(net, (3,))
    with pytest.raises(RuntimeError, match=r"^torch is not installed \(.*\); install PyTorch as "
                                           r"https://pytorch.org/get-started/locally/ shows$"):
        to_torch(net)
    with pytest.raises(RuntimeError, match=r"^torch is not installed"):
        from_torch(object())


def test_export_without_the_onnx_extra_fails_before_reading_or_writing(tmp_path, without, capsys):
    save_weights(str(tmp_path / "w.npz"), Classifier(nn.Sequential(nn.Linear(3, 2))))
    without("onnx")
    assert main(["export", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpucnn export: error: onnx is not installed") and err.count("\n") == 1
    assert "pip install 'gpucnn[onnx]'" in err and not (tmp_path / "w.onnx").exists()

