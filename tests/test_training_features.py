"""The Trainer's schedules, early stopping, validation loss, metrics.csv, augmentation, label
smoothing, clipping, AdamW and fine-tuning, each resumed bit for bit on the CPU and on the
stand-in GPU (with and without a CUDA graph)."""
import csv
import shutil
import signal
import sys

import numpy as np
import pytest

import gpucnn.functional as F
from gpucnn.train import Trainer, TrainingInterrupted, save_weights
from test_augment import brighten
from test_train import SETTINGS, assert_same_run, data, interrupt_at, make_model  # noqa: F401

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None,
                               reason="g++ is not installed: the kernel host emulation needs it")

# Everything at once: each feature changes the numbers, so a resume that lost any of them
# would not end bit-identical.
EVERYTHING = {**SETTINGS, "optimizer": "adamw", "optim_config": {"lr": 0.02, "weight_decay": 0.05},
              "epochs": 4, "augment": ["crop", "flip", brighten], "crop_pad": 1,
              "label_smoothing": 0.1, "clip_grad_norm": 0.5, "early_stop": 3}
SCHEDULES = {
    "cosine+warmup": {"schedule": "cosine", "warmup_epochs": 1, "min_lr": 1e-3},
    "multistep, best by val_loss": {"schedule": "multistep", "milestones": [1, 3],
                                    "gamma": 0.5, "monitor": "val_loss"},
    "plateau": {"schedule": "plateau", "plateau_patience": 0, "gamma": 0.5},
}


def _same_everything(a, b):
    assert_same_run(a, b)
    assert a.history.val_loss == b.history.val_loss
    assert a.optimizer.lr == b.optimizer.lr and a.history.notes == b.history.notes


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_a_run_with_every_feature_resumed_mid_epoch_ends_bit_identical(data, tmp_path,
                                                                       schedule):
    settings = {**EVERYTHING, **SCHEDULES[schedule]}
    full = Trainer(make_model(), data, **settings)
    full.train()
    assert len(set(full.history.lr)) > 1  # the schedule moved the rate
    model = make_model()
    interrupt_at(model, 10)  # during epoch 2
    with pytest.raises(TrainingInterrupted):
        Trainer(model, data, checkpoint_dir=str(tmp_path), **settings).train()
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data,
                                      augment=settings["augment"], progress=False)
    resumed.train()
    _same_everything(full, resumed)
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["val_loss"]) for r in rows] == full.history.val_loss
    assert [float(r["lr"]) for r in rows] == full.history.lr


def test_a_checkpoint_of_a_run_with_a_function_needs_it_again(data, tmp_path):
    Trainer(make_model(), data, checkpoint_dir=str(tmp_path),
            **{**SETTINGS, "epochs": 1, "augment": [brighten]}).train()
    with pytest.raises(ValueError, match=r"augmented its batches with test_augment.brighten: "
                                         r"pass it again"):
        Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data)


def test_the_schedule_sets_each_epochs_rate(data):
    h = Trainer(make_model(), data, **{**SETTINGS, "optim_config": {"lr": 0.08}, "epochs": 5,
                                       "schedule": "step", "step_size": 2, "gamma": 0.5,
                                       "warmup_epochs": 1}).train()
    # lr[0] is the first epoch's: warmup 0.08 / 2, then 0.08 halved every 2 epochs
    assert h.lr == [0.04, 0.04, 0.08, 0.08, 0.04, 0.04]


def test_early_stopping_ends_with_the_best_weights_and_a_resume_keeps_them(data, tmp_path):
    settings = {**SETTINGS, "optimizer": "sgd", "optim_config": {"lr": 1e-12}, "epochs": 9,
                "early_stop": 2}
    t = Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **settings)
    h = t.train()  # no update changes the predictions: no epoch beats epoch 0
    assert (h.best_epoch, h.stopped_epoch, h.epochs) == (0, 2, 2) and t.stopped_early
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, h.best_params[k])
    # resumed as it ended, it would train nothing: refused, as gpucnn train --resume refuses
    with pytest.raises(ValueError, match=r"early_stop=2: .* stopped early at epoch 2, its best "
                                         r"being epoch 0; expected early_stop above 2"):
        Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data)
    longer = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data,
                                     early_stop=4)
    assert longer.train().epochs == 4 and longer.history.stopped_epoch == 4


def test_validation_loss_is_the_mean_cross_entropy_on_the_validation_set(data):
    t = Trainer(make_model(), data, **{**SETTINGS, "epochs": 1, "label_smoothing": 0.2})
    h = t.train()
    scores = t.model.loss(data["X_val"])
    assert h.val_loss[-1] == pytest.approx(float(F.softmax_cross_entropy(scores, data["y_val"],
                                                                         0.2)[0]), rel=1e-6)
    assert len(h.val_loss) == 2 and h.val_loss[0] > h.val_loss[1]


