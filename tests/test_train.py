"""Trainer: history, determinism, exact resume, Ctrl-C, divergence, atomic checkpoints, CLI."""
import io
import json
import os
import signal
import sys

import numpy as np
import pytest

from gpucnn.train import checkpoint
from gpucnn.device import DeviceError, cuda_status
from gpucnn.cli import main
from gpucnn.models import ThreeLayerConvNet
from gpucnn.train import History, Trainer, TrainingDiverged, TrainingInterrupted


@pytest.fixture(scope="module")
def data():
    """Separable 1x8x8 images: class k is a bright pixel block at position k, plus noise."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 240)
    X = rng.normal(0, 0.3, (240, 1, 8, 8)).astype(np.float32)
    for k in range(4):
        X[y == k, 0, 2 * (k // 2) + 2:2 * (k // 2) + 4, 4 * (k % 2):4 * (k % 2) + 4] += 1.0
    return {"X_train": X[:200], "y_train": y[:200], "X_val": X[200:], "y_val": y[200:]}


def make_model(dropout=0.3, **kw):
    return ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=16,
                             num_classes=4, weight_scale=None, dropout=dropout, seed=1, **kw)


SETTINGS = dict(optimizer="momentum", optim_config={"lr": 0.05, "lr_decay": 0.9}, batch_size=20,
                epochs=3, iterations_per_epoch=7, train_samples=100, device="cpu",
                progress=False)


def assert_same_run(a: Trainer, b: Trainer):
    ha, hb = a.history, b.history
    assert ha.loss == hb.loss
    assert (ha.train_acc, ha.val_acc, ha.lr, ha.epoch_loss) == (hb.train_acc, hb.val_acc, hb.lr,
                                                                 hb.epoch_loss)
    assert (ha.best_val_acc, ha.best_epoch) == (hb.best_val_acc, hb.best_epoch)
    for k, v in a.model.parameters().items():
        np.testing.assert_array_equal(v, b.model.parameters()[k])
        np.testing.assert_array_equal(ha.best_params[k], hb.best_params[k])


def interrupt_at(model, n):
    """Deliver SIGINT (a real Ctrl-C) during the n-th training step's loss."""
    loss, calls = model.loss, []

    def patched(X, y=None, **options):
        if y is not None:
            calls.append(1)
            if len(calls) == n:
                signal.raise_signal(signal.SIGINT)
        return loss(X, y, **options)

    model.loss = patched


def test_history_records_epoch_0_and_every_epoch(data):
    h = Trainer(make_model(), data, **SETTINGS).train()
    assert isinstance(h, History)
    assert len(h.loss) == 3 * 7
    assert h.epochs == 3 and len(h.train_acc) == len(h.val_acc) == len(h.epoch_time) == 4
    assert h.epoch_loss[0] is None and h.epoch_loss[1] == pytest.approx(np.mean(h.loss[:7]))
    assert h.lr == pytest.approx([0.05, 0.05, 0.045, 0.0405])
    assert h.val_acc[h.best_epoch] == h.best_val_acc == max(h.val_acc)
    assert h.val_acc[-1] > 0.8 > h.val_acc[0]


def test_same_seed_same_history_other_seed_other_batches(data):
    a, b = Trainer(make_model(), data, **SETTINGS), Trainer(make_model(), data, **SETTINGS)
    a.train(), b.train()
    assert_same_run(a, b)
    c = Trainer(make_model(), data, **{**SETTINGS, "seed": 1})
    assert c.train().loss != a.history.loss


def test_resume_after_ctrl_c_mid_epoch_equals_uninterrupted(data, tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a shell's background job, not Python's
    full = Trainer(make_model(), data, **SETTINGS)
    full.train()
    model = make_model()
    interrupt_at(model, 10)   # during epoch 2
    with pytest.raises(TrainingInterrupted) as info:
        Trainer(model, data, checkpoint_dir=str(tmp_path), **SETTINGS).train()
    path = str(tmp_path / "checkpoint.npz")
    assert info.value.checkpoint == path and info.value.iteration == 10
    assert f"Trainer.from_checkpoint({path!r}, model, data).train()" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is before   # handler restored
    other_init = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=16,
                                   num_classes=4, dropout=0.3, seed=7)   # all state comes from the file
    resumed = Trainer.from_checkpoint(path, other_init, data, progress=False)
    assert resumed.iteration == 10 and resumed.epoch == 1
    resumed.train()
    assert_same_run(full, resumed)


def test_resume_at_an_epoch_boundary_with_more_epochs(data, tmp_path):
    full = Trainer(make_model(), data, **SETTINGS)
    full.train()
    Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1}).train()
    resumed = Trainer(make_model(), data, **SETTINGS).resume(str(tmp_path / "checkpoint.npz"))
    resumed.train()
    assert_same_run(full, resumed)


