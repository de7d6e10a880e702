"""gpucnn.interop without its optional packages: ``import gpucnn`` (and the CLI, and
gpucnn.interop itself) never imports torch, onnx or onnxruntime, and a function or command that
needs a missing one says in one line how to install it, before any work.  And the weights file
read with NumPy alone, as docs/weights-format.md shows."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpucnn import nn
from gpucnn.cli import main
from gpucnn.interop import from_torch, to_onnx, to_torch
from gpucnn.models import Classifier, build_model, read_spec
from gpucnn.train import save_weights

ROOT = Path(__file__).resolve().parents[1]


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


def test_the_documented_numpy_reader_reads_a_saved_weights_file(tmp_path, capsys):
    doc = (ROOT / "docs" / "weights-format.md").read_text()
    code = doc.split("## Reading it with NumPy alone")[1].split("```python")[1].split("```")[0]
    model = build_model(read_spec(str(ROOT / "examples" / "resnet.toml")), (3, 8, 8), seed=0)
    path = tmp_path / "weights.npz"
    save_weights(str(path), model, {"dataset": "digits"})
    scope = {}
    exec(code.replace('"runs/train/weights.npz"', repr(str(path))), scope)
    params, meta = scope["params"], scope["meta"]
    assert meta == {"format": "weights", "version": 1, "model": model.config(),
                    "info": {"dataset": "digits"}}
    state = model.state_dict()
    assert params.keys() == state.keys() and all(np.array_equal(params[k], state[k]) for k in state)
    # the documented names and shapes: conv (out, in, kh, kw), linear (in, out), batch norm's
    # four vectors, a residual's body and projection
    assert params["net.0.weight"].shape == (16, 3, 3, 3) and params["net.8.weight"].shape == (32, 10)
    assert {k for k in params if k.startswith("net.1.")} == {
        "net.1.gamma", "net.1.beta", "net.1.running_mean", "net.1.running_var"}
    assert params["net.5.projection.weight"].shape == (32, 16, 1, 1) and "net.5.body.3.bias" in params
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "input [3, 8, 8] trained on digits" and len(lines) == 1 + len(state)
    assert "net.3.body.0.weight        float32 (16, 16, 3, 3)" in lines
