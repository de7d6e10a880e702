"""``gpucnn experiment sweep``: the statistics on synthetic runs with known answers, the runs it
plans, and the command end to end on a tiny net (resume, --fresh, refusals)."""
import json
import math
import os

import pytest

from gpucnn.cli import main
from gpucnn.experiments import make_settings
from gpucnn.experiments.sweep import BASE_NET, SweepSpec, sweep_specs, sweep_values
from gpucnn.experiments.sweep_analysis import CLAIMS, conclude, summarise
from gpucnn.experiments.sweep_report import claim_sentences

from experiment_tools import (SEED_NOISE, TINY, has_matplotlib, interrupt_run,  # noqa: F401
                              read, read_png_size)

BASE = {"dropout": 0.0, "hidden": 500, "filters": 32, "filter-size": 7}


def fake_runs(param, value, val, gap, size=200, test=None):
    """One run per seed with final validation accuracy ``val[seed]`` and gap ``gap[seed]``."""
    return [{"spec": {"train_size": size, "param": param, "value": value, "seed": seed},
             "label": "base" if param is None else f"{param}={value:g}", "num_train": 200,
             "num_val": 1000, "train_acc": [0.1, v + g], "val_acc": [0.1, v],
             "test_acc": v if test is None else test[seed]}
            for seed, (v, g) in enumerate(zip(val, gap))]


BASE_VAL = [0.90 + e for e in SEED_NOISE]         # seeds differ by up to 0.05
BASE_GAP = [0.06 - e / 2 for e in SEED_NOISE]
JITTER = [1e-3, -1e-3, 2e-3, -2e-3, 0.0, 0.0]     # what pairing cannot remove: tiny


def shifted(values, by, jitter=JITTER):
    return [v + by + j for v, j in zip(values, jitter)]


def conclusion_of(swept, *groups):
    runs = [r for g in groups for r in g]
    return conclude(summarise(runs), swept, BASE)["sizes"][0]


def test_paired_verdicts_find_the_effects_that_exist_and_only_those():
    size = conclusion_of({"filters": [16, 32, 48], "hidden": [500, 700]},
                         fake_runs(None, None, BASE_VAL, BASE_GAP),
                         fake_runs("filters", 16, shifted(BASE_VAL, 0.02), BASE_GAP),
                         fake_runs("filters", 48, shifted(BASE_VAL, -0.03), BASE_GAP),
                         fake_runs("hidden", 700, shifted(BASE_VAL, 0), shifted(BASE_GAP, 0.05)))
    found = {c["label"]: (c["verdict"], c["overfit"]) for c in size["comparisons"]}
    assert found == {"filters=16": ("better", "indistinguishable"),
                     "filters=48": ("worse", "indistinguishable"),
                     "hidden=700": ("indistinguishable", "overfits more")}
    c16 = next(c for c in size["comparisons"] if c["label"] == "filters=16")
    assert c16["changes"]["val"].mean == pytest.approx(0.02)
    assert c16["changes"]["val"].half < 0.003            # paired: the seed noise is gone
    unpaired = size["rows"]["filters"][0]["cell"]["intervals"]["val"]
    base = size["base"]["intervals"]["val"]
    assert unpaired.low < base.high                       # unpaired intervals overlap
    assert size["family_level"] == pytest.approx(1 - 0.05 / 3)
    assert size["best"]["label"] == "filters=16"
    # the base net's own value is its row, without a comparison
    assert [(r["value"], r["comparison"] is None) for r in size["rows"]["filters"]] == [
        (16, False), (32, True), (48, False)]
    assert size["rows"]["filters"][1]["cell"] is size["base"]


def test_no_value_distinguishable_means_no_best_net():
    size = conclusion_of({"hidden": [300, 700]}, fake_runs(None, None, BASE_VAL, BASE_GAP),
                         fake_runs("hidden", 300, shifted(BASE_VAL, 0), BASE_GAP),
                         fake_runs("hidden", 700, shifted(BASE_VAL, 0, JITTER[::-1]), BASE_GAP))
    assert size["best"] is None
    from gpucnn.experiments.sweep_analysis import best_sentence
    assert best_sentence(size).startswith("no value is distinguishable from the base:")


