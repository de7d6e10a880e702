"""Issue 24's rules on issue 26's settings: what depends on the data (a patience against the
epochs, augmentation against the samples, a resume early stopping already ended, weights for
other inputs) is refused in one line by the Trainer under its keyword and by 'gpucnn train'
under its flag, decided once in gpucnn.train.checks; the new files name their run, so nothing
overwrites another run's; other spellings of the new settings get a suggestion."""
import os

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.models import ThreeLayerConvNet, build_model
from gpucnn.train import Trainer, save_weights
from gpucnn.train.folder import plot_run_id, run_of
from strictness import TINY, one_error
from test_train import SETTINGS, data, make_model  # noqa: F401


def test_a_patience_the_run_cannot_use_up_is_refused(data, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^early_stop=3: expected fewer than epochs=3 \(the "
                                         r"run would end before it could stop early\)$"):
        Trainer(make_model(), data, **{**SETTINGS, "early_stop": 3})
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--early-stop", "1", "--output", out]) == 1
    one_error(capsys, "--early-stop=1: expected fewer than --epochs=1")
    assert not os.path.exists(out)


def test_augmentation_needs_images(data):
    flat = {k: v.reshape(len(v), -1) if k.startswith("X") else v for k, v in data.items()}
    net = build_model([{"type": "linear", "out_features": 4}], (64,), seed=0)
    with pytest.raises(ValueError, match=r"^augment=\['flip'\]: expected image data \(N, C, H, "
                                         r"W\) to augment; X_train has samples of shape \(64,\)"):
        Trainer(net, flat, **{**SETTINGS, "augment": ["flip"]})


def test_a_resume_early_stopping_would_end_at_once_is_refused(data, tmp_path, capsys):
    """Not only a run early stopping ended: one whose epochs since its best already reach the
    patience given on resume would stop before training a step."""
    ck = str(tmp_path / "ck")
    Trainer(make_model(), data, checkpoint_dir=ck, **{**SETTINGS, "optimizer": "sgd",
                                                      "optim_config": {"lr": 1e-12}}).train()
    with pytest.raises(ValueError, match=r"early_stop=2: .*checkpoint.npz is at epoch 3, its "
                                         r"best being epoch 0; expected early_stop above 3"):
        Trainer.from_checkpoint(ck, make_model(), data, epochs=6, early_stop=2)
    assert Trainer.from_checkpoint(ck, make_model(), data, epochs=5,
                                   early_stop=4).train().epochs == 4


def test_weights_for_other_inputs_are_refused_in_those_terms(data, tmp_path):
    path = str(tmp_path / "w.npz")
    save_weights(path, ThreeLayerConvNet((3, 8, 8), filters=4, filter_size=3, hidden=16),
                 {"dataset": "cifar-ish"})
    with pytest.raises(ValueError, match=rf"^init_weights={path}: does not fit the model: the "
                                         r"model takes 1x8x8 inputs, but the model of these "
                                         r"weights \(trained on cifar-ish\) is 3x8x8"):
        Trainer(make_model(), data, init_weights=path, **SETTINGS)
    with pytest.raises(ValueError, match=r"init_weights='.*': expected a file, found a folder"):
        Trainer(make_model(), data, init_weights=str(tmp_path), **SETTINGS)


def test_the_command_names_its_flags_for_weights_and_data_that_do_not_fit(tmp_path, capsys):
    first = str(tmp_path / "first")
    assert main(["train", *TINY, "--output", first]) == 0
    weights = os.path.join(first, "weights.npz")
    assert main(["train", *TINY, "--hidden", "9", "--init-weights", weights,
                 "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, f"--init-weights={weights}: does not fit the model: "
                      f"state_dict['net.4.weight']")
    dots = str(tmp_path / "dots.npz")   # one's own data of 1x1 images: too small to pool
    np.savez(dots, x_train=np.zeros((40, 1, 1, 1), np.uint8), y_train=np.arange(40) % 4)
    assert main(["train", *TINY, "--batch-size", "5", "--dataset", dots,
                 "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, f"--dataset={dots}: its samples are 1x1x1, and for the model layers[2] "
                      f"(maxpool2d): input shape")
    assert not os.path.exists(tmp_path / "r")


def test_a_new_rate_from_python_resumes_as_the_flag_does(data, tmp_path):
    ck = str(tmp_path / "ck")
    Trainer(make_model(), data, checkpoint_dir=ck, **{**SETTINGS, "epochs": 1}).train()
    t = Trainer.from_checkpoint(ck, make_model(), data, epochs=2, lr=0.01)
    assert t.optim_config["lr"] == 0.01 and t.optimizer.lr == 0.01
    assert t.history.notes[-1]["note"] == "resumed with lr 0.045 -> 0.01"  # after lr_decay 0.9


def test_metrics_and_plot_name_their_run_and_plot_replaces_only_its_own(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plot extra)")
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    rid = run_of(os.path.join(out, "checkpoint.npz"))[0]
    assert run_of(os.path.join(out, "metrics.csv"))[0] == rid
    assert main(["plot", out]) == 0 and main(["plot", out]) == 0   # its own plot: replaced
    assert plot_run_id(os.path.join(out, "curves.png")) == rid
    capsys.readouterr()
    weights = os.path.join(out, "weights.npz")
    _refused_keeping(capsys, ["plot", out, "--png", weights], weights,
                     f"--png={weights}: exists; give --overwrite to replace it")
    other = str(tmp_path / "other")   # another run's folder holding only this run's plot
    os.mkdir(other)
    os.replace(os.path.join(out, "curves.png"), os.path.join(other, "curves.png"))
    assert main(["train", *TINY, "--output", other]) == 1
    one_error(capsys, "holds a previous run (curves.png)")


def test_evaluate_keeps_a_report_of_other_weights_unless_asked(tmp_path, capsys):
    a, b, reports = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "reports")
    assert main(["train", *TINY, "--output", a]) == 0
    assert main(["train", *TINY, "--hidden", "9", "--output", b]) == 0
    assert main(["evaluate", a, "--output", reports]) == 0
    assert main(["evaluate", a, "--output", reports]) == 0         # the same weights again
    capsys.readouterr()
    report = os.path.join(reports, "weights.digits.test.json")
    _refused_keeping(capsys, ["evaluate", b, "--output", reports], report,
                     f"--output={report}: exists; give --overwrite")
    assert main(["evaluate", b, "--output", reports, "--overwrite"]) == 0


def _refused_keeping(capsys, argv, path, message):
    """The command ``argv`` is refused in one line holding ``message``; ``path`` is kept."""
    before = open(path, "rb").read()
    assert main(argv) == 1
    one_error(capsys, message)
    assert open(path, "rb").read() == before


@pytest.mark.parametrize("key, hint", [("scheduler", "schedule"), ("patience", "early_stop"),
                                       ("max_grad_norm", "clip_grad_norm"),
                                       ("wd", "weight_decay"), ("augmentation", "augment")])
def test_other_spellings_of_the_new_settings_get_a_suggestion(tmp_path, capsys, key, hint):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f"{key} = 1\n")
    assert main(["train", *TINY, "--config", str(cfg), "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, f"unknown setting {key!r} (did you mean {hint!r}?)")