def test_metrics_csv_holds_the_checkpoints_epochs_after_a_crash_and_resume(data, tmp_path,
                                                                           monkeypatch):
    settings = {**SETTINGS, "checkpoint_every": 2}
    full = Trainer(make_model(), data, **settings)
    full.train()
    model = make_model()
    loss, calls = model.loss, []

    def crash_in_epoch_2(X, y=None, **options):
        calls.append(y is not None)
        if sum(calls) == 10:
            raise RuntimeError("power cut")
        return loss(X, y, **options)

    model.loss = crash_in_epoch_2
    with pytest.raises(RuntimeError, match="power cut"):
        Trainer(model, data, checkpoint_dir=str(tmp_path), **settings).train()
    path = tmp_path / "metrics.csv"
    assert len(path.read_text().splitlines()) == 3  # header, epochs 0 and 1
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data)

    class FirstStep(Exception):
        pass

    def first_step():
        raise FirstStep(path.read_text())

    monkeypatch.setattr(resumed, "_step", first_step)
    with pytest.raises(FirstStep) as seen:
        resumed.train()
    assert len(str(seen.value).splitlines()) == 2  # rewritten from the checkpoint: epoch 0
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data)
    resumed.train()
    assert_same_run(full, resumed)
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"] and rows[0]["train_loss"] == ""
    assert [float(r["train_acc"]) for r in rows] == full.history.train_acc


def test_init_weights_start_a_run_and_a_mismatch_names_the_parameter(data, tmp_path):
    trained = Trainer(make_model(), data, **{**SETTINGS, "epochs": 1})
    trained.train()
    path = str(tmp_path / "weights.npz")
    save_weights(path, trained.model)
    t = Trainer(make_model(), data, init_weights=path, **SETTINGS)
    for k, v in trained.model.state_dict().items():
        np.testing.assert_array_equal(t.model.state_dict()[k], v)
    assert t.history.notes == [{"epoch": 0, "iteration": 0,
                                "note": f"started from the weights of {path}"}]
    from gpucnn.models import ThreeLayerConvNet

    other = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=8,
                              num_classes=4, seed=1)
    with pytest.raises(ValueError, match=rf"init_weights={path}: does not fit the model: "
                                         rf"state_dict\['net.4.weight'\].shape=\(64, 16\): "
                                         rf"expected \(64, 8\)"):
        Trainer(other, data, init_weights=path, **SETTINGS)
    with pytest.raises(ValueError, match=r"init_weights='nope.npz': no such file"):
        Trainer(make_model(), data, init_weights="nope.npz", **SETTINGS)


def test_a_resume_with_another_rate_and_schedule_is_noted_and_followed(data, tmp_path):
    Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 2}).train()
    path = str(tmp_path / "checkpoint.npz")
    step = Trainer.from_checkpoint(path, make_model(), data, epochs=3, schedule="step",
                                   step_size=1)  # its own options: no lr_decay 0.9 with it
    assert step.lr_schedule.describe() == "step (step_size=1, gamma=0.1)"
    t = Trainer.from_checkpoint(path, make_model(), data, epochs=4,
                                optim_config={"lr": 0.01, "lr_decay": 1.0}, schedule="cosine")
    assert t.history.notes[-1]["note"] == ("resumed with lr 0.0405 -> 0.01; schedule constant "
                                          "(lr_decay=0.9) -> cosine (min_lr=0.0)")
    h = t.train()
    assert h.lr[3:] == [0.01, 0.005]  # cosine over the 2 epochs left, from the new rate
    with pytest.raises(ValueError, match="optim_config="):  # momentum is not the schedule's
        Trainer.from_checkpoint(path, make_model(), data,
                                optim_config={"lr": 0.05, "momentum": 0.5})


@pytest.mark.parametrize("settings, message", [
    ({"step_size": 3}, r"step_size=3: only with schedule step, not constant"),
    ({"schedule": "multistep"}, r"schedule=multistep: needs milestones"),
    ({"crop_pad": 2}, r"crop_pad=2: only with crop in augment"),
    ({"optim_config": {"lr": 0.1, "weight_decay": 0.1}},
     r"weight_decay=0.1: only with optimizer adamw, not momentum"),
    ({"schedule": "cosine", "optim_config": {"lr": 0.1, "lr_decay": 0.9}},
     r"lr_decay=0.9: only with schedule constant, not cosine"),
    ({"augment": "flip,blur"}, r"augment='flip,blur': expected some of flip, crop"),
    ({"label_smoothing": 1.0}, r"label_smoothing=1.0: expected a number in \[0"),
])
def test_settings_that_do_not_go_together_are_refused(data, settings, message):
    with pytest.raises(ValueError, match=message):
        Trainer(make_model(), data, **{**SETTINGS, "optim_config": {"lr": 0.1}, **settings})


