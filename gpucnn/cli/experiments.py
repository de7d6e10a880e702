"""``gpucnn reproduce``, ``gpucnn experiment sanity|sweep`` and ``gpucnn visualize-filters``."""
from __future__ import annotations

import sys

import os
import re

from .. import plots
from ..config import RUN, combine
from ..experiments.common import DATASET_MODELS, REPRODUCE, SCHEMA, make_settings, write_json
from ..experiments.reproduce import run_reproduce
from ..experiments.reproduce_report import analyse, print_tables, write_report
from ..experiments.studies import BASE_NET, SWEEPS, run_sanity, run_sweep, write_sanity, write_sweep
from ..train.checks import check_batch_size
from .outputs import check_file, prepare_output
from .settings import add_settings

# Files whose presence means an experiment's output folder holds results ("runs": a sweep's
# finished runs, written one by one).
RESULTS = ("results.json", "report.md", "runs")


def _flags(args) -> dict:
    """The experiment settings given as flags (parsed; see gpucnn.config)."""
    return SCHEMA.from_args(args)[0]


def _finish(paths: list[str]) -> int:
    print("wrote " + ", ".join(paths))
    return 0


def run_reproduce_cmd(args) -> int:
    s = make_settings(REPRODUCE, args.config, _flags(args))
    for size in s.train_sizes:  # "full" is checked once the data is loaded
        if size != "full":
            check_batch_size("--batch-size", s.batch_size, size)
    out = args.output or f"runs/reproduce-{s.dataset}"
    print(f"The source document's reg/dropout experiment (seeds/000) on {s.dataset}: "
          f"{len(s.grid)} configurations x {len(s.train_sizes)} training-set sizes x "
          f"{len(s.seeds)} seeds, each {s.epochs} epochs x {s.iterations_per_epoch} iterations "
          f"of batch {s.batch_size}; runs saved in {out}", flush=True)
    try:
        result = run_reproduce(s, out, fresh=args.fresh, workers=args.workers)
    except KeyboardInterrupt:
        print(f"interrupted: the finished runs are kept in {out}; rerun the same command to "
              f"continue", file=sys.stderr)
        return 130
    if result is None:  # an MPI rank other than 0
        return 0
    result = analyse(result)
    print_tables(result)
    c = result["conclusion"]
    print("\n" + "\n".join(c["text"]) + "\n\nAgainst the source document (seeds/000):\n"
          + "\n".join(c["source"]))
    print(f"\n{len(result['runs'])} runs ({result['skipped']} found finished) in "
          f"{result['seconds']:.1f} s ({result['how']})")
    return _finish(write_report(result, out))


def run_sanity_cmd(args) -> int:
    s = make_settings(SANITY, args.config, _flags(args))
    check_batch_size("--batch-size", s.batch_size, args.subset)  # the subset is the training set
    out = prepare_output("--output", args.output or f"runs/sanity-{s.dataset}", RESULTS,
                         args.overwrite)
    r = run_sanity(s, subset=args.subset, progress=args.progress)
    os.makedirs(out, exist_ok=True)  # checked, not created, before the work
    for name, loss in r["initial_loss"].items():
        print(f"initial loss {name}: {loss:.6f} (ln 10 = {r['ln10']:.6f})")
    run = r["overfit"]
    print(f"{r['subset']} samples after {s.epochs} epochs: train {run['train_acc'][-1]:.4f}, "
          f"validation {run['val_acc'][-1]:.4f} -> {'overfits' if r['overfits'] else 'no overfit'}")
    return _finish(write_sanity(r, out))


def run_sweep_cmd(args) -> int:
    s = make_settings(SWEEP, args.config, _flags(args))
    params = [args.param] if args.param else list(SWEEPS)
    values = _values(args.param, args.values) if args.values else None
    out = prepare_output("--output", args.output or f"runs/sweep-{s.dataset}", RESULTS,
                         args.overwrite)
    runs = os.path.join(out, "runs")

    def save(run: dict) -> None:
        os.makedirs(runs, exist_ok=True)
        write_json(os.path.join(runs, re.sub(r"[^\w.=-]+", "_", run["label"]) + ".json"), run)

    r = run_sweep(s, params, values, best_epochs=args.best_epochs, progress=args.progress,
                  save=save)
    if r is None:
        return 0
    best = r["best"]
    os.makedirs(out, exist_ok=True)  # checked, not created, before the work
    print(f"best net ({r['chosen_from']}, {len(best['val_acc']) - 1} epochs): validation "
          f"{best['best_val_acc']:.4f}, test {best['test_acc']:.4f}")
    return _finish(write_sweep(r, out))


