"""Seed 000's experiment: does L2 and does dropout change the train/validation gap?

Protocol: epochs of ``iterations`` updates; accuracy on ``train_samples`` training samples and on
the validation set before training (epoch 0) and after each epoch; one run per (reg, dropout)
pair of the grid, by default (0, 0), (0.01, 0), (0.01, 0.4).  The conclusion is computed from the
final gaps with a threshold derived from the evaluation sets' sampling noise.
"""
from __future__ import annotations

import math
import os
import platform
import time

from ..distributed import map_runs
from .. import plots
from .common import (Settings, load_dataset, markdown_seed_table, markdown_table, prepare_out,
                     public, seed_table, train_run, write_curves_csv, write_json)

# Seed 000's own tables (the result being reproduced), for the report's comparison.
SEED_000 = [
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
SEED_CLAIMS = {"l2": "little", "dropout": "narrowed"}
Z = 2.0  # gap differences under Z standard errors are read as "no change"


def run_label(reg: float, dropout: float) -> str:
    return f"reg={reg:g}, dropout={dropout:g}"


def run_reproduce(s: Settings, progress: bool = True, echo=print) -> dict | None:
    """Train the grid's runs (spread over MPI ranks when launched so) and return the results:
    ``settings``, ``runs`` (see :func:`train_run`), ``conclusion``, ``seconds``, ``device``.
    Ranks other than 0 return None."""
    started = time.perf_counter()
    dataset = load_dataset(s)

    def one(pair):
        reg, dropout = pair
        run = train_run(s, dataset, run_label(reg, dropout), reg=reg, dropout=dropout,
                        progress=progress)
        echo(f"{run['label']}: final validation accuracy {run['val_acc'][-1]:.3f} "
             f"({run['seconds']:.1f} s on {run['device']})")
        return public(run)

    runs = map_runs(one, s.grid)
    if runs is None:
        return None
    return {"settings": s.to_dict(), "dataset": dataset.meta.to_dict(), "runs": runs,
            "conclusion": conclude(runs), "seconds": time.perf_counter() - started,
            "device": runs[0]["device"], "host": platform.node(), "cpu_count": os.cpu_count()}


def gap_stats(run: dict) -> tuple[float, float]:
    """(final train - validation gap, its standard error from binomial sampling of both sets).

    Proportions use (k + 1) / (n + 2) so a perfect 1.0 still carries some uncertainty.
    """
    pt, pv = run["train_acc"][-1], run["val_acc"][-1]
    nt, nv = run["num_train_eval"], run["num_val"]

    def var(p, n):
        q = (p * n + 1) / (n + 2)
        return q * (1 - q) / n

    return pt - pv, math.sqrt(var(pt, nt) + var(pv, nv))


def compare(base: dict, other: dict) -> dict:
    """How ``other``'s final gap differs from ``base``'s: change, threshold, verdict."""
    g0, se0 = gap_stats(base)
    g1, se1 = gap_stats(other)
    threshold = Z * math.hypot(se0, se1)
    change = g1 - g0
    verdict = "little" if abs(change) < threshold else ("narrowed" if change < 0 else "widened")
    return {"from": base["label"], "to": other["label"], "gap_from": g0, "gap_to": g1,
            "change": change, "threshold": threshold, "verdict": verdict,
            "val_from": base["val_acc"][-1], "val_to": other["val_acc"][-1]}


def conclude(runs: list[dict]) -> dict:
    """The effects the grid can show, from the numbers.

    ``l2``: each run with reg > 0 and no dropout against the run with neither.  ``dropout``: each
    run with dropout against the run with the same reg and none.  Each entry is :func:`compare`'s
    dict; ``text`` is the conclusion in sentences; ``seed`` says where it agrees with seed 000.
    """
    by_pair = {(r["settings"]["reg"], r["settings"]["dropout"]): r for r in runs}
    l2 = [compare(by_pair[(0.0, 0.0)], r) for (reg, p), r in by_pair.items()
          if reg > 0 and p == 0 and (0.0, 0.0) in by_pair]
    drop = [compare(by_pair[(reg, 0.0)], r) for (reg, p), r in by_pair.items()
            if p > 0 and (reg, 0.0) in by_pair]
    text = [_sentence("L2 alone", c) for c in l2] or [
        "The grid has no (reg > 0, dropout 0) run beside a (0, 0) run: no statement on L2 alone."]
    text += [_sentence("Dropout", c) for c in drop] or [
        "The grid has no dropout run beside a run with the same reg and no dropout: no "
        "statement on dropout."]
    if (0.0, 0.0) in by_pair:
        text.insert(0, _baseline_sentence(by_pair[(0.0, 0.0)]))
    seed = _against_seed(l2, drop)
    return {"l2": l2, "dropout": drop, "text": text, "seed": seed, "z": Z}


def _baseline_sentence(run: dict) -> str:
    """Whether the unregularised run overfits at all, i.e. whether there is a gap to close."""
    gap, se = gap_stats(run)
    if gap < Z * se:
        return (f"The unregularised run barely overfits: its final gap {gap:+.4f} is within "
                f"{Z:g} standard errors ({Z * se:.4f}) of zero, so there is little gap for L2 or "
                f"dropout to close.")
    return (f"The unregularised run overfits: its final gap {gap:+.4f} exceeds {Z:g} standard "
            f"errors ({Z * se:.4f}).")


def _sentence(what: str, c: dict) -> str:
    moved = {"little": "changed the gap by less than the noise threshold",
             "narrowed": "narrowed the gap", "widened": "widened the gap"}[c["verdict"]]
    return (f"{what} ({c['from']} -> {c['to']}) {moved}: final train-validation gap "
            f"{c['gap_from']:+.4f} -> {c['gap_to']:+.4f} (change {c['change']:+.4f}; threshold "
            f"+/-{c['threshold']:.4f}); validation accuracy {c['val_from']:.4f} -> "
            f"{c['val_to']:.4f}.")


def _against_seed(l2: list[dict], drop: list[dict]) -> list[str]:
    """Sentences comparing the verdicts with seed 000's claims, one per kind of effect."""
    claims = {"l2": ("0.01 L2 alone changes little", l2),
              "dropout": ("dropout narrows the gap", drop)}
    out = []
    for key, (claim, comparisons) in claims.items():
        if not comparisons:
            out.append(f"Seed 000: \"{claim}\": not tested by this grid.")
            continue
        verdicts = sorted({c["verdict"] for c in comparisons})
        agree = verdicts == [SEED_CLAIMS[key]]
        out.append(f"Seed 000: \"{claim}\": {'agrees' if agree else 'differs'} (here: "
                   f"{', '.join(verdicts)}).")
    return out


def seed_gaps() -> list[str]:
    """Seed 000's own final gaps, computed from its tables."""
    return [f"{run_label(r['reg'], r['dropout'])}: {r['train_acc'][-1] - r['val_acc'][-1]:+.3f} "
            f"(epoch {len(r['val_acc']) - 1})" for r in SEED_000]


def print_tables(result: dict, echo=print) -> None:
    """Each run's table as seed 000 prints it."""
    for run in result["runs"]:
        st = run["settings"]
        echo(f"\nAccuracy for reg = {st['reg']:g} and dropout rate = {st['dropout']:g}\n")
        echo(seed_table(run["train_acc"], run["val_acc"]))


def report_markdown(result: dict) -> str:
    s, c = result["settings"], result["conclusion"]
    meta = result["dataset"]
    lines = [f"# Regularization and dropout (seed 000) on {meta['name']}", "",
             f"{len(result['runs'])} runs in {result['seconds']:.1f} s on {result['device']} "
             f"({result['cpu_count']} CPUs). Each epoch is {s['iterations_per_epoch']} iterations of batch "
             f"{s['batch_size']}; accuracy on {result['runs'][0]['num_train_eval']} training "
             f"samples and on the {result['runs'][0]['num_val']} validation samples; epoch 0 is "
             f"before training.", "", "## Settings", "",
             markdown_table(["setting", "value"], [
                 ["dataset", f"{meta['name']} {tuple(meta['shape'])}, splits "
                             f"{tuple(meta['sizes'])} (train, val, test)"],
                 ["model", f"ThreeLayerConvNet: {s['filters']} filters "
                           f"{s['filter_size']}x{s['filter_size']}, hidden {s['hidden']}, "
                           f"init {'He' if s['weight_scale'] is None else s['weight_scale']}"],
                 ["optimizer", f"{s['optimizer']}, lr {s['lr']:g}"],
                 ["epochs x iterations x batch", f"{s['epochs']} x {s['iterations_per_epoch']} x "
                                                 f"{s['batch_size']}"],
                 ["seed", s["seed"]]]), ""]
    for run in result["runs"]:
        st = run["settings"]
        lines += [f"## Accuracy for reg = {st['reg']:g} and dropout rate = {st['dropout']:g}",
                  "", markdown_seed_table(run["train_acc"], run["val_acc"]), ""]
    lines += ["## Final train-validation gaps", "",
              markdown_table(["run", "train", "validation", "gap", "std. error", "seconds"],
                             [_gap_row(r) for r in result["runs"]]), "",
              "## Conclusion", "",
              *[f"- {t}" for t in c["text"]], "",
              f"Threshold: {c['z']:g} standard errors of the difference between two gaps, each "
              f"gap's error from binomial sampling of its training subset and validation set. It "
              f"ignores run-to-run variation (initialisation, batch order), so a change just "
              f"above it is weak evidence.", "",
              "### Against seed 000", "",
              *[f"- {t}" for t in c["seed"]],
              f"- Seed 000's own final gaps: {'; '.join(seed_gaps())}.", ""]
    return "\n".join(lines)


def _gap_row(run: dict) -> list:
    gap, se = gap_stats(run)
    return [run["label"], f"{run['train_acc'][-1]:.4f}", f"{run['val_acc'][-1]:.4f}",
            f"{gap:+.4f}", f"{se:.4f}", f"{run['seconds']:.1f}"]


def write_report(result: dict, out: str) -> list[str]:
    """report.md, results.csv, results.json and (with matplotlib) accuracy.png and loss.png in
    ``out``; returns the paths written."""
    prepare_out(out)
    paths = [os.path.join(out, n) for n in ("report.md", "results.csv", "results.json")]
    with open(paths[0], "w") as fh:
        fh.write(report_markdown(result))
    write_curves_csv(paths[1], result["runs"], ("reg", "dropout"))
    write_json(paths[2], result)
    name = result["dataset"]["name"]
    for png in (plots.plot_accuracy(os.path.join(out, "accuracy.png"), result["runs"],
                                    f"Accuracy per epoch on {name} (train solid, validation dashed)"),
                plots.plot_loss(os.path.join(out, "loss.png"), result["runs"],
                                f"Training loss on {name}")):
        if png:
            paths.append(png)
    return paths
