"""The command line of the training features: schedules, augmentation and the rest as flags and
TOML keys, resume with a new rate, fine-tuning from weights, evaluate's per-class report and
files, and ``gpucnn plot``."""
import json
import os
import sys

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.train import checkpoint

TINY = ["--device", "cpu", "--no-progress", "--epochs", "2", "--iterations-per-epoch", "3",
        "--filters", "2", "--hidden", "8", "--train-samples", "50"]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_flags_and_toml_set_the_features_and_the_checkpoint_records_them(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('schedule = "multistep"\nmilestones = [1]\ngamma = 0.5\naugment = ["flip"]\n'
                   'optimizer = "adamw"\nweight_decay = 0.02\n')
    out = tmp_path / "run"
    assert main(["train", *TINY, "--config", str(cfg), "--label-smoothing", "0.1",
                 "--clip-grad-norm", "1", "--warmup-epochs", "1", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("learning rate: multistep (milestones=[1], gamma=0.5, warmup_epochs=1); "
            "label_smoothing=0.1; clip_grad_norm=1.0; augment=flip") in printed
    saved = checkpoint.load_checkpoint(str(out / "checkpoint.npz"))[1]
    c = saved["config"]
    assert (c["schedule"], c["milestones"], c["augment"], c["optim_config"]["weight_decay"]) == (
        "multistep", [1], ["flip"], 0.02)
    assert saved["history"]["lr"] == [0.0015, 0.0015, 0.003]
    assert (out / "metrics.csv").read_text().startswith(
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,run_id\n0,,")


@pytest.mark.parametrize("argv, message", [
    (["--step-size", "2"], "--step-size=2: only with --schedule step, not constant"),
    (["--schedule", "step"], "--schedule=step: needs --step-size"),
    (["--crop-pad", "2", "--augment", "flip"], "--crop-pad=2: only with crop in --augment"),
    (["--weight-decay", "0.1"], "--weight-decay=0.1: only with --optimizer adamw, not adam"),
    (["--augment", "flip,blur"], "--augment=['flip', 'blur']: expected some of flip, crop"),
    (["--milestones", "3,2", "--schedule", "multistep"], "--milestones=[3, 2]: expected "
                                                         "increasing epochs"),
    (["--init-weights", "nope.npz"], "--init-weights='nope.npz': no such file"),
])
def test_bad_combinations_are_one_line_naming_the_flags(tmp_path, capsys, argv, message):
    assert main(["train", *TINY, "--output", str(tmp_path / "r"), *argv]) == 1
    assert message in _err(capsys)


def test_resume_takes_a_new_rate_and_schedule_and_says_so(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out, "--lr", "0.01", "--lr-decay", "0.5"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", out, "--epochs", "4", "--lr", "0.02", "--schedule",
                 "step", "--step-size", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert ("resumed with lr 0.0025 -> 0.02; schedule constant (lr_decay=0.5) -> step "
            "(step_size=1, gamma=0.1)" in printed)
    history = json.loads(open(os.path.join(out, "history.json")).read())
    assert history["lr"] == [0.01, 0.01, 0.005, 0.02, 0.002]
    assert history["notes"][0]["epoch"] == 2
    assert main(["train", "--resume", out, "--epochs", "5", "--batch-size", "3"]) == 1
    assert "only --epochs, --device, --data-dir, --cuda-graph, --early-stop, --lr" in _err(capsys)


def test_init_weights_fine_tunes_and_early_stop_ends_with_the_best(tmp_path, capsys):
    first = str(tmp_path / "first")
    assert main(["train", *TINY, "--output", first]) == 0
    out = str(tmp_path / "tuned")
    assert main(["train", *TINY, "--output", out, "--init-weights",
                 os.path.join(first, "weights.npz"), "--epochs", "6", "--lr", "1e-9",
                 "--optimizer", "sgd", "--early-stop", "1"]) == 0
    printed = capsys.readouterr().out
    assert "stopped early after epoch 1: val_acc has not improved for 1 epochs" in printed
    start = checkpoint.load_npz(os.path.join(first, "weights.npz"), "weights")[0]
    final, meta = checkpoint.load_npz(os.path.join(out, "weights.npz"), "weights")
    best = checkpoint.load_npz(os.path.join(out, "best.npz"), "weights")[1]
    assert meta["info"]["epoch"] == 0 == best["info"]["epoch"]  # what the file holds
    assert meta["info"]["val_acc"] == best["info"]["val_acc"]
    for k, v in start.items():  # lr 1e-9: the weights it started from, to float32 rounding
        np.testing.assert_allclose(final[k], v, rtol=1e-6, atol=1e-8)
    assert main(["train", "--resume", out, "--epochs", "8", "--no-progress"]) == 1
    assert ("stopped early at epoch 1, its best being epoch 0; expected --early-stop above 1 "
            "to train on") in _err(capsys)
    three = str(tmp_path / "three")
    assert main(["train", *TINY, "--output", three, "--filters", "3", "--init-weights",
                 os.path.join(first, "weights.npz")]) == 1
    assert "does not fit the model: state_dict['net.0.weight'].shape=(2, 1, 3, 3): expected " \
           "(3, 1, 3, 3)" in _err(capsys)


def test_evaluate_prints_and_saves_per_class_accuracy_confusion_and_top_k(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--split", "val", "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(open(os.path.join(out, "weights.digits.val.json")).read())
    confusion = np.array(saved["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == saved["samples"] == 180
    assert saved["accuracy"] == np.trace(confusion) / 180 <= saved["top_k_accuracy"]
    assert saved["per_class_accuracy"][3] == confusion[3, 3] / confusion[3].sum()
    assert f"accuracy {saved['accuracy']:.4f} on digits val" in printed
    assert f"top-3 {saved['top_k_accuracy']:.4f}" in printed and "confusion matrix" in printed
    rows = open(os.path.join(out, "weights.digits.val.confusion.csv")).read().splitlines()
    assert rows[0].startswith("true \\ predicted,0,1") and len(rows) == 11


def test_plot_draws_a_runs_curves_or_says_what_is_missing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--output", str(out)]) == 0
    capsys.readouterr()
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plot extra)")
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["plot", str(out), "--png", str(tmp_path / "x.png")]) == 1
    assert "matplotlib is not installed: pip install 'gpucnn[plot]'" in _err(capsys)
    monkeypatch.undo()
    assert main(["plot", str(tmp_path)]) == 1
    assert "expected a run folder written by 'gpucnn train'" in _err(capsys)
