"""The source document's design study (seeds/002): sanity checks (initial loss, overfitting a small subset) and design sweeps
around the base net (32 filters 7x7, hidden 500, reg 0.001)."""
from __future__ import annotations

import math
import os
import time

import numpy as np

from .. import plots
from ..distributed import map_runs
from ..config import three_layer_kwargs
from ..models import ThreeLayerConvNet
from .common import (SCHEMA, Settings, load_dataset, markdown_table, prepare_out, public, train_run,
                     write_curves_csv, write_json)

LN10 = math.log(10)
BASE_NET = {"filters": 32, "filter_size": 7, "hidden": 500, "reg": 0.001, "dropout": 0.0}
# The design study's sweeps: flag name -> (model setting, values)
SWEEPS = {
    "dropout": ("dropout", [0.1, 0.3, 0.5, 0.8]),
    "hidden": ("hidden", [300, 500, 700]),
    "filters": ("filters", [16, 32, 48]),
    "filter-size": ("filter_size", [3, 5, 7]),
}
OVERFIT_TRAIN, OVERFIT_GAP = 0.95, 0.10  # "training accuracy near 1, validation far lower"


# -- sanity ----------------------------------------------------------------------------------------
def initial_loss(s: Settings, dataset, reg: float, n: int = 100) -> float:
    """Loss of a freshly initialised base net (weight scale ``s.weight_scale``) on the first ``n``
    training samples, dropout off."""
    model = ThreeLayerConvNet(dataset.meta.shape, num_classes=dataset.meta.num_classes,
                              **{**s.model_kwargs(), "reg": reg, "dropout": 0.0})
    loss, _ = model.loss(dataset.x_train[:n], dataset.y_train[:n])
    return float(loss)


def run_sanity(s: Settings, subset: int = 100, progress: bool = True) -> dict:
    """Initial loss without reg and with reg 0.5, and training on ``subset`` samples."""
    started = time.perf_counter()
    dataset = load_dataset(s)
    losses = {"reg=0": initial_loss(s, dataset, 0.0), "reg=0.5": initial_loss(s, dataset, 0.5)}
    x, y = dataset.subset(subset, seed=s.seed)
    small = {"X_train": x, "y_train": y, "X_val": dataset.x_val, "y_val": dataset.y_val,
             "meta": dataset.meta}
    run = public(train_run(s, small, f"{subset} training samples", progress=progress))
    train, val = run["train_acc"][-1], run["val_acc"][-1]
    return {"settings": s.to_dict(), "dataset": dataset.meta.to_dict(), "ln10": LN10,
            "initial_loss": losses, "subset": subset, "overfit": run,
            "overfits": bool(train >= OVERFIT_TRAIN and train - val >= OVERFIT_GAP),
            "seconds": time.perf_counter() - started}


def sanity_markdown(r: dict) -> str:
    s, run = r["settings"], r["overfit"]
    l0, l5 = r["initial_loss"]["reg=0"], r["initial_loss"]["reg=0.5"]
    train, val = run["train_acc"][-1], run["val_acc"][-1]
    return "\n".join([
        f"# Sanity checks (the source document's design study) on {r['dataset']['name']}", "",
        f"Base net: {s['filters']} filters {s['filter_size']}x{s['filter_size']}, hidden "
        f"{s['hidden']}, weight scale {s['weight_scale']}; {r['seconds']:.1f} s on "
        f"{run['device']}.", "",
        "## Initial loss", "",
        markdown_table(["reg", "loss", "loss - ln(10)"],
                       [["0", f"{l0:.6f}", f"{l0 - LN10:+.6f}"],
                        ["0.5", f"{l5:.6f}", f"{l5 - LN10:+.6f}"]]), "",
        f"Without reg the loss is {'close to' if abs(l0 - LN10) < 0.05 else 'NOT close to'} "
        f"ln(10) = {LN10:.6f} (|difference| {abs(l0 - LN10):.4f}, expected < 0.05); with reg "
        f"0.5 it is {'larger' if l5 > l0 else 'NOT larger'} ({l5 - l0:+.6f}).", "",
        f"## Overfitting {r['subset']} training samples", "",
        f"{s['epochs']} epochs x {s['iterations_per_epoch']} iterations of batch {s['batch_size']}, "
        f"reg {s['reg']:g}, dropout {s['dropout']:g}.", "",
        markdown_table(["epoch", "train", "validation"],
                       [[e, f"{a:.4f}", f"{b:.4f}"]
                        for e, (a, b) in enumerate(zip(run["train_acc"], run["val_acc"]))]), "",
        f"Final training accuracy {train:.4f}, validation {val:.4f} (gap {train - val:+.4f}): "
        f"{'the net overfits the subset' if r['overfits'] else 'NO clear overfitting'} "
        f"(criterion: training >= {OVERFIT_TRAIN} and gap >= {OVERFIT_GAP}).", ""])


def write_sanity(r: dict, out: str) -> list[str]:
    prepare_out(out)
    paths = [os.path.join(out, "report.md"), os.path.join(out, "results.json")]
    with open(paths[0], "w") as fh:
        fh.write(sanity_markdown(r))
    write_json(paths[1], r)
    png = plots.plot_accuracy(os.path.join(out, "overfit.png"), [r["overfit"]],
                              f"Overfitting {r['subset']} {r['dataset']['name']} training samples")
    return paths + ([png] if png else [])