def test_progress_shows_in_a_notebook_and_not_in_a_pipe(data, monkeypatch):
    from gpucnn.train import progress

    assert not progress.interactive()  # pytest's stderr is no terminal

    class ZMQInteractiveShell:  # what get_ipython() returns inside a Jupyter kernel
        pass

    ipython = type(sys)("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert progress.interactive()
    shown = []
    monkeypatch.setattr("tqdm.auto.tqdm", lambda **kw: shown.append(kw) or _Bar())
    Trainer(make_model(), data, **{**SETTINGS, "epochs": 1, "progress": True}).train()
    assert shown == [{"total": 7, "initial": 0, "desc": "epoch 1/1", "leave": True,
                      "dynamic_ncols": True}]


class _Bar:
    def update(self):
        pass

    def set_postfix(self, **kw):
        self.postfix = kw

    def close(self):
        pass


@needs_gxx
@pytest.mark.slow
@pytest.mark.parametrize("graph", [False, True])
def test_on_the_stand_in_gpu_every_feature_resumes_bit_identical(fake_cupy, tmp_path, graph):
    _every_feature_on_cuda(tmp_path, graph)


@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True])
def test_on_a_gpu_every_feature_resumes_bit_identical(tmp_path, graph):
    from gpucnn.device import cuda_status

    status = cuda_status()
    if not status.available:
        pytest.skip(f"no usable GPU: {status.reason}")
    _every_feature_on_cuda(tmp_path, graph)


def _every_feature_on_cuda(tmp_path, graph):
    """Nesterov SGD (a graph can hold it) with augmentation, label smoothing, clipping, a
    warmup, a start from saved weights, and early stopping on validation loss: the GPU run
    (eager or a replayed graph) equals itself resumed mid-epoch (in the second epoch, after
    the capture); a graph's run equals the eager one bit for bit, and the eager one's loss the
    CPU run's to float32 rounding."""
    from gpucnn.models import ThreeLayerConvNet
    from test_cuda_graph_fake import _data, _model, _same_run

    settings = {"optimizer": "nesterov", "optim_config": {"lr": 0.05}, "batch_size": 5,
                "epochs": 3, "progress": False, "cuda_graph": graph, "augment": ["crop", "flip"],
                "crop_pad": 1, "label_smoothing": 0.1, "clip_grad_norm": 0.5,
                "schedule": "step", "step_size": 1, "gamma": 0.5, "warmup_epochs": 1,
                "train_samples": 5, "val_samples": 5,  # one batch each: emulated kernels
                "monitor": "val_loss", "early_stop": 2,  # are slow
                "init_weights": str(tmp_path / "start.npz")}
    save_weights(settings["init_weights"], ThreeLayerConvNet(
        (3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, dropout=0.3, seed=7))
    full = Trainer(_model(), _data(), device="cuda", **settings)
    h = full.train()
    # val_loss rises from epoch 0 (random labels): early stopping ends the run after epoch 2
    assert h.lr == [0.025, 0.025, 0.05] and h.stopped_epoch == 2
    if graph:  # the captured step holds the smoothing and the clipping: the eager run's bits,
        # multiplying with gemm.cu as every step of a graphed run does (test_cuda_graph_fake)
        from gpucnn import primitives

        eager = Trainer(_model(), _data(), device="cuda", **{**settings, "cuda_graph": False})
        with primitives.for_array_module(sys.modules["cupy"]).gemm_kernels():
            _same_run((full, h), (eager, eager.train()))
    else:
        cpu = Trainer(_model(), _data(), device="cpu", **settings).train()
        np.testing.assert_allclose(h.loss, cpu.loss, rtol=1e-4)
    stopped = Trainer(_model(), _data(), device="cuda", checkpoint_dir=str(tmp_path), **settings)
    step = stopped._step

    def step_then_ctrl_c():  # a replayed step calls no Python of the model's: stop it here
        step()
        if stopped.iteration == 4:  # a replay in the second epoch
            signal.raise_signal(signal.SIGINT)

    stopped._step = step_then_ctrl_c
    with pytest.raises(TrainingInterrupted):
        stopped.train()
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), _model(), _data(),
                                      progress=False)
    assert (resumed._graph is not None) == graph
    _same_run((resumed, resumed.train()), (full, h))


def test_a_checkpoint_from_before_these_settings_resumes_as_the_run_went_on(data, tmp_path,
                                                                           monkeypatch):
    """Without the new settings, the schedule's state or a validation loss in its history, a
    checkpoint resumes with their defaults (lr_decay as the rate it ran) and ends as the run
    would have."""
    from gpucnn.train import checkpoint, trainer as trainer_module
    from gpucnn.train.resume import ADDED_LATER
    from gpucnn.train.schedule import SCHEDULE_KEYS

    full = Trainer(make_model(), data, **SETTINGS)
    full.train()
    Trainer(make_model(), data, checkpoint_dir=str(tmp_path), **{**SETTINGS, "epochs": 2}).train()
    load = checkpoint.load_checkpoint

    def older(path):
        arrays, meta = load(path)
        del meta["lr_schedule"]
        for k in (*ADDED_LATER, *SCHEDULE_KEYS, "early_stop", "init_weights"):
            del meta["config"][k]
        for k in ("val_loss", "notes", "stopped_epoch"):
            del meta["history"][k]
        return arrays, meta

    monkeypatch.setattr(trainer_module, "load_checkpoint", older)
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), make_model(), data,
                                      epochs=3)
    assert resumed.history.val_loss == [None] * 3 and resumed.lr_schedule.describe() == (
        "constant (lr_decay=0.9)")
    resumed.train()
    assert_same_run(full, resumed)
    assert resumed.history.val_loss[3] == full.history.val_loss[3]
