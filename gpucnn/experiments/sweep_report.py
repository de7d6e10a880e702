"""``gpucnn experiment sweep``'s outputs: report.md (conclusion, the source document's claims
beside ours, a table per swept parameter), results.csv, summary.csv, results.json and, with
matplotlib, a figure of the intervals per training-set size."""
from __future__ import annotations

import csv
import os

from .. import plots
from .common import markdown_table, runs_line, write_json, write_runs_csv
from .sweep_analysis import METRICS, conclude, summarise

SOURCE_BEST = ("the source's best net is the base net with 16 filters instead of 32: 85% test "
               "accuracy on CIFAR-10 after 10 epochs (one run)")
FIGURE = ("Per swept parameter (column), top: final training (hollow) and validation (filled) "
          "accuracy per value, mean across seeds with its 95% interval; bottom: each value's "
          "change against the base net, paired by seed, with its 95% interval: validation "
          "accuracy (circles; above zero = better) and gap (diamonds; above zero = more "
          "overfitting). Pairing removes what runs of one seed share, so the bottom intervals "
          "are narrower than the top ones suggest.")


def analyse(result: dict) -> dict:
    """``result`` (from :func:`.sweep.run_sweep`) with ``cells`` (:func:`summarise`) and
    ``conclusion`` (:func:`conclude`) added."""
    cells = summarise(result["runs"])
    return {**result, "cells": cells,
            "conclusion": conclude(cells, result["swept"], result["base"])}


def claim_sentences(conclusion: dict) -> list[str]:
    """One sentence per claim of the source document: our word on it, size by size."""
    sizes = conclusion["sizes"]
    out = []
    for i, first in enumerate(sizes[0]["claims"]):
        parts = [f"{s['claims'][i]['word']} with {s['name']} "
                 f"({'; '.join(s['claims'][i]['evidence'])})" for s in sizes]
        out.append(f"\"{first['claim']}\": " + "; ".join(parts) + ".")
    return out


def _pm(iv, fmt: str = ".3f") -> str:
    """``0.937 ± 0.007`` (mean and 95% half-width), ``0.937 (1 seed)`` without an interval."""
    return f"{iv.mean:{fmt}} (1 seed)" if iv.n < 2 else f"{iv.mean:{fmt}} ± {iv.half:.3f}"


