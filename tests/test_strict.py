"""Every case of issue 24 ends in success or one line naming the problem: the Python API as
strict as the command line (shared checks), paths checked before any work, what used to be a
traceback, and shutdown (a diverging run, a second Ctrl-C, a closed pipe)."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import gpucnn
from gpucnn.cli import main
from gpucnn.models import ThreeLayerConvNet
from gpucnn.train import Trainer, TrainingInterrupted, load_weights, save_weights

from strictness import TINY, one_error, small_net


def test_weights_of_any_module_round_trip_and_paths_are_checked(tmp_path):
    net = small_net()
    path = str(tmp_path / "w.npz")
    save_weights(path, net, {"note": "a Sequential, as the README builds it"})
    with pytest.raises(ValueError, match="holds no model config.*load_weights\\(path, model\\)"):
        load_weights(path)
    other = small_net()
    _, info = load_weights(path, other)
    assert info == {"note": "a Sequential, as the README builds it"}
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, other.state_dict()[k])
    with pytest.raises(ValueError, match=f"path={tmp_path}: expected a file name, found a folder"):
        save_weights(str(tmp_path), net)
    with pytest.raises(TypeError, match="info: expected JSON-able values"):
        save_weights(path, net, {"acc": np.float32(1)})
    with pytest.raises(TypeError, match="model: expected a gpucnn.nn.Module, got dict"):
        save_weights(path, {"w": 1})
    with pytest.raises(ValueError, match=f"{tmp_path}: expected a gpucnn weights file, found a "
                                         f"folder"):
        load_weights(str(tmp_path))


def test_the_trainer_names_a_label_the_model_cannot_score():
    data = {"X_train": np.zeros((20, 1, 8, 8), np.float32), "y_train": np.r_[np.arange(19) % 10, 10],
            "X_val": np.zeros((4, 1, 8, 8), np.float32), "y_val": np.arange(4)}
    model = ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3, hidden=4, seed=0)
    with pytest.raises(ValueError, match=r"y_train\[19\]=10: expected a class label in \[0, 9\]"):
        Trainer(model, data, device="cpu", progress=False)


def test_the_trainer_refuses_a_bare_network_before_training():
    data = {"X_train": np.zeros((20, 1, 8, 8), np.float32), "y_train": np.arange(20) % 10,
            "X_val": np.zeros((4, 1, 8, 8), np.float32), "y_val": np.arange(4)}
    with pytest.raises(TypeError, match=r"model: expected a classifier such as "
                                        r"gpucnn.models.Classifier\(net\), got a Sequential "
                                        r"without loss, weight_decay, predict\(\)"):
        Trainer(small_net(), data, device="cpu")
    with pytest.raises(TypeError, match=r"state_dict\['0.weight'\]: expected an array, got list"):
        small_net().load_state_dict({**small_net().state_dict(), "0.weight": [1.0]})


def test_a_model_built_for_other_inputs_is_named_in_the_users_terms(tmp_path, capsys):
    model = ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3, hidden=4, seed=0)
    data = {"X_train": np.zeros((20, 3, 32, 32), np.float32), "y_train": np.arange(20) % 10,
            "X_val": np.zeros((4, 3, 32, 32), np.float32), "y_val": np.arange(4)}
    with pytest.raises(ValueError, match="the model takes 1x8x8 inputs, but X_train is 3x32x32"):
        Trainer(model, data, device="cpu", progress=False)
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--dataset", "synthetic"]) == 1
    one_error(capsys, "the model takes 1x8x8 inputs, trained on digits, but synthetic (test "
                       "split) is 3x32x32")


def test_model_files_name_the_file_and_the_option(tmp_path, capsys):
    binary, spec = tmp_path / "net.toml", tmp_path / "spec.toml"
    binary.write_bytes(bytes(range(256)))
    spec.write_text('epochs = 3\n[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "linear"\n'
                    'out_features = 10\n')
    for path, needle in ((binary, "not a TOML file"), (spec, "unknown top-level key 'epochs'"),
                         (tmp_path / "missing.toml", "no such file"),
                         (tmp_path, "expected a TOML file, found a folder")):
        assert main(["train", "--model", str(path), "--output", str(tmp_path / "r")]) == 1
        one_error(capsys, f"--model {path}: {needle}")
        assert main(["train", "--config", str(path), "--output", str(tmp_path / "r")]) == 1
        one_error(capsys, f"--config {path}: ")
    assert not os.path.exists(tmp_path / "r")


def test_a_layer_too_large_for_memory_is_named(tmp_path, capsys):
    assert main(["train", *TINY, "--hidden", "100000000000", "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, "layers[4] (linear) does not fit in memory: Unable to allocate")


def test_visualize_filters_writes_the_file_it_names(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    capsys.readouterr()
    weights = os.path.join(out, "weights.npz")
    assert main(["visualize-filters", weights, "--output", str(tmp_path / "adir")]) == 1
    one_error(capsys, "expected a file name ending in .png, .pdf, .svg")
    pdf = str(tmp_path / "f.pdf")
    assert main(["visualize-filters", weights, "--output", pdf]) == 0
    assert capsys.readouterr().out == f"wrote {pdf}\n" and open(pdf, "rb").read(4) == b"%PDF"
    assert main(["visualize-filters", weights, "--output", pdf]) == 1
    one_error(capsys, "exists; give --overwrite to replace it")
    assert sorted(os.listdir(tmp_path)) == ["f.pdf", "run"]


def test_the_trainer_takes_the_optimizer_settings_by_the_flags_names():
    a = ThreeLayerConvNet((1, 8, 8), filters=3, filter_size=3, hidden=5, seed=0)
    data = {"X_train": np.zeros((20, 1, 8, 8), np.float32), "y_train": np.arange(20) % 10,
            "X_val": np.zeros((4, 1, 8, 8), np.float32), "y_val": np.arange(4)}
    t = Trainer(a, data, lr=0.1, lr_decay=0.5, device="cpu", progress=False, batch_size=10)
    assert t.optim_config == {"lr": 0.1, "lr_decay": 0.5} and t.optimizer.lr == 0.1
    with pytest.raises(ValueError, match="lr: given both as a keyword and in optim_config"):
        Trainer(a, data, lr=0.1, optim_config={"lr": 0.2}, device="cpu", batch_size=10)
    with pytest.raises(ValueError, match=r"lr=0: expected a number in \(0, inf\)"):
        Trainer(a, data, lr=0, device="cpu", batch_size=10)   # as --lr=0 is refused


def test_a_diverging_run_prints_no_numpy_warnings(tmp_path, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a RuntimeWarning would fail the command
        assert main(["train", *TINY[:5], "--iterations-per-epoch", "20", "--optimizer", "sgd",
                     "--lr", "1e6", "--output", str(tmp_path / "r")]) == 1
    one_error(capsys, "training diverged")


def test_a_second_ctrl_c_keeps_the_resume_hint(tmp_path):
    data = {"X_train": np.zeros((40, 1, 8, 8), np.float32), "y_train": np.arange(40) % 10,
            "X_val": np.zeros((4, 1, 8, 8), np.float32), "y_val": np.arange(4)}
    model = ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3, hidden=4, seed=0)
    loss, calls = model.loss, []

    def twice(X, y=None, **options):  # Ctrl-C, then Ctrl-C again within the same step
        if y is not None:
            calls.append(1)
            if len(calls) == 3:
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
        return loss(X, y, **options)

    model.loss = twice
    t = Trainer(model, data, checkpoint_dir=str(tmp_path), device="cpu", progress=False,
                batch_size=10, epochs=2)
    with pytest.raises(TrainingInterrupted, match=r"stopped at once.*after iteration 0.*"
                                                  r"Trainer.from_checkpoint") as e:
        t.train()
    assert e.value.checkpoint == str(tmp_path / "checkpoint.npz") and e.value.iteration == 0
    assert Trainer.from_checkpoint(e.value.checkpoint, ThreeLayerConvNet(
        (1, 8, 8), filters=2, filter_size=3, hidden=4), data).iteration == 0


def _cli(*args, **kw):
    root = os.path.dirname(os.path.dirname(gpucnn.__file__))
    env_ = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": root}
    return subprocess.Popen([sys.executable, "-m", "gpucnn.cli", *args], text=True, env=env_,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_a_pipe_closed_before_training_leaves_no_output_folder(tmp_path):
    out = tmp_path / "run"
    p = _cli("train", *TINY, "--output", str(out))
    p.stdout.close()  # like 'gpucnn train | head -1' once head has exited
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 141 and "Traceback" not in err, err
    assert not out.exists()


def test_a_pipe_closed_during_training_stops_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    p = _cli("train", *TINY[:3], "--epochs", "1000", "--iterations-per-epoch", "3", "--filters",
             "2", "--hidden", "8", "--output", str(out))
    for line in p.stdout:  # the epoch-0 row: the next row finds nobody reading
        if line.lstrip().startswith("0 "):
            break
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 141 and "Traceback" not in err, err
    assert "stopped: the output was closed" in err and f"--resume {out}/checkpoint.npz" in err
    from gpucnn.train.checkpoint import load_checkpoint

    meta = load_checkpoint(str(out / "checkpoint.npz"))[1]
    assert meta["iteration"] >= 3 and meta["iteration"] % 3 == 0   # stopped at an epoch's start
