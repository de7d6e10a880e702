"""``gpucnn reproduce``'s outputs: the tables printed as the source document (seeds/000) prints
them, and report.md, results.csv, gaps.csv, results.json, gaps.png and accuracy.png."""
from __future__ import annotations

import csv
import os

from .. import plots
from .common import (markdown_seed_table, markdown_table, runs_line, seed_table, size_name,
                     write_json, write_runs_csv)
from .reproduce_conclusion import conclude, summarise

# The source document's own tables (the result being reproduced), for its gaps in the report.
SOURCE_TABLES = [
    {"reg": 0.0, "dropout": 0.0,
     "train_acc": [0.514, 0.834, 0.872, 0.863, 0.856, 0.888, 0.885, 0.900],
     "val_acc": [0.525, 0.825, 0.860, 0.870, 0.890, 0.880, 0.890, 0.890]},
    {"reg": 0.01, "dropout": 0.0,
     "train_acc": [0.496, 0.833, 0.811, 0.842, 0.895, 0.860, 0.900, 0.873],
     "val_acc": [0.575, 0.845, 0.815, 0.820, 0.855, 0.825, 0.865, 0.855]},
    {"reg": 0.01, "dropout": 0.4,
     "train_acc": [0.506, 0.842, 0.840, 0.887, 0.858, 0.875, 0.906],
     "val_acc": [0.470, 0.865, 0.880, 0.890, 0.895, 0.870, 0.895]},
]
FIGURES = {
    "gaps.png": "Left: final train - validation gap per configuration (colour) and "
                "training-set size (group): mean across seeds (marker), its 95% interval (bar) "
                "and each seed (dots); above zero = overfitting. Right: each configuration's "
                "change of the gap against the unregularised run (filled) and dropout's own "
                "share against the same L2 (hollow), paired by seed, with 95% intervals: the "
                "verdicts' basis, narrower than the left bars because pairing removes what "
                "runs of one seed share.",
    "accuracy.png": "Accuracy per epoch, one panel per training-set size (row) and "
                    "configuration (column): training (solid) and validation (dashed), mean "
                    "across seeds with a 95% band; epoch 0 (before training, near chance) is "
                    "left out to keep the scale.",
}


def analyse(result: dict) -> dict:
    """``result`` (from :func:`run_reproduce`) with ``cells`` (:func:`summarise`) and
    ``conclusion`` (:func:`conclude`) added."""
    cells = summarise(result["runs"])
    return {**result, "cells": cells, "conclusion": conclude(cells)}


def _title(cell: dict) -> str:
    return (f"Accuracy for reg = {cell['reg']:g} and dropout rate = {cell['dropout']:g} "
            f"({size_name(cell['train_size'], cell['num_train'])}, mean of "
            f"{len(cell['seeds'])} seeds)")


def print_tables(result: dict, echo=print) -> None:
    """Each configuration's mean table as the source document prints it."""
    for cell in result["cells"]:
        echo(f"\n{_title(cell)}\n")
        echo(seed_table(cell["train_curve"], cell["val_curve"]))


def source_gaps() -> str:
    """The source document's own final gaps, from its tables."""
    return "; ".join(f"reg={r['reg']:g}, dropout={r['dropout']:g}: "
                     f"{r['train_acc'][-1] - r['val_acc'][-1]:+.3f}" for r in SOURCE_TABLES)


def _gap_rows(cells: list[dict]) -> list[list]:
    return [[size_name(c["train_size"], c["num_train"]), c["label"], f"{c['train'].mean:.4f}",
             f"{c['val'].mean:.4f}", f"{c['gap'].mean:+.4f}", _bounds(c["gap"]),
             len(c["seeds"])] for c in cells]


def _bounds(iv) -> str:
    return "-" if iv.n < 2 else f"{iv.low:+.4f} to {iv.high:+.4f}"


def _change_rows(conclusion: dict) -> list[list]:
    return [[s["name"], f"{c['to']} vs {c['from']}", f"{c['gap_change'].mean:+.4f}",
             _bounds(c["gap_change"]), f"{c['val_change'].mean:+.4f}", _bounds(c["val_change"]),
             c["verdict"]] for s in conclusion["sizes"] for c in s["comparisons"]]