def test_a_checkpoint_older_than_a_setting_resumes_with_its_default(data, tmp_path,
                                                                    monkeypatch):
    """cuda_graph came after checkpoints were written: one without it resumes with the
    default; one without a setting that shapes the history does not."""
    from gpucnn.train import trainer as trainer_module

    Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1}).train()
    load = checkpoint.load_checkpoint

    def older(path, without):
        arrays, meta = load(path)
        del meta["config"][without]
        return arrays, meta

    path = str(tmp_path / "checkpoint.npz")
    monkeypatch.setattr(trainer_module, "load_checkpoint", lambda p: older(p, "cuda_graph"))
    assert Trainer.from_checkpoint(path, make_model(), data,
                                   epochs=2).settings["cuda_graph"] is False
    monkeypatch.setattr(trainer_module, "load_checkpoint", lambda p: older(p, "batch_size"))
    with pytest.raises(ValueError, match="missing setting 'batch_size'"):
        Trainer.from_checkpoint(path, make_model(), data)


def test_ctrl_c_without_checkpoint_dir_leaves_a_trainer_that_continues(data):
    full = Trainer(make_model(), data, **SETTINGS)
    full.train()
    model = make_model()
    interrupt_at(model, 3)
    t = Trainer(model, data, **SETTINGS)
    with pytest.raises(TrainingInterrupted, match="no checkpoint_dir was given"):
        t.train()
    t.train()
    assert_same_run(full, t)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_nan_loss_stops_with_an_error_and_the_last_checkpoint_loads(data, tmp_path):
    settings = {**SETTINGS, "optimizer": "sgd", "optim_config": {"lr": 1e30}}
    model = make_model()
    initial = model.state_dict()
    with pytest.raises(TrainingDiverged, match=r"loss=(nan|inf) at iteration \d+ \(epoch 1\) "
                                               r"with lr=1e\+30 \(sgd\).*last good checkpoint is "):
        Trainer(model, data, checkpoint_dir=str(tmp_path), **settings).train()
    back = Trainer(make_model(), data, **settings).resume(str(tmp_path / "checkpoint.npz"))
    assert back.epoch == 0 and back.iteration == 0
    for k, v in back.model.parameters().items():
        np.testing.assert_array_equal(v, initial[k])


def test_checkpoint_is_pickle_free_and_complete(data, tmp_path):
    t = Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1})
    t.train()
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as f:
        names = set(f.files)
        meta = json.loads(str(f["meta.json"]))
    assert {"param/net.0.weight", "best/net.7.bias", "optim/velocity/net.4.weight"} <= names
    assert meta["format"] == "checkpoint" and (meta["epoch"], meta["iteration"]) == (1, 7)
    assert meta["version"] == checkpoint.CHECKPOINT_VERSION
    assert sorted(meta["extra_state"]) == ["net.3.rng", "net.6.rng"]  # the dropout streams
    assert meta["batches"]["position"] == 7 % 10
    assert meta["config"]["model"]["layers"][0]["type"] == "conv2d"
    assert meta["history"]["val_acc"] == t.history.val_acc


def test_any_random_stream_a_module_owns_is_checkpointed_by_name(data, tmp_path):
    from gpucnn.rng import Generator

    model = make_model()
    model.net.noise = Generator(5, 9)  # not a Dropout: the trainer asks the model, not its types
    model.net.noise.reserve(123)
    Trainer(model, data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1}).train()
    other = make_model()
    other.net.noise = Generator(5, 9)
    Trainer(other, data, **SETTINGS).resume(str(tmp_path / "checkpoint.npz"))
    assert other.net.noise.counter == 123
    with pytest.raises(ValueError, match=r"random streams .*net.noise"):
        Trainer(make_model(), data, **SETTINGS).resume(str(tmp_path / "checkpoint.npz"))


def test_trainer_takes_the_schema_defaults_and_old_keyword_names(data):
    from gpucnn import config

    t = Trainer(make_model(), data, device="cpu", progress=False)
    defaults = config.TRAINING.defaults()
    assert (t.optimizer_name, t.batch_size, t.epochs) == (defaults["optimizer"],
                                                         defaults["batch_size"], defaults["epochs"])
    assert t.optim_config == config.optim_config(config.OPTIMIZATION.defaults())
    with pytest.warns(DeprecationWarning, match="'num_train_samples' is now called"):
        t = Trainer(make_model(), data, num_train_samples=30, device="cpu", progress=False)
    assert len(t.train_subset[1]) == 30


@pytest.mark.parametrize("fail", ["replace", "savez"])
def test_a_failed_write_leaves_the_old_checkpoint_and_no_temp_file(data, tmp_path, monkeypatch, fail):
    t = Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1})
    t.train()   # writes epoch 0, then epoch 1
    path = tmp_path / "checkpoint.npz"
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    def broken_replace(src, dst):
        raise OSError("disk full")

    if fail == "savez":
        monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    else:
        monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    t.epochs = 2
    with pytest.raises(OSError, match="disk full"):
        t.train()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "metrics.csv"]
    assert Trainer(make_model(), data, **SETTINGS).resume(str(path)).epoch == 1


