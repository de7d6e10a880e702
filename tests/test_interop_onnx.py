"""ONNX export (``gpucnn.interop.to_onnx``, ``gpucnn export``): every layer type, and the shipped
ResNet, run in onnxruntime on the CPU and give gpucnn's own evaluation scores, float32 within
1e-5 of the largest score, with the same predictions.  float64 graphs are run by onnx's
reference evaluator instead: onnxruntime's CPU provider has no float64 Conv, AveragePool,
GlobalAveragePool or LeakyRelu."""
import json
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'gpucnn[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install onnxruntime")

from interop_cases import CASES, make_case  # noqa: E402
from gpucnn import nn  # noqa: E402
from gpucnn.cli import main  # noqa: E402
from gpucnn.interop import OPSET, to_onnx  # noqa: E402
from gpucnn.models import Classifier  # noqa: E402
from gpucnn.train import load_weights, save_weights  # noqa: E402


def run_onnxruntime(proto, x):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no notes about unused initializers
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(["scores"], {"input": x})[0]


def assert_same_scores(got, want, rtol):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


@pytest.mark.parametrize("case", CASES)
def test_every_layer_runs_in_onnxruntime_as_in_gpucnn(case):
    model, shape, x = make_case(case)
    proto = to_onnx(model, shape)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    assert_same_scores(run_onnxruntime(proto, x), model.forward(x), rtol=1e-5)


@pytest.mark.parametrize("case", ["conv2d k3 s2 p1", "avgpool2d k3 s2", "global_avgpool2d",
                                  "batchnorm2d", "leaky_relu", "residual with conv projection",
                                  "nested sequential", "resnet.toml"])
def test_float64_graphs_compute_gpucnns_scores(case):
    from onnx.reference import ReferenceEvaluator

    model, shape, x = make_case(case, np.float64)
    proto = to_onnx(model, shape)
    (got,) = ReferenceEvaluator(proto).run(["scores"], {"input": x})
    # ONNX attributes are float32: LeakyRelu's alpha 0.2 is 0.2 * (1 + 1.5e-8) in the graph
    assert_same_scores(got, model.forward(x), rtol=1e-7 if case == "leaky_relu" else 1e-10)


def test_resnet_graph_names_its_weights_and_nodes_as_gpucnn_and_takes_any_batch():
    model, shape, x = make_case("resnet.toml")
    proto = to_onnx(model)  # the input shape the model was built for
    graph = proto.graph
    assert {i.name for i in graph.initializer} == set(model.state_dict())
    assert "net.5.projection" in {n.name for n in graph.node}
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", *shape]
    assert json.loads({p.key: p.value for p in proto.metadata_props}["gpucnn.model"]) == model.config()
    for n in (1, 6):
        assert_same_scores(run_onnxruntime(proto, x[:n]), model.forward(x[:n]), rtol=1e-5)


def test_dropout_is_an_identity_and_batch_norm_has_no_training_mode():
    model, shape, _ = make_case("three-layer net")
    ops = [n.op_type for n in to_onnx(model, shape).graph.node]
    assert ops.count("Identity") == 2 and "Dropout" not in ops
    nodes = to_onnx(*make_case("batchnorm2d")[:2]).graph.node
    bn = [n for n in nodes if n.op_type == "BatchNormalization"]
    assert len(bn) == 1 and [(a.name, round(a.f, 6)) for a in bn[0].attribute] == [("epsilon", 1e-3)]


class Scale(nn.Module):
    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize("net, shape, message", [
    (nn.Sequential(nn.Flatten(), Scale(), nn.Linear(4, 2)), (4,),
     "net.1=Scale: cannot be exported to ONNX: expected one of Conv2d"),
    (nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(8, 2)), (4, 2, 2),
     "net.0=Conv2d: cannot be exported to ONNX: its input has 4 channels: expected 3"),
    (nn.Sequential(nn.Linear(4, 2)), (1, 2, 3),
     "net.0=Linear: cannot be exported to ONNX: its input has shape (1, 2, 3): expected 4 features"),
    (nn.Sequential(nn.Residual(nn.Linear(4, 3)), nn.Linear(3, 2)), (4,),
     "net.0=Residual: cannot be exported to ONNX: its body gives shape (3,), its shortcut (4,)"),
    (nn.Sequential(nn.MaxPool2d(3)), (1, 2, 2),
     "net.0=MaxPool2d: cannot be exported to ONNX: input shape (1, 2, 2) gives an empty output"),
    (nn.Sequential(nn.Linear(4, 2)), None, "input_shape=None: expected one sample's shape"),
    (nn.Sequential(nn.Linear(4, 2)), (4, 1), "input_shape=(4, 1): expected (C, H, W) or (D,)"),
])
def test_what_cannot_be_exported_is_one_line_naming_the_layer(net, shape, message):
    with pytest.raises(ValueError) as e:
        to_onnx(Classifier(net), shape)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# --- the command -------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    """A run folder holding the ResNet's weights.npz, and the model itself."""
    model, _, x = make_case("resnet.toml")
    save_weights(str(tmp_path / "weights.npz"), model, {"dataset": "digits"})
    return tmp_path, model, x


def test_export_writes_a_graph_that_scores_as_the_saved_weights(saved, capsys):
    run, model, x = saved
    assert main(["export", str(run / "weights.npz"), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run / 'weights.onnx'}: ONNX opset {OPSET}, input 'input' (N, 3, 12, 12)"
                          f" -> output 'scores' (N, 10), float32; from {run / 'weights.npz'}")
    loaded, _ = load_weights(str(run / "weights.npz"))
    assert_same_scores(run_onnxruntime(onnx.load(str(run / "weights.onnx")), x),
                       loaded.eval().forward(x), rtol=1e-5)
    assert main(["export", str(run), "--output", str(run / "sub" / "m.onnx")]) == 0
    assert onnx.load(str(run / "sub" / "m.onnx")) == onnx.load(str(run / "weights.onnx"))
    assert main(["export", str(run)]) == 0 and os.path.isfile(run / "model.onnx")


def test_export_never_overwrites_unasked_and_checks_the_output_first(saved, capsys):
    run, _, _ = saved
    target = run / "model.onnx"
    target.write_bytes(b"mine")
    assert main(["export", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"gpucnn export: error: --output={target}: exists; give --overwrite to replace "
                   f"it, or another --output")
    assert main(["export", str(run / "missing.npz"), "--output", str(target)]) == 1
    assert "--output=" in capsys.readouterr().err  # the output is checked before the input is read
    assert target.read_bytes() == b"mine"
    assert main(["export", str(run), "--overwrite"]) == 0
    assert onnx.load(str(target)).graph.output[0].name == "scores"
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_export_of_weights_without_a_model_description_is_one_line(tmp_path, capsys):
    save_weights(str(tmp_path / "w.npz"), Classifier(nn.Sequential(nn.Linear(3, 2))))
    assert main(["export", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "holds no model config" in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "w.onnx")