def report_markdown(result: dict, figures: list[str]) -> str:
    s, c, meta = result["settings"], result["conclusion"], result["dataset"]
    lines = [f"# Regularization and dropout on {meta['name']}: the source document's "
             f"(seeds/000) experiment, replicated", "",
             runs_line(result, len(s["grid"])), "", "## Conclusion", "",
             *[f"- {t}" for t in c["text"]], "", "### Against the source document (seeds/000)", "",
             *[f"- {t}" for t in c["source"]],
             f"- The source document's own final gaps (one run each): "
             f"{source_gaps()}.", "", "## Figures", ""]
    lines += [f"- `{os.path.basename(f)}`: {FIGURES[os.path.basename(f)]}" for f in figures] or [
        "- none: matplotlib is not installed (pip install 'gpucnn[plot]')."]
    lines += ["", "## Final gaps", "",
              markdown_table(["training set", "configuration", "train", "validation", "gap",
                              "gap 95% interval", "seeds"], _gap_rows(result["cells"])), "",
              "## Changes against the unregularised run, paired by seed", "",
              markdown_table(["training set", "comparison", "gap change", "95% interval",
                              "validation change", "95% interval", "verdict"],
                             _change_rows(c)), "", "## How to read it", "", _method(c), "",
              "## Settings", "", _settings_table(s, meta), ""]
    for cell in result["cells"]:
        lines += [f"## {_title(cell)}", "",
                  markdown_seed_table(cell["train_curve"], cell["val_curve"]), ""]
    return "\n".join(lines)


def _method(c: dict) -> str:
    return (f"A run's gap is its final training accuracy minus its final validation accuracy. "
            f"Intervals are 95% Student t intervals of a mean across seeds; a change is the mean "
            f"of per-seed differences (runs with one seed share initialisation, batch order, "
            f"dropout stream and training subset), so its interval is that of the effect itself. "
            f"Verdicts: **narrows** / **widens** when the change's interval excludes zero; "
            f"**little** when it does not and lies within +/- {c['little_fraction']:g} x the "
            f"unregularised gap (at least one validation sample); **unclear** otherwise (more "
            f"seeds would tell). The unregularised net overfits where its gap's interval lies "
            f"above zero. Each interval is 95% on its own, with no correction for making several "
            f"comparisons: among many, one in twenty null effects would still look real.")


def _settings_table(s: dict, meta: dict) -> str:
    return markdown_table(["setting", "value"], [
        ["dataset", f"{meta['name']} {tuple(meta['shape'])}, splits {tuple(meta['sizes'])} "
                    f"(train, val, test), split seed {s['seed']}"],
        ["model", f"ThreeLayerConvNet: {s['filters']} filters {s['filter_size']}x"
                  f"{s['filter_size']}, hidden {s['hidden']}, init "
                  f"{'He' if s['weight_scale'] is None else s['weight_scale']}"],
        ["optimizer", f"{s['optimizer']}, lr {s['lr']:g}"],
        ["epochs x iterations x batch", f"{s['epochs']} x {s['iterations_per_epoch']} x "
                                        f"{s['batch_size']}"],
        ["training accuracy on", f"up to {s['train_samples']} training samples"],
        ["(reg, dropout)", ", ".join(f"({r:g}, {p:g})" for r, p in s["grid"])],
        ["training-set sizes", ", ".join(map(str, s["train_sizes"]))],
        ["seeds", ", ".join(map(str, s["seeds"]))]])


def write_gaps_csv(path: str, result: dict) -> None:
    """A row per (size, configuration): its final gap's interval and mean accuracies."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["train_size", "num_train", "reg", "dropout", "seeds", "gap_mean", "gap_low",
                    "gap_high", "train_mean", "val_mean"])
        for c in result["cells"]:
            w.writerow([c["train_size"], c["num_train"], c["reg"], c["dropout"], len(c["seeds"]),
                        f"{c['gap'].mean:.6f}", f"{c['gap'].low:.6f}", f"{c['gap'].high:.6f}",
                        f"{c['train'].mean:.6f}", f"{c['val'].mean:.6f}"])


def write_report(result: dict, out: str) -> list[str]:
    """report.md, results.csv, gaps.csv, results.json and (with matplotlib) gaps.png and
    accuracy.png in ``out``; returns the paths written."""
    name = result["dataset"]["name"]
    figures = [p for p in (
        plots.plot_gaps(os.path.join(out, "gaps.png"), result["cells"],
                        result["conclusion"]["sizes"],
                        f"Train - validation gap on {name} (95% intervals across seeds)"),
        plots.plot_curves(os.path.join(out, "accuracy.png"), result["cells"],
                          f"Accuracy per epoch on {name}: mean and 95% band across seeds"))
        if p]
    report = os.path.join(out, "report.md")
    with open(report, "w") as fh:
        fh.write(report_markdown(result, figures))
    paths = [report, *(os.path.join(out, n) for n in ("results.csv", "gaps.csv",
                                                      "results.json"))]
    write_runs_csv(paths[1], result["runs"])
    write_gaps_csv(paths[2], result)
    write_json(paths[3], result)
    return paths + figures