# -- sweeps ----------------------------------------------------------------------------------------
def run_sweep(s: Settings, params: list[str], values: list | None = None,
              best_epochs: int | None = None, progress: bool = True, echo=print,
              save=None) -> dict | None:
    """One run per (parameter, value) around the base net ``s``, then the best of them (highest
    validation accuracy at any epoch) retrained for ``best_epochs`` (default 2 x epochs) and
    scored on the test set.  ``values`` replaces the list of a single parameter; every value is
    checked before the first run.  ``save(run)``, if given, gets each run's JSON-able result as
    soon as it finishes (so a later failure loses no finished run)."""
    if values is not None and len(params) != 1:
        raise ValueError(f"values={values!r}: give one parameter with them, got {params}")
    unknown = [p for p in params if p not in SWEEPS]
    if unknown or not params:
        raise ValueError(f"param={unknown or params!r}: expected some of {', '.join(SWEEPS)}")
    if values is not None:
        values = [SCHEMA[SWEEPS[params[0]][0]].check(v, "values") for v in values]
    started = time.perf_counter()
    dataset = load_dataset(s)
    jobs = [(p, SWEEPS[p][0], v) for p in params for v in (values or SWEEPS[p][1])]

    def one(job):
        param, key, value = job
        run = train_run(s, dataset, f"{param}={value:g}", progress=progress, **{key: value})
        run["settings"]["param"] = param
        echo(f"{run['label']}: best validation accuracy {run['best_val_acc']:.3f}")
        if save:
            save(public(run))
        return public(run)

    runs = map_runs(one, jobs)
    if runs is None:
        return None
    best = max(runs, key=lambda r: r["best_val_acc"])
    key = SWEEPS[best["settings"]["param"]][0]
    overrides = {key: best["settings"][key]}
    longer = best_epochs or 2 * s.epochs
    final = train_run(s, dataset, f"best: {best['label']}", epochs=longer, progress=progress,
                      **overrides)
    final["test_acc"] = _test_accuracy(final, dataset)
    if save:
        save(public(final))
    return {"settings": s.to_dict(), "dataset": dataset.meta.to_dict(), "params": params,
            "runs": runs, "best": public(final), "chosen_from": best["label"],
            "seconds": time.perf_counter() - started}


def _test_accuracy(run: dict, dataset) -> float:
    """Test accuracy of ``run``'s model with its best-validation-epoch parameters."""
    model = ThreeLayerConvNet(dataset.meta.shape, num_classes=dataset.meta.num_classes,
                              **three_layer_kwargs(run["settings"]))
    model.load_state_dict(run["best_params"])
    return float(np.mean(model.predict(dataset.x_test) == dataset.y_test))


def sweep_markdown(r: dict) -> str:
    s, best = r["settings"], r["best"]
    lines = [f"# Design sweeps (the source document's design study) on {r['dataset']['name']}", "",
             f"Base net: {s['filters']} filters {s['filter_size']}x{s['filter_size']}, hidden "
             f"{s['hidden']}, reg {s['reg']:g}, dropout {s['dropout']:g}; each run "
             f"{s['epochs']} epochs x {s['iterations_per_epoch']} iterations of batch {s['batch_size']} "
             f"({s['optimizer']}, lr {s['lr']:g}); {r['seconds']:.1f} s in all on "
             f"{best['device']}.", ""]
    for param in r["params"]:
        runs = [x for x in r["runs"] if x["settings"]["param"] == param]
        lines += [f"## {param}", "", f"![{param}](sweep-{param}.png)", "",
                  markdown_table(["value", "final train", "final validation", "gap",
                                  "best validation (epoch)"],
                                 [[x["label"].split("=", 1)[1], f"{x['train_acc'][-1]:.4f}",
                                   f"{x['val_acc'][-1]:.4f}",
                                   f"{x['train_acc'][-1] - x['val_acc'][-1]:+.4f}",
                                   f"{x['best_val_acc']:.4f} ({x['best_epoch']})"] for x in runs]),
                  ""]
    lines += ["## Best net", "",
              f"Chosen: {r['chosen_from']} (highest validation accuracy of all sweep runs), the "
              f"base net otherwise; retrained for {len(best['val_acc']) - 1} "
              f"epochs: best validation accuracy {best['best_val_acc']:.4f} at epoch "
              f"{best['best_epoch']}; **test accuracy {best['test_acc']:.4f}** with that epoch's "
              f"parameters ({r['dataset']['sizes'][2]} test samples).", ""]
    return "\n".join(lines)


def write_sweep(r: dict, out: str) -> list[str]:
    prepare_out(out)
    paths = [os.path.join(out, n) for n in ("report.md", "results.csv", "results.json")]
    with open(paths[0], "w") as fh:
        fh.write(sweep_markdown(r))
    write_curves_csv(paths[1], r["runs"], ("param", "filters", "filter_size", "hidden",
                                           "dropout", "reg"))
    write_json(paths[2], r)
    for param in r["params"]:
        runs = [x for x in r["runs"] if x["settings"]["param"] == param]
        png = plots.plot_accuracy(os.path.join(out, f"sweep-{param}.png"), runs,
                                  f"Sweep of {param} on {r['dataset']['name']} "
                                  f"(train solid, validation dashed)")
        if png:
            paths.append(png)
    return paths