def test_better_at_95_percent_alone_is_not_enough_for_the_best_net():
    # Differences with t = 3.03 on 5 degrees of freedom: beyond t(0.975) = 2.571, short of the
    # t(0.9875) = 3.163 that two comparisons need together.
    diffs = [0.010, 0.004, 0.012, -0.001, 0.008, 0.003]
    size = conclusion_of({"hidden": [300, 700]}, fake_runs(None, None, BASE_VAL, BASE_GAP),
                         fake_runs("hidden", 300, shifted(BASE_VAL, 0, diffs), BASE_GAP),
                         fake_runs("hidden", 700, shifted(BASE_VAL, 0, [0] * 6), BASE_GAP))
    c300 = size["comparisons"][0]
    assert c300["verdict"] == "better"
    assert c300["changes"]["val"].low > 0 > c300["family"]["val"].low
    assert c300["family"]["val"].level == pytest.approx(0.975)
    assert size["best"] is None
    from gpucnn.experiments.sweep_analysis import best_sentence
    text = best_sentence(size)
    assert "no value is distinguishable" in text
    assert "hidden=300 is better at 95% on its own" in text
    best = next(c for c in size["claims"] if c["claim"].startswith("hidden 500"))
    assert best["word"] == "differs"
    assert best["evidence"][0].endswith("higher, not at the family-wise 97.5% level")


def test_the_source_documents_claims_checked_against_paired_results():
    swept = {"dropout": [0.1, 0.8], "filters": [16, 32, 48], "filter-size": [3, 5, 7],
             "hidden": [300, 500, 700]}
    size = conclusion_of(
        swept, fake_runs(None, None, BASE_VAL, BASE_GAP),
        fake_runs("dropout", 0.1, shifted(BASE_VAL, 0.02), BASE_GAP),       # dropout improves
        fake_runs("dropout", 0.8, shifted(BASE_VAL, -0.05), BASE_GAP),
        fake_runs("filters", 16, shifted(BASE_VAL, 0.01), BASE_GAP),
        fake_runs("filters", 48, shifted(BASE_VAL, 0), shifted(BASE_GAP, 0.04)),
        fake_runs("filter-size", 3, shifted(BASE_VAL, 0), shifted(BASE_GAP, 0.03)),
        fake_runs("filter-size", 5, BASE_VAL, [g + 0.03 * (-1) ** i for i, g in
                                               enumerate(BASE_GAP)]),       # noise only
        fake_runs("hidden", 300, shifted(BASE_VAL, -0.02), shifted(BASE_GAP, 0.02)),
        fake_runs("hidden", 700, shifted(BASE_VAL, 0), shifted(BASE_GAP, -0.02)))
    words = {c["claim"]: c["word"] for c in size["claims"]}
    assert words == {
        "dropout does not improve accuracy over the base net": "differs",      # 0.1 improves
        "too high a dropout rate (0.8) gives bad results": "agrees",
        "hidden 500 (the base net's) gives the best result": "agrees",
        "hidden 700 overfits": "differs",                                      # it overfits less
        "hidden 300 has lower training and validation accuracy": "cannot tell",  # train same
        "48 filters overfit": "agrees",
        "16 filters beat 32 (the source's best net)": "agrees",
        "filter sizes 3 and 5 overfit": "cannot tell"}
    assert set(words) == {claim for claim, _ in CLAIMS}
    dropout = next(c for c in size["claims"] if c["claim"].startswith("dropout does not"))
    assert "dropout=0.3: not swept" in dropout["evidence"]
    assert "validation accuracy +0.020 (95% interval" in dropout["evidence"][0]
    assert dropout["evidence"][0].endswith("higher, also at the family-wise 99.4% level")
    sentences = claim_sentences({"sizes": [size]})
    assert sentences[5].startswith('"48 filters overfit": agrees with 200 training samples '
                                   '(filters=48: gap +0.040 (95% interval')
    assert size["best"]["label"] == "dropout=0.1"       # the largest improvement


