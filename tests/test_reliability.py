"""Reliability of the CLI: previous runs are never destroyed unasked, output paths are checked
before any work, file-system errors are one line, bad input is refused before training."""
import os

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.train import checkpoint

# A few updates of a tiny net on the embedded digits.
TINY = ["--device", "cpu", "--no-progress", "--epochs", "1", "--iterations-per-epoch", "2",
        "--filters", "2", "--hidden", "8"]


def test_train_refuses_a_folder_holding_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    before = checkpoint.load_npz(os.path.join(out, "checkpoint.npz"), "checkpoint")[1]
    capsys.readouterr()
    assert main(["train", *TINY, "--output", out]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err
    after = checkpoint.load_npz(os.path.join(out, "checkpoint.npz"), "checkpoint")[1]
    assert after["iteration"] == before["iteration"] == 2   # not reset to epoch 0
    assert main(["train", *TINY, "--output", out, "--overwrite"]) == 0


@pytest.mark.parametrize("where", ["/dev/null/x", "file"])
def test_train_impossible_output_is_one_line_before_training(tmp_path, capsys, where):
    path = str(tmp_path / "f") if where == "file" else where
    if where == "file":
        open(path, "w").close()
    assert main(["train", *TINY, "--output", path]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"gpucnn train: error: --output={path}") and err.count("\n") == 1
    assert "epoch" not in out   # nothing trained


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_read_only_output_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["train", *TINY, "--output", str(ro / "run")]) == 1
    finally:
        ro.chmod(0o700)
    assert "--output=" in capsys.readouterr().err


# The experiments on a tiny net: seconds.
EXP = ["--epochs", "1", "--iterations-per-epoch", "2", "--batch-size", "10", "--filters", "2",
       "--hidden", "8", "--filter-size", "3", "--train-samples", "20", "--device", "cpu",
       "--no-progress"]


def test_sweep_checks_every_value_before_the_first_run(tmp_path, capsys, monkeypatch):
    from gpucnn.experiments import common

    trained = []
    monkeypatch.setattr(common.Trainer, "train", lambda self: trained.append(1))
    code = main(["experiment", "sweep", "--param", "dropout", "--values", "0.2,1.0", *EXP,
                 "--output", str(tmp_path / "s")])
    assert code == 1 and trained == []
    assert "--values dropout=1.0: expected a drop probability" in capsys.readouterr().err


def test_sweep_keeps_each_run_when_a_later_step_fails(tmp_path, capsys, monkeypatch):
    from gpucnn.experiments import sweep_report

    out = tmp_path / "s"
    args = ["experiment", "sweep", "--param", "hidden", "--values", "4,8", *EXP, "--seeds", "1",
            "--workers", "1", "--output", str(out)]

    def fail(*a):  # after every run, before the report: the runs must be on disk already
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep_report, "summarise", fail)
    assert main(args) == 1
    assert sorted(os.listdir(out / "runs")) == ["n200_base_seed0.json", "n200_hidden4_seed0.json"]
    monkeypatch.undo()
    capsys.readouterr()
    assert main(args) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0           # the old spelling of --fresh
    assert "already finished" not in capsys.readouterr().out


@pytest.mark.parametrize("cmd", [["sanity", "--subset", "20"], ["sweep", "--param", "hidden",
                                                                "--values", "4"]])
def test_experiment_output_checked_before_training(tmp_path, capsys, monkeypatch, cmd):
    from gpucnn.experiments import common

    trained = []
    monkeypatch.setattr(common.Trainer, "train", lambda self: trained.append(1))
    assert main(["experiment", *cmd, *EXP, "--output", "/dev/null/x"]) == 1
    assert trained == [] and "--output=/dev/null/x" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{}")
    assert main(["experiment", *cmd, *EXP, "--output", str(tmp_path)]) == 1
    assert trained == [] and "did not record (results.json)" in capsys.readouterr().err


def _cli(*args, **kw):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "gpucnn.cli", *args], text=True, **kw)


def test_sigterm_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    import signal
    import subprocess

    out = str(tmp_path / "run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = _cli("train", *TINY[:3], "--epochs", "1000", "--iterations-per-epoch", "1000",
             "--filters", "2", "--hidden", "8", "--output", out, stdout=subprocess.PIPE,
             stderr=subprocess.PIPE, env=env)
    for line in p.stdout:  # the first row: epoch 0 is measured and its checkpoint written
        if line.lstrip().startswith("0 "):
            break
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err   # 128 + SIGTERM, as a shell reports it
    assert f"resume with: gpucnn train --resume {out}/checkpoint.npz" in err
    assert "Traceback" not in err
    meta = checkpoint.load_npz(f"{out}/checkpoint.npz", "checkpoint")[1]
    assert meta["iteration"] >= 0 and meta["history"]["val_acc"]


