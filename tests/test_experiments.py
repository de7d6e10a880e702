"""The experiments on tiny settings: reproduce, sanity, sweep, visualize-filters, their reports."""
import builtins
import json
import math
import os

import numpy as np
import pytest

from gpucnn import plots
from gpucnn.cli import main
from gpucnn.experiments import conclude, make_settings
from gpucnn.experiments.studies import LN10

# A few updates of a tiny net: seconds, not minutes.
TINY = ["--epochs", "1", "--iterations-per-epoch", "3", "--batch-size", "10", "--filters", "2",
        "--hidden", "8", "--train-samples", "50", "--device", "cpu", "--no-progress"]


def read(path):
    with open(path) as fh:
        return fh.read()


@pytest.fixture
def has_matplotlib():
    pytest.importorskip("matplotlib")


def test_reproduce_writes_tables_report_and_plots(tmp_path, capsys, has_matplotlib):
    out = tmp_path / "rep"
    assert main(["reproduce", *TINY, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Accuracy for reg = 0.01 and dropout rate = 0.4" in printed
    assert "Epoch\t0\t1\nTraining\t" in printed
    result = json.loads(read(out / "results.json"))
    assert [r["settings"]["reg"] for r in result["runs"]] == [0.0, 0.01, 0.01]
    assert [r["settings"]["dropout"] for r in result["runs"]] == [0.0, 0.0, 0.4]
    for run in result["runs"]:
        assert len(run["train_acc"]) == len(run["val_acc"]) == 2  # epoch 0 and epoch 1
        assert len(run["loss"]) == 3
    report = read(out / "report.md")
    assert "| Training |" in report and "## Conclusion" in report and "Against seed 000" in report
    assert result["conclusion"]["text"][0] in report
    rows = read(out / "results.csv").splitlines()
    assert rows[0] == "run,reg,dropout,epoch,train_acc,val_acc,epoch_loss"
    assert len(rows) == 1 + 3 * 2
    for png in ("accuracy.png", "loss.png"):
        assert read_png_size(out / png) > (200, 200)


def read_png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def fake_run(reg, dropout, train, val, n=1000):
    return {"label": f"reg={reg:g}, dropout={dropout:g}", "settings": {"reg": reg, "dropout": dropout},
            "train_acc": [0.1, train], "val_acc": [0.1, val], "num_train_eval": n, "num_val": n}


@pytest.mark.parametrize("drop_val, verdict, seed_word", [
    (0.70, "widened", "differs"),     # dropout gap 0.25 > 0.10
    (0.89, "narrowed", "agrees"),     # dropout gap 0.06 < 0.10
    (0.855, "little", "differs"),     # gap 0.095: within noise of 0.10
])
def test_conclusion_follows_the_numbers(drop_val, verdict, seed_word):
    runs = [fake_run(0, 0, 0.95, 0.85), fake_run(0.01, 0, 0.95, 0.85),
            fake_run(0.01, 0.4, 0.95, drop_val)]
    c = conclude(runs)
    assert [x["verdict"] for x in c["dropout"]] == [verdict]
    assert c["l2"][0]["verdict"] == "little" and c["l2"][0]["change"] == pytest.approx(0)
    assert c["text"][0].startswith("The unregularised run overfits: its final gap +0.1000")
    dropout_text = c["text"][2]
    assert dropout_text.startswith("Dropout")
    assert ("narrowed" in dropout_text) == (verdict == "narrowed")
    assert ("widened" in dropout_text) == (verdict == "widened")
    assert f"{0.95 - drop_val:+.4f}" in dropout_text
    assert f"\"dropout narrows the gap\": {seed_word}" in c["seed"][1]


def test_conclusion_threshold_grows_with_smaller_evaluation_sets():
    big = conclude([fake_run(0, 0, 0.95, 0.85, 5000), fake_run(0.01, 0, 0.95, 0.80, 5000)])
    small = conclude([fake_run(0, 0, 0.95, 0.85, 50), fake_run(0.01, 0, 0.95, 0.80, 50)])
    assert big["l2"][0]["verdict"] == "widened"
    assert small["l2"][0]["verdict"] == "little"
    assert small["l2"][0]["threshold"] > big["l2"][0]["threshold"]


def test_conclusion_says_what_a_grid_cannot_show():
    c = conclude([fake_run(0.01, 0.4, 0.9, 0.8)])
    assert c["l2"] == [] and c["dropout"] == []
    assert "no statement on L2" in c["text"][0] and "no statement on dropout" in c["text"][1]
    assert all("not tested" in s for s in c["seed"])


def test_conclusion_says_when_there_is_no_gap_to_close():
    c = conclude([fake_run(0, 0, 0.99, 0.985), fake_run(0, 0.5, 0.98, 0.98)])
    assert c["text"][0].startswith("The unregularised run barely overfits: its final gap +0.0050")


def test_toml_config_and_flag_priority(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('epochs = 2\nhidden = 8\nlr = 0.01\ngrid = [[0, 0], [0.1, 0.5]]\n')
    s = make_settings({}, str(cfg), {"epochs": 5, "lr": None})
    assert (s.epochs, s.hidden, s.lr) == (5, 8, 0.01)   # flag > file > dataset default
    assert s.grid == [[0.0, 0.0], [0.1, 0.5]]
    assert (s.filters, s.filter_size) == (16, 3)          # digits' model
    cfg.write_text("epoch = 2\n")
    with pytest.raises(ValueError, match=r"unknown setting 'epoch'"):
        make_settings({}, str(cfg), {})
    cfg.write_text("grid = [[0, 1.0]]\n")
    with pytest.raises(ValueError, match=r"grid\[0\] dropout=1.0: expected a drop probability"):
        make_settings({}, str(cfg), {})


def test_reproduce_uses_the_config_file(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text("grid = [[0.0, 0.0], [0.0, 0.5]]\nepochs = 3\n")
    out = tmp_path / "rep"
    assert main(["reproduce", "--config", str(cfg), *TINY, "--output", str(out)]) == 0
    result = json.loads(read(out / "results.json"))
    assert [r["settings"]["dropout"] for r in result["runs"]] == [0.0, 0.5]
    assert len(result["runs"][0]["val_acc"]) == 2  # --epochs 1 in TINY beats the file's 3
    assert [c["to"] for c in result["conclusion"]["dropout"]] == ["reg=0, dropout=0.5"]


def test_bad_grid_flag_is_one_clear_error(tmp_path, capsys):
    assert main(["reproduce", *TINY, "--grid", "0:0,0.01", "--output", str(tmp_path)]) == 1
    assert "expected a [reg, dropout] pair" in capsys.readouterr().err


def test_sanity_initial_loss_and_overfit_report(tmp_path, capsys):
    out = tmp_path / "sanity"
    assert main(["experiment", "sanity", "--epochs", "2", "--iterations", "5", "--subset", "20",
                 "--device", "cpu", "--no-progress", "--output", str(out)]) == 0
    r = json.loads(read(out / "results.json"))
    l0, l5 = r["initial_loss"]["reg=0"], r["initial_loss"]["reg=0.5"]
    assert abs(l0 - math.log(10)) < 0.05 and r["ln10"] == pytest.approx(LN10)
    assert l5 > l0
    assert r["overfit"]["num_train_eval"] == 20
    assert r["overfits"] == (r["overfit"]["train_acc"][-1] >= 0.95 and
                             r["overfit"]["train_acc"][-1] - r["overfit"]["val_acc"][-1] >= 0.1)
    report = read(out / "report.md")
    assert f"{l0:.6f}" in report and "Overfitting 20 training samples" in report
    assert f"initial loss reg=0: {l0:.6f}" in capsys.readouterr().out


def test_sweep_with_values_and_best_net(tmp_path, has_matplotlib):
    out = tmp_path / "sweep"
    assert main(["experiment", "sweep", "--param", "hidden", "--values", "4,8", *TINY,
                 "--filter-size", "3", "--best-epochs", "2", "--output", str(out)]) == 0
    r = json.loads(read(out / "results.json"))
    assert [x["settings"]["hidden"] for x in r["runs"]] == [4, 8]
    assert all(x["settings"]["filters"] == 2 for x in r["runs"])
    best = r["best"]
    assert r["chosen_from"] == max(r["runs"], key=lambda x: x["best_val_acc"])["label"]
    assert len(best["val_acc"]) == 3 and 0 <= best["test_acc"] <= 1
    assert "## hidden" in read(out / "report.md") and "test accuracy" in read(out / "report.md")
    assert read_png_size(out / "sweep-hidden.png") > (200, 200)


def test_sweep_values_need_one_param(tmp_path, capsys):
    assert main(["experiment", "sweep", "--values", "1,2", *TINY, "--output", str(tmp_path)]) == 1
    assert "also give --param" in capsys.readouterr().err


def test_visualize_filters_from_saved_weights(tmp_path, has_matplotlib):
    from gpucnn.train import save_weights
    from gpucnn.models import ThreeLayerConvNet

    model = ThreeLayerConvNet((1, 8, 8), num_filters=5, filter_size=3, hidden_dim=4, seed=1)
    save_weights(str(tmp_path / "weights.npz"), model, {"dataset": "digits"})
    png = tmp_path / "filters.png"
    assert main(["visualize-filters", str(tmp_path / "weights.npz"), "--output", str(png)]) == 0
    assert read_png_size(png) > (100, 100)


def test_filter_grid_layout():
    w = np.arange(5 * 1 * 3 * 3, dtype=float).reshape(5, 1, 3, 3)
    grid = plots.filter_grid(w)
    assert grid.shape == (2 * 4 + 1, 3 * 4 + 1)       # 5 tiles: 2 rows of 3, 1-pixel borders
    assert grid[1:4, 1:4].min() == 0 and grid[1:4, 1:4].max() == 1  # each tile scaled alone
    assert np.isnan(grid[0]).all() and np.isnan(grid[-5:, -4:]).all()  # borders, empty 6th tile
    rgb = plots.filter_grid(np.random.default_rng(0).normal(size=(4, 3, 5, 5)))
    assert rgb.shape == (2 * 6 + 1, 2 * 6 + 1, 3)
    with pytest.raises(ValueError, match=r"expected conv filters \(F, C, KH, KW\)"):
        plots.filter_grid(np.zeros((3, 3)))


def test_without_matplotlib_tables_are_written_and_hint_given_once(tmp_path, capsys,
                                                                    monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(plots, "_hint_given", False)
    out = tmp_path / "rep"
    assert main(["reproduce", *TINY, "--grid", "0:0,0:0.3", "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["report.md", "results.csv", "results.json"]
    assert capsys.readouterr().err.count(plots.PLOT_HINT) == 1
    assert main(["experiment", "sweep", "--param", "dropout", "--values", "0.1", *TINY,
                 "--best-epochs", "1", "--output", str(tmp_path / "sw")]) == 0
    assert plots.PLOT_HINT not in capsys.readouterr().err  # said once per process
