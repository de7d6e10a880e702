"""A run writes over nothing but its own files, decided in one place (gpucnn.train.folder) for
the command line and the Trainer: another run's folder, a checkpoint copied from another run,
a later checkpoint of the same run, an unwritable folder on resume; the output file of bench."""
import os

import numpy as np
import pytest

from gpucnn.cli import main
from gpucnn.models import ThreeLayerConvNet
from gpucnn.train import Trainer, load_weights
from gpucnn.train.folder import run_of

from strictness import TINY, one_error


def _snapshot(folder) -> dict:
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


@pytest.fixture
def two_runs(tmp_path, capsys):
    """Folders A and B, each a finished 'gpucnn train' run, of different models."""
    a, b = str(tmp_path / "A"), str(tmp_path / "B")
    assert main(["train", *TINY, "--output", a]) == 0
    assert main(["train", *TINY, "--hidden", "9", "--output", b]) == 0
    capsys.readouterr()
    return a, b


def test_every_result_file_names_its_run(two_runs):
    a, b = two_runs
    ids = {name: run_of(os.path.join(a, name))[0] for name in os.listdir(a)}
    assert set(ids) == {"checkpoint.npz", "weights.npz", "best.npz", "history.json",
                        "metrics.csv"}
    assert len(set(ids.values())) == 1 and None not in ids.values()
    assert run_of(os.path.join(b, "checkpoint.npz"))[0] != ids["checkpoint.npz"]
    assert load_weights(os.path.join(a, "weights.npz"))[1]["run_id"] == ids["weights.npz"]


def test_resuming_a_copy_of_another_run_leaves_this_folder_byte_identical(two_runs, capsys):
    a, b = two_runs
    with open(os.path.join(b, "checkpoint.npz"), "rb") as src, \
            open(os.path.join(a, "other.npz"), "wb") as dst:
        dst.write(src.read())
    before = _snapshot(a)
    assert main(["train", "--resume", os.path.join(a, "other.npz"), "--epochs", "3",
                 "--no-progress"]) == 1
    one_error(capsys, "holds another run (checkpoint.npz)", "another --output")
    assert _snapshot(a) == before
    elsewhere = os.path.join(os.path.dirname(a), "C")   # the way out the message names
    assert main(["train", "--resume", os.path.join(a, "other.npz"), "--epochs", "2",
                 "--no-progress", "--output", elsewhere]) == 0
    assert "writing to " + elsewhere in capsys.readouterr().out
    assert _snapshot(a) == before
    assert run_of(os.path.join(elsewhere, "weights.npz"))[0] == run_of(
        os.path.join(b, "checkpoint.npz"))[0]   # B's run, continued in C


def test_resuming_an_earlier_copy_of_the_same_run_keeps_the_later_checkpoint(two_runs, capsys):
    a, _ = two_runs
    early = os.path.join(a, "epoch1.npz")
    with open(os.path.join(a, "checkpoint.npz"), "rb") as src, open(early, "wb") as dst:
        dst.write(src.read())
    assert main(["train", "--resume", a, "--epochs", "2", "--no-progress"]) == 0
    capsys.readouterr()
    before = _snapshot(a)
    assert main(["train", "--resume", early, "--epochs", "3", "--no-progress"]) == 1
    one_error(capsys, "a later checkpoint of this run", "after iteration 4")
    assert _snapshot(a) == before


def test_bench_json_refuses_to_replace_a_file(two_runs, capsys, monkeypatch):
    from gpucnn.cli import bench

    a, _ = two_runs
    monkeypatch.setattr(bench, "bench_train", lambda *args: pytest.fail("benchmarked"))
    before = _snapshot(a)
    path = os.path.join(a, "checkpoint.npz")
    assert main(["bench", "--device", "cpu", "--json", path]) == 1
    one_error(capsys, f"--json={path}: exists; give --overwrite to replace it")
    assert _snapshot(a) == before


