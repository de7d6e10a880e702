"""The experiments on tiny settings: reproduce, sanity, sweep, visualize-filters, their reports."""
import builtins
import json
import os

import numpy as np
import pytest

from gpucnn import plots
from gpucnn.cli import main
from gpucnn.experiments import conclude, make_settings, replicate, reproduce
from gpucnn.experiments.reproduce_conclusion import summarise

from experiment_tools import (SEED_NOISE, TINY, has_matplotlib, interrupt_run,  # noqa: F401
                              read, read_png_size)

# The reproduce grid on TINY: 3 configurations x 2 sizes x 2 seeds, in this process.
GRID = ["--seeds", "2", "--train-sizes", "full,30", "--workers", "1"]


def test_reproduce_writes_tables_report_and_plots(tmp_path, capsys, has_matplotlib):
    out = tmp_path / "rep"
    assert main(["reproduce", *TINY, *GRID, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("Accuracy for reg = 0.01 and dropout rate = 0.4 (30 training samples, mean of 2 "
            "seeds)") in printed
    assert "Epoch\t0\t1\nTraining\t" in printed
    assert "Against the source document (seeds/000):" in printed
    result = json.loads(read(out / "results.json"))
    specs = [(r["spec"]["train_size"], r["spec"]["seed"], r["settings"]["reg"],
              r["settings"]["dropout"]) for r in result["runs"]]
    assert specs == [(n, seed, reg, p) for n in ("full", 30) for seed in (0, 1)
                     for reg, p in ((0.0, 0.0), (0.01, 0.0), (0.01, 0.4))]
    for run in result["runs"]:
        assert len(run["train_acc"]) == len(run["val_acc"]) == 2  # epoch 0 and epoch 1
        assert run["settings"]["seed"] == run["spec"]["seed"]
        assert run["num_train"] == (30 if run["spec"]["train_size"] == 30 else 1258)
    assert len(os.listdir(out / "runs")) == 12
    assert [c["train_size"] for c in result["conclusion"]["sizes"]] == ["full", 30]
    report = read(out / "report.md")
    for text in ("## Conclusion", "Against the source document (seeds/000)", "| Training |",
                 "`gaps.png`", "`accuracy.png`", "paired by seed",
                 result["conclusion"]["text"][0], result["conclusion"]["source"][1]):
        assert text in report
    rows = read(out / "results.csv").splitlines()
    assert rows[0] == "train_size,reg,dropout,seed,epoch,train_acc,val_acc,epoch_loss"
    assert len(rows) == 1 + 12 * 2
    assert len(read(out / "gaps.csv").splitlines()) == 1 + 6
    for png in ("gaps.png", "accuracy.png"):
        assert read_png_size(out / png) > (200, 200)


def test_reproduce_skips_finished_runs_and_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", *TINY, *GRID, "--output", str(out)]) == 0
    first = out / "runs" / "n30_reg0.01_p0.4_seed1.json"
    stamp = first.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["reproduce", *TINY, *GRID, "--seeds", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "12 of 18 runs already finished" in printed and "[6/6]" in printed
    assert first.stat().st_mtime_ns == stamp                  # not trained again
    assert main(["reproduce", *TINY, *GRID, "--lr", "0.01", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds runs made with other settings (lr 0.001 -> 0.01)" in err
    assert "--fresh" in err and "another --output" in err and len(err.splitlines()) == 1
    assert first.stat().st_mtime_ns == stamp                  # nothing overwritten
    assert main(["reproduce", *TINY, *GRID, "--lr", "0.01", "--fresh", "--output",
                 str(out)]) == 0
    assert first.stat().st_mtime_ns != stamp
    assert len(os.listdir(out / "runs")) == 12                # the --seeds 3 runs are gone


def test_reproduce_refuses_a_foreign_or_unwritable_folder_before_training(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my results")
    assert main(["reproduce", *TINY, *GRID, "--output", str(foreign)]) == 1
    err = capsys.readouterr().err
    assert "did not record (notes.txt)" in err and "--fresh" in err
    assert os.listdir(foreign) == ["notes.txt"]                # left as it was
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["reproduce", *TINY, *GRID, "--output", str(blocked / "sub")]) == 1
    captured = capsys.readouterr()
    assert "not writable" in captured.err and "Traceback" not in captured.err
    assert "[1/" not in captured.out                          # no run started


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "1,1"], "--seeds=[1, 1]: expected distinct seeds"),
    (["--seeds", "two"], "--seeds 'two': expected a count"),
    (["--train-sizes", "full,0"], "--train-sizes[1]=0: expected an integer >= 1"),
    (["--train-sizes", "99999"], "train_sizes[0]=99999: expected at most the 1258"),
    (["--train-sizes", "all"], "--train-sizes 'all': expected comma-separated"),
    (["--grid", "0:0,0.01"], "expected a [reg, dropout] pair"),
    (["--workers", "0"], "workers=0: expected a number of processes >= 1"),
])
def test_bad_grid_values_are_one_clear_error_before_any_run(tmp_path, capsys, flags, message):
    assert main(["reproduce", *TINY, *GRID, *flags, "--output", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "[1/" not in captured.out


def test_ctrl_c_keeps_finished_runs_and_a_rerun_continues(tmp_path, capsys, monkeypatch):
    out = tmp_path / "rep"
    interrupt_run(monkeypatch, 3)
    assert main(["reproduce", *TINY, *GRID, "--output", str(out)]) == 130
    assert "the finished runs are kept" in capsys.readouterr().err
    assert len(os.listdir(out / "runs")) == 2
    monkeypatch.undo()
    assert main(["reproduce", *TINY, *GRID, "--output", str(out)]) == 0
    assert "2 of 12 runs already finished" in capsys.readouterr().out


def test_pool_of_processes_gives_the_runs_one_process_gives(tmp_path, capsys):
    serial, pooled = tmp_path / "serial", tmp_path / "pool"
    grid = ["--seeds", "1", "--train-sizes", "30", "--grid", "0:0,0.01:0.4"]
    assert main(["reproduce", *TINY, *grid, "--workers", "1", "--output", str(serial)]) == 0
    assert main(["reproduce", *TINY, *grid, "--workers", "2", "--output", str(pooled)]) == 0
    assert "(pool of 2)" in capsys.readouterr().out
    a, b = (json.loads(read(p / "results.json"))["runs"] for p in (serial, pooled))
    assert [r["train_acc"] for r in a] == [r["train_acc"] for r in b]
    assert [r["val_acc"] for r in a] == [r["val_acc"] for r in b]


def test_on_a_gpu_the_runs_stay_in_this_process(tmp_path, monkeypatch):
    from gpucnn.experiments.common import make_settings

    pids = []

    def fake_train_one(s, dataset, spec, folder):
        pids.append((os.getpid(), s.device))
        return {"spec": {"train_size": spec.train_size, "seed": spec.seed}, "label": spec.label,
                "train_acc": [1.0], "val_acc": [1.0], "seconds": 0.0}

    monkeypatch.setattr(replicate, "rank_device", lambda device: "cuda")
    monkeypatch.setattr(replicate, "train_one", fake_train_one)
    s = make_settings({}, None, {"seeds": 2})
    how = replicate.execute(s, None, reproduce.grid_specs(s), str(tmp_path), None, print)
    assert how == "cuda" and pids == [(os.getpid(), "cuda")] * 12


def fake_runs(size, reg, dropout, gaps, val=0.85):
    """Runs of one configuration, one per seed, with the given final gaps (train = val + gap)."""
    return [{"spec": {"train_size": size, "reg": reg, "dropout": dropout, "seed": seed},
             "label": f"reg={reg:g}, dropout={dropout:g}", "num_train": 100, "num_val": 1000,
             "train_acc": [0.1, val + gap], "val_acc": [0.1, val]}
            for seed, gap in enumerate(gaps)]


def conclusion_of(*groups):
    return conclude(summarise([run for g in groups for run in g]))


def test_conclusion_finds_the_effects_that_exist_and_only_those():
    base = [0.10 + e for e in SEED_NOISE]
    c = conclusion_of(fake_runs(100, 0, 0, base),
                      fake_runs(100, 0.01, 0, [g + d for g, d in zip(base, [1e-3, -1e-3] * 3)]),
                      fake_runs(100, 0.01, 0.4, [g - 0.04 + d for g, d in
                                                  zip(base, [2e-3, -2e-3] * 3)]))
    size = c["sizes"][0]
    assert size["overfits"] and size["baseline"].low > 0
    verdicts = {(x["kind"], x["to"]): x["verdict"] for x in size["comparisons"]}
    assert verdicts == {("l2", "reg=0.01, dropout=0"): "little",
                        ("dropout", "reg=0.01, dropout=0.4"): "narrows",
                        ("dropout on L2", "reg=0.01, dropout=0.4"): "narrows"}
    drop = next(x for x in size["comparisons"] if x["kind"] == "dropout")
    assert drop["gap_change"].mean == pytest.approx(-0.04)
    assert drop["gap_change"].half < 0.01          # paired: the +/-0.03 seed noise is gone
    assert c["text"][0].startswith("100 training samples: the unregularised net overfits")
    assert "narrows the gap by 0.040" in " ".join(c["text"])
    assert c["source"][0].startswith('"0.01 L2 alone changes little": agrees')
    assert c["source"][1].startswith('"dropout narrows the gap": agrees')


def test_conclusion_says_widens_and_unclear():
    base = [0.10 + e for e in SEED_NOISE]
    c = conclusion_of(fake_runs(100, 0, 0, base),
                      fake_runs(100, 0.01, 0, [g + 0.05 * (-1) ** i for i, g in enumerate(base)]),
                      fake_runs(100, 0, 0.4, [g + 0.03 for g in base]))
    verdicts = {x["kind"]: x["verdict"] for x in c["sizes"][0]["comparisons"]}
    assert verdicts == {"l2": "unclear", "dropout": "widens"}
    assert c["source"][0].startswith('"0.01 L2 alone changes little": cannot tell')
    assert c["source"][1].startswith('"dropout narrows the gap": differs')


def test_conclusion_says_when_there_is_no_gap_to_close():
    c = conclusion_of(fake_runs("full", 0, 0, [0.01, -0.01, 0.005]),
                      fake_runs("full", 0, 0.5, [0.0, -0.01, 0.0]))
    assert not c["sizes"][0]["overfits"]
    assert "not significantly above zero" in c["text"][0]
    assert "where the unregularised net shows no gap" in c["source"][1]


def test_conclusion_says_what_a_grid_cannot_show():
    c = conclusion_of(fake_runs(100, 0.01, 0.4, [0.1, 0.2]))
    assert c["sizes"][0]["comparisons"] == []
    assert "nothing to compare with" in c["text"][0]
    assert all("not tested" in s for s in c["source"])


def test_toml_config_and_flag_priority(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('epochs = 2\nhidden = 8\nlr = 0.01\ngrid = [[0, 0], [0.1, 0.5]]\n'
                   'seeds = 3\ntrain_sizes = ["full", 100]\n')
    s = make_settings({}, str(cfg), {"epochs": 5, "lr": None})
    assert (s.epochs, s.hidden, s.lr) == (5, 8, 0.01)   # flag > file > dataset default
    assert s.grid == [[0.0, 0.0], [0.1, 0.5]]
    assert s.seeds == [0, 1, 2] and s.train_sizes == ["full", 100]
    assert make_settings({}, str(cfg), {"seeds": [4, 9]}).seeds == [4, 9]
    assert make_settings({}, None, {}).seeds == list(range(8))   # the default replicates
    assert (s.filters, s.filter_size) == (16, 3)          # digits' model
    cfg.write_text("epoch = 2\n")
    with pytest.raises(ValueError, match=r"unknown setting 'epoch'"):
        make_settings({}, str(cfg), {})
    cfg.write_text("grid = [[0, 1.0]]\n")
    with pytest.raises(ValueError, match=r"grid\[0\] dropout=1.0: expected a drop probability"):
        make_settings({}, str(cfg), {})


def test_reproduce_uses_the_config_file(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text("grid = [[0.0, 0.0], [0.0, 0.5]]\nepochs = 3\nseeds = [5]\n"
                   "train_sizes = [40]\n")
    out = tmp_path / "rep"
    assert main(["reproduce", "--config", str(cfg), *TINY, "--workers", "1", "--output",
                 str(out)]) == 0
    result = json.loads(read(out / "results.json"))
    assert [r["settings"]["dropout"] for r in result["runs"]] == [0.0, 0.5]
    assert [r["spec"]["seed"] for r in result["runs"]] == [5, 5]
    assert len(result["runs"][0]["val_acc"]) == 2  # --epochs 1 in TINY beats the file's 3
    comparisons = result["conclusion"]["sizes"][0]["comparisons"]
    assert [c["to"] for c in comparisons] == ["reg=0, dropout=0.5"]
    assert comparisons[0]["verdict"] == "unclear"   # one seed: no interval, no verdict


def test_bad_grid_flag_is_one_clear_error(tmp_path, capsys):
    assert main(["reproduce", *TINY, "--grid", "0:0,0.01", "--output", str(tmp_path)]) == 1
    assert "expected a [reg, dropout] pair" in capsys.readouterr().err


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
    assert main(["reproduce", *TINY, *GRID, "--grid", "0:0,0:0.3", "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["experiment.json", "gaps.csv", "report.md",
                                       "results.csv", "results.json", "runs"]
    assert "none: matplotlib is not installed" in read(out / "report.md")
    assert capsys.readouterr().err.count(plots.PLOT_HINT) == 1
    assert main(["experiment", "sweep", "--param", "dropout", "--values", "0.1", *TINY,
                 "--seeds", "2", "--workers", "1", "--output", str(tmp_path / "sw")]) == 0
    assert "none: matplotlib is not installed" in read(tmp_path / "sw" / "report.md")
    assert plots.PLOT_HINT not in capsys.readouterr().err  # said once per process


def test_reproduce_under_mpirun_spreads_the_runs_over_ranks(tmp_path):
    pytest.importorskip("mpi4py")
    import subprocess
    import sys
    from pathlib import Path

    import gpucnn
    from gpucnn import distributed

    try:
        mpirun = distributed.mpirun_command(2, [sys.executable, "-m", "gpucnn.cli", "reproduce"])
    except RuntimeError as e:
        pytest.skip(str(e))
    env = {k: v for k, v in os.environ.items() if k not in distributed.WORLD_SIZE_ENV}
    env["PYTHONPATH"] = str(Path(gpucnn.__file__).parents[1])
    out = tmp_path / "rep"
    done = subprocess.run([*mpirun, *TINY, "--seeds", "2", "--train-sizes", "full,30",
                           "--output", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 runs (0 found finished)" in done.stdout and "(mpi)" in done.stdout
    assert len(os.listdir(out / "runs")) == 12
    assert len(json.loads(read(out / "results.json"))["runs"]) == 12