def test_closed_stdout_pipe_exits_without_a_traceback(tmp_path):
    import subprocess

    p = _cli("train", *TINY, "--output", str(tmp_path / "run"), stdout=subprocess.PIPE,
             stderr=subprocess.PIPE)
    p.stdout.close()  # like 'gpucnn train | head -1' once head has exited
    err = p.stderr.read()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode == 141


def test_bogus_flag_after_a_subcommand_shows_its_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "sweep", "--bogus-flag"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: gpucnn experiment sweep") and "--bogus-flag" in err


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_good_one(
        tmp_path, capsys, monkeypatch):
    import errno

    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    good = open(os.path.join(out, "checkpoint.npz"), "rb").read()

    def full(path, arrays, meta):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_npz", full)
    capsys.readouterr()
    assert main(["train", "--resume", out, "--epochs", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert "previous checkpoint there is intact" in err
    assert open(os.path.join(out, "checkpoint.npz"), "rb").read() == good


def test_bench_json_path_checked_before_benchmarking(capsys, monkeypatch):
    from gpucnn.cli import bench

    monkeypatch.setattr(bench, "bench_train", lambda *a: pytest.fail("benchmarked"))
    assert main(["bench", "--device", "cpu", "--json", "/dev/null/x.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpucnn bench: error: --json=/dev/null/x.json") and err.count("\n") == 1


def test_huge_layer_is_one_line_with_the_memory_it_needs(tmp_path, capsys):
    assert main(["train", *TINY, "--hidden", "100000000000", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unable to allocate" in err and "TiB" in err


def _one_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for n in needles:
        assert n in err, err


def test_evaluate_refuses_weights_holding_nan(tmp_path, capsys):
    import numpy as np

    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import save_weights

    model = ThreeLayerConvNet((1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, seed=1)
    params = model.state_dict()
    name = sorted(params)[0]
    params[name] = np.full_like(params[name], np.nan)
    model.load_state_dict(params)
    path = str(tmp_path / "weights.npz")
    save_weights(path, model, {"dataset": "digits"})
    assert main(["evaluate", path]) == 1
    _one_error(capsys, f"parameter {name} holds NaN")


def test_receptive_field_refuses_kernel_or_stride_zero(capsys):
    assert main(["receptive-field", "conv:0"]) == 1
    _one_error(capsys, "kernel 0")
    assert main(["receptive-field", "conv:3:0"]) == 1
    _one_error(capsys, "stride 0")


def test_resume_refuses_epochs_not_above_the_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY[:3], "--epochs", "2", "--iterations-per-epoch", "2",
                 "--filters", "2", "--hidden", "8", "--output", out]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", out, "--epochs", "1", "--no-progress"]) == 1
    _one_error(capsys, "--epochs=1", "at epoch 2", "above 2")
    assert main(["train", "--resume", out, "--no-progress"]) == 1   # a finished run
    _one_error(capsys, "--epochs=2")
    assert main(["train", "--resume", out, "--epochs", "3", "--seed", "3"]) == 1
    _one_error(capsys, "--seed", "keeps its checkpoint's settings")


def test_three_layer_flags_refused_with_a_model_file(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text('[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "linear"\n'
                    'out_features = 10\n')
    assert main(["train", "--model", str(spec), "--filters", "4", "--dropout", "0.5",
                 "--output", str(tmp_path / "r")]) == 1
    _one_error(capsys, "--filters, --dropout: only for --model three-layer")


def test_batch_larger_than_the_training_set_is_refused(tmp_path, capsys):
    assert main(["train", *TINY, "--batch-size", "100000", "--output", str(tmp_path)]) == 1
    _one_error(capsys, "--batch-size=100000", "samples")


def _tiny_data(n_classes=4):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (60, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, n_classes, 60)
    y[:n_classes] = np.arange(n_classes)
    return {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}


def _net(**kw):
    from gpucnn.models import ThreeLayerConvNet

    return ThreeLayerConvNet((1, 8, 8), **{"num_filters": 2, "filter_size": 3, "hidden_dim": 4,
                                           "num_classes": 4, "seed": 1, **kw})


SMALL = dict(batch_size=10, epochs=1, iterations_per_epoch=2, device="cpu", progress=False)


def test_trainer_refuses_a_model_with_too_few_outputs():
    from gpucnn.train import Trainer

    with pytest.raises(ValueError, match=r"y_train\[\d+\]=3: expected a class label in \[0, 2\]: "
                                         r"the model's last layer has 3 outputs"):
        Trainer(_net(num_classes=3), _tiny_data(), **SMALL)


def test_resume_refuses_another_model_or_another_data_split(tmp_path):
    import numpy as np

    from gpucnn.train import Trainer

    data = _tiny_data()
    Trainer(_net(dropout=0.3), data, checkpoint_dir=str(tmp_path), **SMALL).train()
    path = str(tmp_path / "checkpoint.npz")
    with pytest.raises(ValueError, match=r"model differs: layers: \[3\] p: 0.3 in the "
                                         r"checkpoint, 0.0 here"):
        Trainer(_net(), data, **SMALL).resume(path)
    other = {**data, "X_train": np.ascontiguousarray(data["X_train"][::-1])}
    with pytest.raises(ValueError, match="data_checksum"):
        Trainer.from_checkpoint(path, _net(dropout=0.3), other, epochs=2)
    # What only shaped the initial parameters may differ: they come from the file.
    Trainer.from_checkpoint(path, _net(dropout=0.3, seed=9, weight_scale=0.1), data, epochs=2)


def test_random_bytes_npz_is_not_a_gpucnn_file(tmp_path, capsys):
    bad = tmp_path / "r.npz"
    bad.write_bytes(os.urandom(4096))
    assert main(["evaluate", str(bad)]) == 1
    _one_error(capsys, "not a gpucnn weights file")
    assert main(["train", "--resume", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not a gpucnn checkpoint file" in err and "allow_pickle" not in err


def test_pickled_npz_is_not_a_gpucnn_file(tmp_path, capsys):
    import numpy as np

    bad = str(tmp_path / "p.npz")
    np.savez(bad, x=np.array([{"a": 1}], dtype=object))
    assert main(["evaluate", bad]) == 1
    _one_error(capsys, "not a gpucnn weights file (it holds pickled objects)")


def test_evaluate_takes_a_run_folder_or_its_checkpoint(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    capsys.readouterr()
    monkeypatch.setenv("GPUCNN_DEVICE", "bogus")   # honoured: refused like train refuses it
    assert main(["evaluate", out]) == 1
    _one_error(capsys, "GPUCNN_DEVICE='bogus'")
    monkeypatch.setenv("GPUCNN_DEVICE", "cpu")
    accuracies = []
    for path in (out, os.path.join(out, "checkpoint.npz"), os.path.join(out, "weights.npz")):
        assert main(["evaluate", path, "--split", "val"]) == 0
        accuracies.append(capsys.readouterr().out.split("accuracy ")[1].split()[0])
    assert len(set(accuracies)) == 1   # the final weights are the last checkpoint's


def test_bogus_device_variable_is_refused_by_info(capsys, monkeypatch):
    monkeypatch.setenv("GPUCNN_DEVICE", "bogus")
    assert main(["info"]) == 1
    _one_error(capsys, "GPUCNN_DEVICE='bogus'")


def test_best_epoch_weights_saved_beside_the_final_ones_and_header_on_resume(tmp_path, capsys):
    from gpucnn.train import load_weights

    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--output", out]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"{out}/best.npz" in last and f"final weights (epoch 1): {out}/weights.npz" in last
    model, info = load_weights(os.path.join(out, "best.npz"))
    assert info["epoch"] in (0, 1) and 0 <= info["val_acc"] <= 1
    assert main(["train", "--resume", out, "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "epoch      loss  train acc  val loss  val acc         lr  seconds" in printed


def test_bench_prints_each_result_as_it_comes(capsys, monkeypatch):
    from gpucnn.cli import bench

    def stop(*a):
        raise RuntimeError("stopped after the training rows")

    monkeypatch.setattr(bench, "bench_ops", stop)
    assert main(["bench", "--device", "cpu", "--configs", "a2x8,b2x8", "--reps", "1",
                 "--warmup", "0", "--parts", "train,ops", "--no-memory", "--no-torch"]) == 1
    out = capsys.readouterr().out
    assert "(a) b2 8px" in out and "(b) b2 8px" in out   # on screen before the failure


def test_overwrite_with_resume_is_refused(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--overwrite"]) == 1
    _one_error(capsys, "--overwrite: not with a resume")


def test_trainer_refuses_negative_labels_before_training():
    from gpucnn.models import ThreeLayerConvNet
    from gpucnn.train import Trainer

    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((20, 1, 8, 8)).astype(np.float32),
            "y_train": np.r_[np.arange(19) % 10, -1], "X_val": np.zeros((4, 1, 8, 8), np.float32),
            "y_val": np.arange(4)}
    model = ThreeLayerConvNet((1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, seed=0)
    with pytest.raises(ValueError, match=r"y_train\[19\]=-1: expected a class label >= 0"):
        Trainer(model, data, device="cpu", progress=False)