def test_resume_checks_the_folder_is_writable_before_training(two_runs, capsys, monkeypatch):
    import errno

    from gpucnn import files

    a, _ = two_runs

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(Trainer, "train", lambda self: pytest.fail("trained"))
    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert main(["train", "--resume", a, "--epochs", "2", "--no-progress"]) == 1
    one_error(capsys, f"--output={a}: not writable (Permission denied)")


# -- the same rules from Python ------------------------------------------------------------------
def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (60, 1, 8, 8)).astype(np.float32)
    y = np.arange(60) % 4
    return {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}


def _net(hidden=4):
    return ThreeLayerConvNet((1, 8, 8), filters=2, filter_size=3, hidden=hidden, num_classes=4,
                             seed=1)


SMALL = dict(batch_size=10, epochs=1, iterations_per_epoch=2, device="cpu", progress=False)


def test_trainer_refuses_a_folder_holding_another_run_as_the_cli_does(tmp_path):
    ck = str(tmp_path / "ck")
    Trainer(_net(), _data(), checkpoint_dir=ck, **SMALL).train()
    before = _snapshot(ck)
    with pytest.raises(ValueError, match=r"checkpoint_dir=.*ck: holds a previous run "
                                         r"\(checkpoint.npz\); give Trainer.from_checkpoint\(.*"
                                         r"overwrite=True to replace it"):
        Trainer(_net(), _data(), checkpoint_dir=ck, **SMALL).train()
    assert _snapshot(ck) == before
    replaced = Trainer(_net(), _data(), checkpoint_dir=ck, overwrite=True, **SMALL)
    replaced.train()
    assert run_of(os.path.join(ck, "checkpoint.npz"))[0] == replaced.run_id


def test_overwrite_deletes_the_other_runs_results_not_other_files(tmp_path):
    from gpucnn.train import save_results

    ck = tmp_path / "ck"
    first = Trainer(_net(), _data(), checkpoint_dir=str(ck), **SMALL)
    first.train()
    save_results(first, {"dataset": "tiny"})
    (ck / "notes.txt").write_text("mine")
    second = Trainer(_net(), _data(), checkpoint_dir=str(ck), overwrite=True, **SMALL)
    second.train()
    assert sorted(os.listdir(ck)) == ["checkpoint.npz", "metrics.csv", "notes.txt"]
    assert run_of(str(ck / "metrics.csv"))[0] == second.run_id


def test_from_checkpoint_a_folder_continues_and_refuses_what_the_cli_refuses(tmp_path):
    ck = str(tmp_path / "ck")
    Trainer(_net(), _data(), checkpoint_dir=ck, **SMALL).train()
    with pytest.raises(ValueError, match=r"epochs=1: .*checkpoint.npz is at epoch 1; expected "
                                         r"epochs above 1 to train on"):
        Trainer.from_checkpoint(ck, _net(), _data())   # would train nothing, silently
    with pytest.raises(ValueError, match=r"overwrite=True: not with a resume"):
        Trainer.from_checkpoint(ck, _net(), _data(), epochs=2, overwrite=True).train()
    t = Trainer.from_checkpoint(ck, _net(), _data(), epochs=2)
    assert t.train().epochs == 2


def test_trainer_refuses_a_batch_larger_than_the_training_set():
    with pytest.raises(ValueError, match=r"batch_size=41: expected at most the training-set "
                                         r"size, 40 samples"):
        Trainer(_net(), _data(), **{**SMALL, "batch_size": 41})


def test_trainer_checks_an_unwritable_folder_before_training(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    t = Trainer(_net(), _data(), checkpoint_dir=str(blocked / "ck"), **SMALL)
    with pytest.raises(ValueError, match=r"checkpoint_dir=.*: not writable: the folder cannot "
                                         r"be created \(.*file is a file\)"):
        t.train()
    assert t.history.val_acc == []   # nothing measured