def _param_table(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        iv, c = r["cell"]["intervals"], r["comparison"]
        change = (["(base)", "(base)", "base net", ""] if c is None else
                  [_pm(c["changes"]["val"], "+.3f"), _pm(c["changes"]["gap"], "+.3f"),
                   f"**{c['verdict']}**", c["overfit"]])
        lines.append([f"{r['value']:g}", _pm(iv["train"]), _pm(iv["val"]),
                      _pm(iv["gap"], "+.3f"), *change])
    return markdown_table(["value", "train", "validation", "gap", "validation vs base",
                           "gap vs base", "verdict", "overfitting"], lines)


def report_markdown(result: dict, figures: dict) -> str:
    c, meta = result["conclusion"], result["dataset"]
    configs = len({(r["spec"]["param"], r["spec"]["value"]) for r in result["runs"]})
    lines = [f"# Design sweeps on {meta['name']}: the source document's (seeds/002) study, "
             f"replicated", "", runs_line(result, configs), "", "## Conclusion", "",
             *[f"- {t}" for t in c["text"]], "", "### Against the source document (seeds/002)",
             "", *[f"- {t}" for t in claim_sentences(c)], f"- For comparison, {SOURCE_BEST}.",
             "", "## Figures", ""]
    lines += [f"- `{os.path.basename(f)}` ({name}): {FIGURE}" for name, f in figures.items()] or [
        "- none: matplotlib is not installed (pip install 'gpucnn[plot]')."]
    for size in c["sizes"]:
        lines += ["", f"## {size['name'][0].upper() + size['name'][1:]}"]
        for param, rows in size["rows"].items():
            lines += ["", f"### {param}", "", _param_table(rows)]
    lines += ["", "## How to read it", "", _method(c), "", "## Settings", "",
              _settings_table(result), ""]
    return "\n".join(lines)


def _method(c: dict) -> str:
    level, m = c["sizes"][0]["family_level"], len(c["sizes"][0]["comparisons"])
    return (f"Each cell is the mean across seeds of a final accuracy (after the last epoch) "
            f"± the half-width of its 95% Student t interval; the gap is training minus "
            f"validation accuracy. \"vs base\" is the mean of per-seed differences from the base "
            f"net with the same seed (same initialisation stream, batch order, dropout stream "
            f"and training subset), so its interval is that of the effect itself. A value is "
            f"**better** / **worse** when the interval of its validation change lies above / "
            f"below zero, **indistinguishable** otherwise (which does not mean equal: the "
            f"interval says how large a difference is not ruled out); it overfits more / less "
            f"when that of the gap does. Each interval is 95% on its own: if none of the "
            f"{m} values changed anything, some interval would still miss zero with "
            f"probability about 1 - 0.95^{m} = {1 - 0.95 ** m:.0%} (roughly: they share the "
            f"base net's runs), so the best net is chosen only among values better at the "
            f"family-wise level (Bonferroni, {100 * level:.3g}% each, all {m} together 95%), "
            f"by the largest mean improvement; its test accuracy (the test split, used for "
            f"nothing else) is compared with the base net's the same way.")


def _settings_table(result: dict) -> str:
    s, meta = result["settings"], result["dataset"]
    return markdown_table(["setting", "value"], [
        ["dataset", f"{meta['name']} {tuple(meta['shape'])}, splits {tuple(meta['sizes'])} "
                    f"(train, val, test), split seed {s['seed']}"],
        ["base net", f"ThreeLayerConvNet: {s['filters']} filters {s['filter_size']}x"
                     f"{s['filter_size']}, hidden {s['hidden']}, reg {s['reg']:g}, dropout "
                     f"{s['dropout']:g}, init "
                     f"{'He' if s['weight_scale'] is None else s['weight_scale']}"],
        ["swept", "; ".join(f"{p}: {', '.join(f'{v:g}' for v in vs)}"
                            for p, vs in result["swept"].items())],
        ["optimizer", f"{s['optimizer']}, lr {s['lr']:g}"],
        ["epochs x iterations x batch", f"{s['epochs']} x {s['iterations_per_epoch']} x "
                                        f"{s['batch_size']}"],
        ["training accuracy on", f"up to {s['train_samples']} training samples"],
        ["training-set sizes", ", ".join(map(str, s["train_sizes"]))],
        ["seeds", ", ".join(map(str, s["seeds"]))]])


def write_summary_csv(path: str, conclusion: dict) -> None:
    """A row per (size, parameter, value): seeds, each metric's mean and 95% bounds, the
    paired changes against the base net and the verdicts."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["train_size", "num_train", "param", "value", "seeds",
                    *(f"{m}_{k}" for m in METRICS for k in ("mean", "low", "high")),
                    *(f"{m}_change_{k}" for m in ("val", "gap") for k in ("mean", "low", "high")),
                    "verdict", "overfitting"])
        for size in conclusion["sizes"]:
            for param, rows in size["rows"].items():
                for r in rows:
                    iv, c = r["cell"]["intervals"], r["comparison"]
                    changes = ([""] * 6 if c is None else
                               [f"{x:.6f}" for m in ("val", "gap")
                                for x in (c["changes"][m].mean, c["changes"][m].low,
                                          c["changes"][m].high)])
                    w.writerow([size["train_size"], size["num_train"], param, r["value"],
                                len(r["cell"]["seeds"]),
                                *(f"{x:.6f}" for m in METRICS
                                  for x in (iv[m].mean, iv[m].low, iv[m].high)),
                                *changes, "base" if c is None else c["verdict"],
                                "" if c is None else c["overfit"]])


def write_sweep(result: dict, out: str) -> list[str]:
    """report.md, results.csv, summary.csv, results.json and (with matplotlib) a figure per
    training-set size, ``sweep-<size>.png``, in ``out``; returns the paths written."""
    name = result["dataset"]["name"]
    figures = {}
    for size in result["conclusion"]["sizes"]:
        tag = "full" if size["train_size"] == "full" else f"n{size['train_size']}"
        png = plots.plot_sweep(os.path.join(out, f"sweep-{tag}.png"), size["rows"],
                               f"Design sweeps on {name}, {size['name']}: means and paired "
                               f"changes with 95% intervals across seeds")
        if png:
            figures[size["name"]] = png
    paths = [os.path.join(out, n) for n in ("report.md", "results.csv", "summary.csv",
                                            "results.json")]
    with open(paths[0], "w") as fh:
        fh.write(report_markdown(result, figures))
    write_runs_csv(paths[1], result["runs"])
    write_summary_csv(paths[2], result["conclusion"])
    write_json(paths[3], result)
    return paths + list(figures.values())