def test_a_claim_judged_by_where_its_interval_lies():
    from gpucnn.experiments.stats import Interval
    from gpucnn.experiments.sweep_analysis import judge

    above, below, across = Interval(.02, .01, .03, 5), Interval(-.02, -.03, -.01, 5), Interval(
        0, -.01, .01, 5)
    exactly_zero, one_seed = Interval(0, 0, 0, 5), Interval(.5, math.nan, math.nan, 1)
    assert [judge(iv, "higher") for iv in (above, below, across, exactly_zero, one_seed)] == [
        "agrees", "differs", "cannot tell", "differs", "cannot tell"]
    assert [judge(iv, "lower") for iv in (above, below, across, exactly_zero, one_seed)] == [
        "differs", "agrees", "cannot tell", "differs", "cannot tell"]
    assert [judge(iv, "not higher") for iv in (above, below, across, exactly_zero, one_seed)] == [
        "differs", "agrees", "agrees", "agrees", "cannot tell"]


def test_training_accuracy_equal_in_every_seed_rules_out_lower():
    # At 200 samples every net reaches training accuracy 1.0: "lower training accuracy" is
    # then not merely unshown but ruled out.
    runs = [*fake_runs(None, None, BASE_VAL, BASE_GAP),
            *fake_runs("hidden", 300, shifted(BASE_VAL, -0.02), BASE_GAP)]
    for r in runs:
        r["train_acc"][-1] = 1.0
    size = conclude(summarise(runs), {"hidden": [300]}, BASE)["sizes"][0]
    claim = next(c for c in size["claims"] if c["claim"].startswith("hidden 300 has lower"))
    assert claim["word"] == "differs"
    assert claim["evidence"][0] == ("hidden=300: training accuracy +0.000 (95% interval +0.000 "
                                    "to +0.000, 6 seeds), the same for every seed")
    assert claim["evidence"][1].endswith("lower, also at the family-wise 95% level")


def test_claims_on_a_partial_sweep_say_what_was_tested():
    size = conclusion_of({"filter-size": [3, 7]}, fake_runs(None, None, BASE_VAL, BASE_GAP),
                         fake_runs("filter-size", 3, BASE_VAL, shifted(BASE_GAP, 0.03)))
    claims = {c["claim"]: c for c in size["claims"]}
    assert claims["filter sizes 3 and 5 overfit"]["word"] == "agrees where tested"
    assert claims["filter sizes 3 and 5 overfit"]["evidence"][1] == "filter-size=5: not swept"
    assert claims["48 filters overfit"]["word"] == "not tested"
    size = conclusion_of({"filters": [32, 48]}, fake_runs(None, None, BASE_VAL, BASE_GAP),
                         fake_runs("filters", 48, BASE_VAL, BASE_GAP))
    beat = {c["claim"]: c for c in size["claims"]}["16 filters beat 32 (the source's best net)"]
    assert beat["word"] == "not tested" and beat["evidence"] == ["filters=16: not swept"]
    assert "filters=32" not in " ".join(c["label"] for c in size["comparisons"])


def test_the_runs_of_a_sweep():
    s = make_settings(BASE_NET, None, {"seeds": 2, "train_sizes": ["full", 100]})
    swept = sweep_values(s, ["hidden", "filters"])
    specs = sweep_specs(s, swept)
    assert specs[:5] == [SweepSpec("full", None, None, 0), SweepSpec("full", "hidden", 300, 0),
                         SweepSpec("full", "hidden", 700, 0), SweepSpec("full", "filters", 16, 0),
                         SweepSpec("full", "filters", 48, 0)]   # 500 and 32 are the base net's
    assert len(specs) == 2 * 2 * 5 and len({sp.key for sp in specs}) == 20
    assert specs[-1].key == "n100_filters48_seed1" and specs[5].key == "nfull_base_seed1"
    assert sweep_values(s, ["dropout"], [0.2, 0.2, 0.4]) == {"dropout": [0.2, 0.4]}
    for params, values, message in [
            (["dropout"], [0.2, 1.0], r"--values dropout=1.0: expected a drop probability"),
            (["filter-size"], [4], r"--values filter-size=4: expected an odd size"),
            (["hidden", "filters"], [3], r"give one parameter with them"),
            (["width"], None, r"params=\['width'\]: expected distinct names among dropout"),
            (["hidden", "hidden"], None, r"expected distinct names")]:
        with pytest.raises(ValueError, match=message):
            sweep_values(s, params, values)