def _values(param: str | None, text: str) -> list:
    if not param:
        raise ValueError(f"--values {text!r}: also give --param to say which setting they are")
    cast = float if param == "dropout" else int
    try:
        values = [cast(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--values {text!r}: expected comma-separated "
                         f"{'numbers' if cast is float else 'integers'} for --param {param}") from None
    # All of them now: a bad last value must not cost the runs before it.
    return [SCHEMA[SWEEPS[param][0]].check(v, f"--values {param}") for v in values]


def run_visualize_filters(args) -> int:
    from ..train import load_weights

    out = args.output or "filters.png"  # before any work: the file, then what draws it
    if os.path.splitext(out)[1].lower() not in plots.FORMATS:
        raise ValueError(f"--output={out}: expected a file name ending in "
                         f"{', '.join(plots.FORMATS)}")
    check_file("--output", out, overwrite=args.overwrite)
    if plots.pyplot() is None:
        raise RuntimeError(f"--output {out}: cannot draw without matplotlib; "
                           f"pip install 'gpucnn[plot]'")
    model, info = load_weights(args.weights)
    params = model.state_dict()
    conv = [k for k, v in params.items() if k.endswith(".weight") and v.ndim == 4]
    if not conv:
        raise ValueError(f"{args.weights}: the model has no convolution layer: nothing to show")
    w = params[conv[0]]
    title = (f"{w.shape[0]} first-layer filters {w.shape[2]}x{w.shape[3]} "
             f"({info.get('dataset', 'unknown data')})")
    plots.plot_filters(out, w, title)
    return _finish([out])


def _add_settings(p, only: tuple[str, ...], defaults: dict) -> None:
    """The experiment settings named in ``only`` as flags (the others keep the experiment's
    values), with ``--config`` and the run flags; ``defaults``: what the help shows."""
    add_settings(p, combine("experiment", SCHEMA, only=only),
                 "settings (flags override --config, which overrides the defaults)", defaults)
    add_settings(p, RUN, "run", {"output": "runs/<experiment>-<dataset>"}, config=False)


SANITY = {**BASE_NET, "weight_scale": 1e-3, "epochs": 10, "iterations_per_epoch": 20}
SWEEP = {**BASE_NET, "epochs": 4, "iterations_per_epoch": 100}
# What --help shows for the settings that depend on the dataset.
PER_DATASET = {key: "per dataset: " + ", ".join(f"{d} {m[key]:g}"
                                                for d, m in DATASET_MODELS.items())
               for key in ("filters", "filter_size", "hidden", "lr")}
# The settings every experiment takes as flags.
COMMON = ("dataset", "data_dir", "device", "epochs", "iterations_per_epoch", "batch_size",
          "optimizer", "lr", "filters", "filter_size", "hidden", "weight_scale", "train_samples",
          "seed")


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="the source document's L2 and dropout experiment: the "
                                         "train/validation gap",
                       description="The source document's reg/dropout experiment (seeds/000), "
                                   "replicated: each (reg, dropout) pair on each training-set "
                                   "size with several seeds; gaps with 95%% intervals, verdicts "
                                   "from paired differences; report.md, CSV, JSON and plots in "
                                   "runs/reproduce-<dataset>. Finished runs are kept: rerunning "
                                   "continues.")
    _add_settings(p, COMMON + ("grid", "seeds", "train_sizes"),
                  {**PER_DATASET, **REPRODUCE, "grid": "0:0,0.01:0,0.01:0.4", "seeds": 8,
                   "train_sizes": "full,200"})
    p.add_argument("--workers", type=int, help="processes on a CPU (default: one per core)")
    p.add_argument("--fresh", action="store_true",
                   help="discard the runs already in the output folder and redo them")
    p.set_defaults(func=run_reproduce_cmd)

    exp = sub.add_parser("experiment", help="the source document's sanity checks and design "
                                            "sweeps (seeds/002)")
    esub = exp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    p = esub.add_parser("sanity", help="initial loss vs ln(10); overfitting a small subset")
    _add_settings(p, COMMON + ("reg", "dropout"), {**PER_DATASET, **SANITY})
    p.add_argument("--subset", type=int, default=100, help="training samples to overfit (100)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results already in --output (refused otherwise)")
    p.set_defaults(func=run_sanity_cmd)
    p = esub.add_parser("sweep", help="vary dropout, hidden size, filters, filter size")
    _add_settings(p, COMMON + ("reg", "dropout"), {**PER_DATASET, **SWEEP})
    p.add_argument("--param", choices=list(SWEEPS), help="sweep only this one (default all)")
    p.add_argument("--values", help="comma-separated values for --param, replacing the source "
                                    "document's")
    p.add_argument("--best-epochs", type=int, help="epochs of the best net's longer run "
                                                   "(default 2 x --epochs)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results already in --output (refused otherwise)")
    p.set_defaults(func=run_sweep_cmd)

    p = sub.add_parser("visualize-filters", help="first-layer filters of saved weights as a PNG")
    p.add_argument("weights", help="a weights.npz written by 'gpucnn train'")
    combine("visualize", RUN, only=("output",)).add_flags(p, {"output": "filters.png"})
    p.add_argument("--overwrite", action="store_true",
                   help="replace the file already at --output (refused otherwise)")
    p.set_defaults(func=run_visualize_filters, output=None)
