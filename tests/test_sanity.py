"""``gpucnn experiment sanity``: the checks on synthetic runs with known answers, the initial
losses of real nets against what L2 must add, and the command end to end (pool, resume)."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from gpucnn import data
from gpucnn.cli import main
from gpucnn.experiments import make_settings
from gpucnn.experiments.common import training_data
from gpucnn.experiments.sanity import LN10, REG_CHECK, analyse, expected_rise, initial_losses
from gpucnn.experiments.stats import t975
from gpucnn.experiments.sweep import BASE_NET

from experiment_tools import TINY, has_matplotlib, read, read_png_size  # noqa: F401


def fake_result(losses, rises, trains, vals, weight_scale=1e-3, num_weights=1000):
    runs = [{"spec": {"subset": 100, "seed": i}, "initial_loss": {"0": l0, "0.5": l0 + r},
             "num_weights": num_weights, "train_acc": [0.1, 0.5, t], "val_acc": [0.1, 0.4, v]}
            for i, (l0, r, t, v) in enumerate(zip(losses, rises, trains, vals))]
    return analyse({"runs": runs, "subset": 100, "settings": {"weight_scale": weight_scale}})


def test_checks_by_hand():
    r = fake_result([LN10 + 0.01, LN10 - 0.01, LN10 + 0.03, LN10 - 0.03],
                    [0.20, 0.22, 0.18, 0.20], [1.0, 1.0, 1.0, 1.0], [0.80, 0.85, 0.82, 0.85])
    c = r["checks"]
    assert c["offset"].mean == pytest.approx(0.0, abs=1e-12)
    assert c["offset"].half == pytest.approx(t975(3) * math.sqrt(0.002 / 3) / 2)
    assert c["spread"]["offset"] == pytest.approx({"sd": math.sqrt(0.002 / 3), "min": -0.03,
                                                   "max": 0.03})
    assert c["rise"].mean == pytest.approx(0.20) and c["rise_verdict"] == "rises"
    assert c["loss_verdict"] == "close"
    assert c["gap"].mean == pytest.approx(0.17) and c["gap"].low > 0.10
    assert c["overfit_verdict"] == "overfits"
    assert c["expected_rise"] == pytest.approx(0.5 * REG_CHECK * 1e-6 * 1000)
    assert c["curves"]["train_curve"] == pytest.approx([0.1, 0.5, 1.0])
    assert c["curves"]["val_band"][0] == 0.0              # the same at epoch 0 for every seed


@pytest.mark.parametrize("losses, rises, trains, vals, verdicts", [
    # one seed's loss 0.06 from ln(10), one seed's rise negative
    ([LN10, LN10 + 0.06], [0.2, -0.01], [1.0, 1.0], [0.8, 0.8],
     ("not close", "does not rise", "overfits")),
    # the gap's interval lies under 0.10: no overfitting
    ([LN10] * 3, [0.2] * 3, [1.0, 1.0, 1.0], [0.95, 0.96, 0.955], ("close", "rises",
                                                                   "does not overfit")),
    # training short of 0.95: no overfitting, whatever the gap
    ([LN10] * 3, [0.2] * 3, [0.9, 0.9, 0.9], [0.5, 0.5, 0.5], ("close", "rises",
                                                               "does not overfit")),
    # the gap's interval holds 0.10: the seeds cannot tell
    ([LN10] * 3, [0.2] * 3, [1.0, 1.0, 1.0], [0.80, 0.95, 0.88], ("close", "rises", "unclear")),
])
def test_verdicts(losses, rises, trains, vals, verdicts):
    c = fake_result(losses, rises, trains, vals)["checks"]
    assert (c["loss_verdict"], c["rise_verdict"], c["overfit_verdict"]) == verdicts


def test_initial_losses_of_real_nets_against_what_l2_adds():
    # The rise is 0.5 x reg x (sum of squared weights), whose mean over initialisations with
    # N(0, scale^2) weights is 0.5 x reg x scale^2 x weights; its relative spread per seed is
    # sqrt(2 / weights) (0.3% for 262568 weights), so 8 seeds' mean is within 0.5%.
    dataset = data.load("digits")
    s = make_settings({**BASE_NET, "weight_scale": 1e-3}, None, {"dataset": "digits"})
    rises = []
    for seed in range(8):
        seeded = dataclasses.replace(s, seed=seed)
        losses, weights = initial_losses(seeded, training_data(dataset, 100, seed))
        assert abs(losses["0"] - LN10) < 1e-3          # small weights: about uniform scores
        rises.append(losses["0.5"] - losses["0"])
    assert weights == 32 * 1 * 7 * 7 + 32 * 4 * 4 * 500 + 500 * 10
    assert np.mean(rises) == pytest.approx(expected_rise(1e-3, weights), rel=5e-3)
    assert np.std(rises) > 0                              # the seeds do differ
    assert expected_rise(None, weights) is None           # He init: a scale per layer


SANITY = ["experiment", "sanity", *TINY, "--subset", "20", "--seeds", "2"]


def test_sanity_end_to_end_in_a_pool(tmp_path, capsys, has_matplotlib):
    out = tmp_path / "sanity"
    assert main([*SANITY, "--workers", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Against the source document (seeds/002):" in printed and "[2/2]" in printed
    r = json.loads(read(out / "results.json"))
    assert [x["spec"] for x in r["runs"]] == [{"subset": 20, "seed": 0}, {"subset": 20, "seed": 1}]
    assert all(x["num_train"] == 20 for x in r["runs"])
    assert r["runs"][0]["initial_loss"] != r["runs"][1]["initial_loss"]   # seeds differ
    c = r["checks"]
    assert c["loss_verdict"] == "close" and c["rise_verdict"] == "rises"   # weight scale 1e-3
    report = read(out / "report.md")
    for text in ("## Conclusion", "### Against the source document (seeds/002)",
                 "2.30258789799", "2.50854087057", "## Per seed", "`overfit.png`",
                 "20 training samples: final training accuracy",
                 '"The model overfits small data":'):
        assert text in report
    assert sorted(os.listdir(out / "runs")) == ["subset20_seed0.json", "subset20_seed1.json"]
    assert read_png_size(out / "overfit.png") > (200, 200)
    assert main([*SANITY, "--workers", "1", "--output", str(out)]) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--subset", "0"], "--subset=0: expected an integer >= 1"),
    (["--subset", "5000"], "--subset=5000: expected at most the 1258 training samples"),
    (["--seeds", "0"], "--seeds=0: expected an integer >= 1"),
])
def test_bad_sanity_settings_are_one_line_before_any_run(tmp_path, capsys, flags, message):
    assert main([*SANITY, *flags, "--output", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "[1/" not in captured.out