# hidden 8 is TINY's base net: --values 4,8 trains the base net and hidden=4 per seed.
SWEEP = ["experiment", "sweep", "--param", "hidden", "--values", "4,8", *TINY,
         "--filter-size", "3", "--train-sizes", "30", "--workers", "1"]


def test_sweep_end_to_end(tmp_path, capsys, has_matplotlib):
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--seeds", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Against the source document (seeds/002):" in printed and "[4/4]" in printed
    r = json.loads(read(out / "results.json"))
    assert [(x["spec"]["param"], x["spec"]["value"], x["spec"]["seed"]) for x in r["runs"]] == [
        (None, None, 0), ("hidden", 4, 0), (None, None, 1), ("hidden", 4, 1)]
    assert all(x["num_train"] == 30 and 0 <= x["test_acc"] <= 1 for x in r["runs"])
    assert r["swept"] == {"hidden": [4, 8]} and r["base"] == {"hidden": 8}
    assert sorted(os.listdir(out / "runs")) == ["n30_base_seed0.json", "n30_base_seed1.json",
                                                "n30_hidden4_seed0.json", "n30_hidden4_seed1.json"]
    report = read(out / "report.md")
    for text in ("## Conclusion", "### Against the source document (seeds/002)",
                 "## 30 training samples", "### hidden", "| 8 | ", "(base)", "paired",
                 '"48 filters overfit": not tested', "`sweep-n30.png`", "85% test accuracy",
                 r["conclusion"]["text"][-1]):
        assert text in report
    summary = read(out / "summary.csv").splitlines()
    assert len(summary) == 3 and summary[2].endswith(",base,")
    assert len(read(out / "results.csv").splitlines()) == 1 + 4 * 2
    assert read_png_size(out / "sweep-n30.png") > (300, 300)


def test_sweep_resumes_and_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--seeds", "1", "--output", str(out)]) == 0
    first = out / "runs" / "n30_hidden4_seed0.json"
    stamp = first.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*SWEEP, "--seeds", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 of 4 runs already finished" in printed and "[2/2]" in printed
    assert first.stat().st_mtime_ns == stamp
    assert main([*SWEEP, "--seeds", "2", "--epochs", "2", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds runs made with other settings (epochs 1 -> 2)" in err
    assert len(err.splitlines()) == 1
    assert main([*SWEEP, "--seeds", "1", "--epochs", "2", "--fresh", "--output", str(out)]) == 0
    assert first.stat().st_mtime_ns != stamp
    assert len(os.listdir(out / "runs")) == 2


def test_a_folder_of_another_experiment_is_refused(tmp_path, capsys):
    out = tmp_path / "shared"
    assert main(["reproduce", *TINY, "--seeds", "1", "--train-sizes", "30", "--grid", "0:0",
                 "--workers", "1", "--output", str(out)]) == 0
    capsys.readouterr()
    assert main([*SWEEP, "--seeds", "1", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds runs of another experiment (reproduce)" in err and "--fresh" in err
    assert os.listdir(out / "runs") == ["n30_reg0_p0_seed0.json"]


def test_ctrl_c_keeps_the_finished_sweep_runs(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    interrupt_run(monkeypatch, 2)
    assert main([*SWEEP, "--seeds", "2", "--output", str(out)]) == 130
    assert "the finished runs are kept" in capsys.readouterr().err
    assert os.listdir(out / "runs") == ["n30_base_seed0.json"]
    monkeypatch.undo()
    assert main([*SWEEP, "--seeds", "2", "--output", str(out)]) == 0
    assert "1 of 4 runs already finished" in capsys.readouterr().out
