"""Deeper nets train: the example ResNet on the embedded digits and a small one on synthetic
3x32x32 images beat chance clearly; a batch-norm model resumes bit-identically (its running
statistics ride in the checkpoint); ``gpucnn train --model examples/resnet.toml`` works."""
import json
import os
import signal

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.data import load
from gpucnn.models import build_model
from gpucnn.specs import read_spec
from gpucnn.train import Trainer, TrainingInterrupted

RESNET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "examples", "resnet.toml")


def _conv_bn_relu(channels, stride=1):
    return [{"type": "conv2d", "out_channels": channels, "kernel_size": 3, "stride": stride,
             "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"}]


def _block(channels, stride=1):
    body = _conv_bn_relu(channels, stride) + _conv_bn_relu(channels)[:2]
    return [{"type": "residual", "layers": body}, {"type": "relu"}]


def test_example_resnet_learns_the_digits():
    data = load("digits")
    model = build_model(read_spec(RESNET), data.meta.shape, seed=0)
    h = Trainer(model, data, optimizer="adam", optim_config={"lr": 3e-3}, batch_size=50,
                epochs=2, iterations_per_epoch=12, train_samples=300, device="cpu",
                progress=False).train()
    assert h.val_acc[0] < 0.3 and h.val_acc[-1] > 0.6, h.val_acc   # 10 classes: chance 0.1


def test_small_resnet_learns_synthetic_3x32x32():
    data = load("synthetic", n=700, size=32, channels=3, num_classes=10)
    spec = (_conv_bn_relu(8, stride=2) + _block(8) + _block(16, stride=2)
            + [{"type": "global_avgpool2d"}, {"type": "linear", "out_features": 10}])
    model = build_model(spec, (3, 32, 32), seed=0)
    h = Trainer(model, data, optimizer="adam", optim_config={"lr": 1e-2}, batch_size=50,
                epochs=3, iterations_per_epoch=10, train_samples=200, device="cpu",
                progress=False).train()
    assert h.train_acc[-1] > 0.3 and h.val_acc[-1] > 0.3, (h.train_acc, h.val_acc)


# the training tests' separable 1x8x8 images (class k: a bright block at position k, plus noise)
from test_train import data as blocks  # noqa: E402,F401


def bn_model(seed=1):
    spec = (_conv_bn_relu(4) + _block(4) + [{"type": "dropout", "p": 0.2},
                                            {"type": "global_avgpool2d"},
                                            {"type": "linear", "out_features": 8},
                                            {"type": "batchnorm1d", "momentum": 0.3},
                                            {"type": "leaky_relu"},
                                            {"type": "linear", "out_features": 4}])
    return build_model(spec, (1, 8, 8), seed=seed)


SETTINGS = dict(optimizer="momentum", optim_config={"lr": 0.05, "lr_decay": 0.9}, batch_size=20,
                epochs=3, iterations_per_epoch=5, train_samples=100, device="cpu",
                progress=False)


def test_batchnorm_model_resumes_bit_identically_after_ctrl_c(blocks, tmp_path):
    full = Trainer(bn_model(), blocks, **SETTINGS)
    full.train()
    model = bn_model()
    loss, calls = model.loss, []

    def ctrl_c_at_step_8(X, y=None, **options):   # a real SIGINT during epoch 2
        if y is not None:
            calls.append(1)
            if len(calls) == 8:
                signal.raise_signal(signal.SIGINT)
        return loss(X, y, **options)

    model.loss = ctrl_c_at_step_8
    with pytest.raises(TrainingInterrupted):
        Trainer(model, blocks, checkpoint_dir=str(tmp_path), **SETTINGS).train()
    # a fresh model with other weights and untouched running statistics: all from the file
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), bn_model(seed=7), blocks,
                                      progress=False)
    resumed.train()
    a, b = full.history, resumed.history
    assert (a.loss, a.train_acc, a.val_acc) == (b.loss, b.train_acc, b.val_acc)
    state, other = full.model.state_dict(), resumed.model.state_dict()
    assert any(k.endswith("running_var") for k in state) and set(state) == set(other)
    for k, v in state.items():
        np.testing.assert_array_equal(v, other[k], err_msg=k)
    assert not np.array_equal(state["net.1.running_mean"], bn_model().state_dict()["net.1.running_mean"])


def test_cli_trains_evaluates_and_resumes_the_example_resnet(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--model", RESNET, "--device", "cpu", "--output", out, "--no-progress",
                 "--epochs", "1", "--iterations-per-epoch", "8"]) == 0
    assert "BatchNorm2d(16" in capsys.readouterr().out
    history = json.loads(open(os.path.join(out, "history.json")).read())
    assert history["val_acc"][1] > 0.3, history["val_acc"]
    # evaluate rebuilds the model from weights.npz: the running statistics must come with it
    assert main(["evaluate", os.path.join(out, "weights.npz"), "--split", "val"]) == 0
    acc = float(capsys.readouterr().out.split("accuracy ")[1].split()[0])
    assert acc == pytest.approx(history["val_acc"][1], abs=1e-4)
    assert main(["train", "--resume", out, "--epochs", "2", "--no-progress"]) == 0
    assert len(json.loads(open(os.path.join(out, "history.json")).read())["loss"]) == 16
