"""``gpucnn experiment sanity``'s outputs: the conclusion in sentences, report.md (with the source
document's numbers beside ours and a table per seed), results.csv, results.json and, with
matplotlib, overfit.png."""
from __future__ import annotations

import os

from .. import plots
from .common import markdown_table, write_json, write_runs_csv
from .sanity import LN10, LOSS_TOLERANCE, OVERFIT_GAP, OVERFIT_TRAIN, REG_CHECK, SOURCE_LOSS

FIGURE = ("Training (solid) and validation (dashed) accuracy per epoch on the small subset, "
          "mean across seeds with a 95% band.")

def conclusion(result: dict) -> list[str]:
    """The three checks in sentences, with means, intervals and spreads across seeds."""
    c, n = result["checks"], len(result["runs"])
    off, rise = c["spread"]["offset"], c["spread"]["rise"]
    expected = ("" if c["expected_rise"] is None else
                f"; expected on average 0.5 x {REG_CHECK:g} x weight_scale^2 x "
                f"{result['runs'][0]['num_weights']} weights = {c['expected_rise']:.4f}")
    return [
        f"Initial loss without L2 minus ln(10) = {LN10:.6f}: {c['offset'].text('+.1e')}; "
        f"spread across the {n} seeds: sd {off['sd']:.1e}, {off['min']:+.1e} to "
        f"{off['max']:+.1e}: {c['loss_verdict']} (every seed within +/-{LOSS_TOLERANCE:g}).",
        f"With L2 {REG_CHECK:g} it {c['rise_verdict']}: by {c['rise'].text('+.4f')}; sd "
        f"{rise['sd']:.4f}, {rise['min']:+.4f} to {rise['max']:+.4f}{expected}.",
        f"{result['subset']} training samples: final training accuracy "
        f"{c['train'].text('.3f')}, validation {c['val'].text('.3f')}, gap "
        f"{c['gap'].text()}: {c['overfit_verdict']} (training >= {OVERFIT_TRAIN:g} and the "
        f"gap's 95% interval above {OVERFIT_GAP:g})."]


def source_sentences(result: dict) -> list[str]:
    """The source document's sanity numbers (one CIFAR-10 net) beside ours."""
    c = result["checks"]
    l0, l5 = SOURCE_LOSS["0"], SOURCE_LOSS[f"{REG_CHECK:g}"]
    agree = {"close": "agrees", "rises": "agrees", "overfits": "agrees", "unclear": "cannot tell"}
    return [
        f"\"Initial loss without regularization is {l0}\" ({l0 - LN10:+.2g} from ln(10)): "
        f"{agree.get(c['loss_verdict'], 'differs')}, ours {c['offset'].mean:+.1e} from ln(10).",
        f"\"With regularization where lambda = {REG_CHECK:g}, the loss increases to {l5}\" "
        f"({l5 - l0:+.3f}): {agree.get(c['rise_verdict'], 'differs')} on the direction, ours "
        f"{c['rise'].mean:+.4f}; the size is not comparable: it is 0.5 x reg x the sum of "
        f"squared weights, which grows with the net's weight count (CIFAR-10's 32x32x3 "
        f"inputs give the hidden layer 16 times the weights 8x8 digits do) and their scale.",
        f"\"The model overfits small data\": {agree.get(c['overfit_verdict'], 'differs')}, "
        f"ours a gap of {c['gap'].text()}."]


def report_markdown(result: dict, figure: str | None) -> str:
    s, meta, c = result["settings"], result["dataset"], result["checks"]
    reg = f"{REG_CHECK:g}"
    seeds = [[r["spec"]["seed"], f"{r['initial_loss']['0']:.6f}",
              f"{r['initial_loss']['0'] - LN10:+.1e}", f"{r['initial_loss'][reg]:.6f}",
              f"{r['initial_loss'][reg] - r['initial_loss']['0']:+.6f}",
              f"{r['train_acc'][-1]:.4f}", f"{r['val_acc'][-1]:.4f}",
              f"{r['train_acc'][-1] - r['val_acc'][-1]:+.4f}"] for r in result["runs"]]
    curve = c["curves"]
    epochs = [[e, f"{t:.4f} ± {tb:.4f}", f"{v:.4f} ± {vb:.4f}"] for e, (t, tb, v, vb) in
              enumerate(zip(curve["train_curve"], curve["train_band"], curve["val_curve"],
                            curve["val_band"]))]
    return "\n".join([
        f"# Sanity checks on {meta['name']}: the source document's (seeds/002), replicated", "",
        f"{len(result['runs'])} seeds ({result['skipped']} found finished) in "
        f"{result['seconds']:.1f} s on {result['host']} ({result['cpu_count']} CPUs, "
        f"{result['how']}). Base net: {s['filters']} filters {s['filter_size']}x"
        f"{s['filter_size']}, hidden {s['hidden']}, weight scale "
        f"{'He' if s['weight_scale'] is None else s['weight_scale']}; the subset trained "
        f"{s['epochs']} epochs x {s['iterations_per_epoch']} iterations of batch "
        f"{s['batch_size']} ({s['optimizer']}, lr {s['lr']:g}), reg {s['reg']:g}, dropout "
        f"{s['dropout']:g}; split seed {s['seed']}, seeds {', '.join(map(str, s['seeds']))}.",
        "", "## Conclusion", "", *[f"- {t}" for t in conclusion(result)], "",
        "### Against the source document (seeds/002)", "",
        *[f"- {t}" for t in source_sentences(result)], "", "## Figures", "",
        f"- `{os.path.basename(figure)}`: {FIGURE}" if figure else
        "- none: matplotlib is not installed (pip install 'gpucnn[plot]').", "",
        "## Per seed", "",
        "Intervals are 95% Student t intervals of a mean across seeds (± its half-width). A "
        "seed fixes the net's initialisation, the subset (stratified by class), the batch "
        "order and the dropout stream; the initial losses are those of the very net that is "
        "then trained, on its subset.", "",
        markdown_table(["seed", "initial loss", "- ln(10)", f"with reg {reg}", "rise",
                        "final train", "final validation", "gap"], seeds), "",
        f"## Overfitting {result['subset']} training samples, mean across seeds", "",
        markdown_table(["epoch", "train", "validation"], epochs), ""])


def write_sanity(result: dict, out: str) -> list[str]:
    """report.md, results.csv, results.json and (with matplotlib) overfit.png in ``out``;
    returns the paths written."""
    runs = result["runs"]
    cell = {"train_size": result["subset"], "num_train": runs[0]["num_train"],
            "label": f"{len(runs)} seeds", **result["checks"]["curves"]}
    figure = plots.plot_curves(os.path.join(out, "overfit.png"), [cell],
                               f"Overfitting {result['subset']} {result['dataset']['name']} "
                               f"training samples: mean and 95% band across seeds")
    paths = [os.path.join(out, n) for n in ("report.md", "results.csv", "results.json")]
    with open(paths[0], "w") as fh:
        fh.write(report_markdown(result, figure))
    write_runs_csv(paths[1], runs)
    write_json(paths[2], result)
    return paths + ([figure] if figure else [])