def test_corrupt_or_mismatched_checkpoints_are_clear_errors(data, tmp_path):
    t = Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 1})
    t.train()
    good = tmp_path / "checkpoint.npz"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=rf"{bad}: not a readable gpucnn checkpoint"):
        Trainer(make_model(), data, **SETTINGS).resume(str(bad))
    with pytest.raises(ValueError, match=rf"{good}: cannot resume.*batch_size=20 in the "
                                         rf"checkpoint, 10 here"):
        Trainer(make_model(), data, **{**SETTINGS, "batch_size": 10}).resume(str(good))
    other = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=8,
                              num_classes=4, seed=1)
    with pytest.raises(ValueError, match=rf"{good}: cannot resume.*net.4.weight"):
        Trainer(other, data, **SETTINGS).resume(str(good))
    arrays, meta = checkpoint.load_npz(str(good), "checkpoint")
    old = tmp_path / "old.npz"
    checkpoint.save_npz(str(old), arrays, {**meta, "version": 1})
    with pytest.raises(ValueError, match=rf"{old}: checkpoint format version 1: expected "
                                         rf"version {checkpoint.CHECKPOINT_VERSION}"):
        Trainer(make_model(), data, **SETTINGS).resume(str(old))
    with pytest.raises(FileNotFoundError, match="missing.npz: no such checkpoint file"):
        Trainer(make_model(), data, **SETTINGS).resume(str(tmp_path / "missing.npz"))


def test_bad_settings_are_clear_errors(data):
    cases = [
        ({"batch_size": 0}, data, r"batch_size=0: expected an integer >= 1"),
        ({"optim_config": {"lr": -1.0}}, data, r"lr=-1.0: expected a number in \(0, inf\)"),
        ({"optimizer": "adagrad"}, data, r"optimizer='adagrad': expected one of"),
        ({}, {**data, "y_train": data["y_train"][:-1]},
         r"X_train has 200 samples but y_train has 199"),
        ({}, {**data, "X_val": np.where(np.arange(40)[:, None, None, None] == 5, np.nan,
                                        data["X_val"])},
         r"X_val holds NaN or infinite values in 1 samples \(first: index 5\)"),
        ({}, {"X_train": data["X_train"]}, r"data: expected a gpucnn.data.Dataset or a dict"),
    ]
    for overrides, d, message in cases:
        with pytest.raises(ValueError, match=message):
            Trainer(make_model(), d, **{**SETTINGS, **overrides})


@pytest.mark.skipif(cuda_status().available, reason="CUDA is usable here")
def test_cuda_when_unavailable_is_a_device_error(data):
    with pytest.raises(DeviceError, match="device='cuda' but CUDA is unusable"):
        Trainer(make_model(), data, **{**SETTINGS, "device": "cuda"})


def test_progress_bar_only_on_a_terminal(data, capsys, monkeypatch):
    settings = {**SETTINGS, "progress": True, "epochs": 1}
    Trainer(make_model(), data, **settings).train()
    assert capsys.readouterr().err == ""   # pytest's captured stderr is not a tty

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    Trainer(make_model(), data, **settings).train()
    assert "epoch 1/1" in term.getvalue() and "/7 [" in term.getvalue()
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    Trainer(make_model(), data, **{**settings, "progress": False}).train()
    assert term.getvalue() == ""


def test_cli_train_evaluate_and_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--device", "cpu", "--output", out, "--no-progress", "--epochs", "1",
            "--iterations-per-epoch", "30", "--filters", "4", "--hidden", "32", "--lr", "1e-2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "epoch      loss  train acc  val loss  val acc         lr  seconds" in printed
    history = json.loads(open(os.path.join(out, "history.json")).read())
    assert len(history["val_acc"]) == 2 and history["val_acc"][1] > 0.5   # 10 classes: chance 0.1
    assert main(["evaluate", os.path.join(out, "weights.npz"), "--split", "val"]) == 0
    acc = float(capsys.readouterr().out.split("accuracy ")[1].split()[0])
    assert acc == pytest.approx(history["val_acc"][1], abs=1e-4)

    assert main(["train", "--resume", out, "--epochs", "2", "--no-progress"]) == 0
    history = json.loads(open(os.path.join(out, "history.json")).read())
    assert len(history["val_acc"]) == 3 and len(history["loss"]) == 60
    assert main(["train", "--resume", out, "--batch-size", "10"]) == 1
    assert "--batch-size: a resumed run keeps its checkpoint's settings" in capsys.readouterr().err


def test_cli_ctrl_c_prints_how_to_resume(tmp_path, capsys, monkeypatch):
    from gpucnn.train import trainer as train_module

    step = train_module.Trainer._step

    def step_then_ctrl_c(self):
        step(self)
        if self.iteration == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train_module.Trainer, "_step", step_then_ctrl_c)
    out = str(tmp_path / "run")
    code = main(["train", "--device", "cpu", "--output", out, "--no-progress", "--epochs", "1",
                 "--iterations-per-epoch", "5", "--filters", "2", "--hidden", "8"])
    err = capsys.readouterr().err
    assert code == 130
    assert f"resume with: gpucnn train --resume {out}/checkpoint.npz" in err
    assert checkpoint.load_npz(f"{out}/checkpoint.npz", "checkpoint")[1]["iteration"] == 2
