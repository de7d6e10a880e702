"""Reliability of the CLI: previous runs are never destroyed unasked, output paths are checked
before any work, file-system errors are one line, bad input is refused before training."""
import os

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
