"""``gpucnn reproduce``, ``gpucnn experiment sanity|sweep`` and ``gpucnn visualize-filters``."""
from __future__ import annotations

import argparse
import sys

from .. import plots
from ..data import DATASETS
from .common import make_settings
from .reproduce import run_reproduce
from .reproduce_report import analyse, print_tables, write_report
from .studies import BASE_NET, SWEEPS, run_sanity, run_sweep, write_sanity, write_sweep

# flag dest -> Settings field, for the flags every experiment takes
SETTING_FLAGS = ("dataset", "device", "epochs", "iterations", "batch_size", "optimizer", "lr",
                 "num_filters", "filter_size", "hidden_dim", "weight_scale", "reg", "dropout",
                 "train_samples", "seed")


def _flags(args, extra: tuple[str, ...] = ()) -> dict:
    return {k: getattr(args, k, None) for k in SETTING_FLAGS + extra}


def _grid(text: str) -> list[list[float]]:
    """'0:0,0.01:0,0.01:0.4' -> [[0, 0], [0.01, 0], [0.01, 0.4]]."""
    try:
        return [[float(x) for x in pair.split(":")] for pair in text.split(",")]
    except ValueError:
        raise ValueError(f"--grid {text!r}: expected REG:DROPOUT pairs separated by commas, "
                         f"e.g. 0:0,0.01:0,0.01:0.4") from None


def _seeds(text: str) -> int | list[int]:
    """'5' -> 5 (seeds 0..4); '3,7,11' -> [3, 7, 11]."""
    try:
        return [int(v) for v in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected a count (e.g. 5) or a comma list of "
                         f"seeds (e.g. 3,7,11)") from None


def _train_sizes(text: str) -> list:
    """'full,200' -> ["full", 200]."""
    try:
        return [v if v == "full" else int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--train-sizes {text!r}: expected comma-separated sample counts or "
                         f"'full', e.g. full,200") from None


def _finish(paths: list[str]) -> int:
    print("wrote " + ", ".join(paths))
    return 0


def run_reproduce_cmd(args) -> int:
    grid = {"grid": _grid(args.grid) if args.grid else None,
            "seeds": _seeds(args.seeds) if args.seeds else None,
            "train_sizes": _train_sizes(args.train_sizes) if args.train_sizes else None}
    s = make_settings({}, args.config, {**_flags(args), **grid})
    out = args.out or f"runs/reproduce-{s.dataset}"
    print(f"The source document's (seeds/000) experiment on {s.dataset}: "
          f"{len(s.grid)} configurations x {len(s.train_sizes)} training-set sizes x "
          f"{len(s.seeds)} seeds, each {s.epochs} epochs x {s.iterations} iterations of batch "
          f"{s.batch_size}; runs saved in {out}", flush=True)
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
    s = make_settings({**BASE_NET, "weight_scale": 1e-3, "epochs": 10, "iterations": 20},
                      args.config, _flags(args))
    r = run_sanity(s, subset=args.subset, progress=args.progress)
    for name, loss in r["initial_loss"].items():
        print(f"initial loss {name}: {loss:.6f} (ln 10 = {r['ln10']:.6f})")
    run = r["overfit"]
    print(f"{r['subset']} samples after {s.epochs} epochs: train {run['train_acc'][-1]:.4f}, "
          f"validation {run['val_acc'][-1]:.4f} -> {'overfits' if r['overfits'] else 'no overfit'}")
    return _finish(write_sanity(r, args.out or f"runs/sanity-{s.dataset}"))


def run_sweep_cmd(args) -> int:
    s = make_settings({**BASE_NET, "epochs": 4, "iterations": 100}, args.config, _flags(args))
    params = [args.param] if args.param else list(SWEEPS)
    values = _values(args.param, args.values) if args.values else None
    r = run_sweep(s, params, values, best_epochs=args.best_epochs, progress=args.progress)
    if r is None:
        return 0
    best = r["best"]
    print(f"best net ({r['chosen_from']}, {len(best['val_acc']) - 1} epochs): validation "
          f"{best['best_val_acc']:.4f}, test {best['test_acc']:.4f}")
    return _finish(write_sweep(r, args.out or f"runs/sweep-{s.dataset}"))


def _values(param: str | None, text: str) -> list:
    if not param:
        raise ValueError(f"--values {text!r}: also give --param to say which setting they are")
    cast = float if param == "dropout" else int
    try:
        return [cast(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--values {text!r}: expected comma-separated "
                         f"{'numbers' if cast is float else 'integers'} for --param {param}") from None


def run_visualize_filters(args) -> int:
    from ..checkpoint import load_weights

    model, info = load_weights(args.weights)
    params = model.state_dict()
    conv = [k for k, v in params.items() if k.endswith(".weight") and v.ndim == 4]
    if not conv:
        raise ValueError(f"{args.weights}: the model has no convolution layer: nothing to show")
    w = params[conv[0]]
    title = (f"{w.shape[0]} first-layer filters {w.shape[2]}x{w.shape[3]} "
             f"({info.get('dataset', 'unknown data')})")
    if plots.plot_filters(args.out, w, title) is None:
        raise RuntimeError(f"--out {args.out}: cannot draw a PNG without matplotlib; "
                           f"pip install 'gpucnn[plot]'")
    return _finish([args.out])


def _add_settings(p, model_help: str) -> None:
    g = p.add_argument_group("settings (flags override --config, which overrides the defaults)")
    g.add_argument("--config", metavar="TOML", help="settings file; keys as these flags with _ "
                                                    "(e.g. batch_size = 50)")
    g.add_argument("--dataset", choices=DATASETS, help="default digits (embedded)")
    g.add_argument("--device", help="cpu, cuda or auto (default: $GPUCNN_DEVICE or auto)")
    g.add_argument("--epochs", type=int, help="epochs per run")
    g.add_argument("--iterations", type=int, help="updates per epoch")
    g.add_argument("--batch-size", type=int, help="samples per update (default 50)")
    g.add_argument("--optimizer", help="update rule (default adam)")
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    g.add_argument("--filters", dest="num_filters", type=int, help=f"conv filters ({model_help})")
    g.add_argument("--filter-size", type=int, help="odd conv filter size")
    g.add_argument("--hidden", dest="hidden_dim", type=int, help="hidden units")
    g.add_argument("--weight-scale", type=float, help="init std (default He)")
    g.add_argument("--train-samples", type=int, help="training samples scored per epoch (1000)")
    g.add_argument("--seed", type=int, help="seed of the split, init, dropout, batches (0)")
    g.add_argument("--output", dest="out", metavar="DIR", help="output folder")
    g.add_argument("--out", dest="out", help=argparse.SUPPRESS)  # the older name, still read
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="seeds/000: L2 and dropout vs the train/validation gap",
                       description="The source document's (seeds/000) experiment, replicated: "
                                   "each (reg, dropout) pair on each training-set size with "
                                   "several seeds; gaps with 95%% intervals, verdicts from "
                                   "paired differences; report.md, CSV, JSON and plots in "
                                   "runs/reproduce-<dataset>. Finished runs are kept: rerunning "
                                   "continues.")
    _add_settings(p, "digits 16, 28x28 16, cifar10 32")
    p.add_argument("--grid", help="REG:DROPOUT pairs (default 0:0,0.01:0,0.01:0.4)")
    p.add_argument("--seeds", help="replicates: a count N (seeds 0..N-1; default 8) or a comma "
                                   "list of seeds; --seed still fixes the data split")
    p.add_argument("--train-sizes", help="training-set sizes: 'full' or sample counts, comma "
                                         "separated (default full,200)")
    p.add_argument("--workers", type=int, help="processes on a CPU (default: one per core)")
    p.add_argument("--fresh", action="store_true",
                   help="discard the runs already in the output folder and redo them")
    p.set_defaults(func=run_reproduce_cmd)

    exp = sub.add_parser("experiment", help="seed 002's sanity checks and design sweeps")
    esub = exp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    p = esub.add_parser("sanity", help="initial loss vs ln(10); overfitting a small subset")
    _add_settings(p, "base net 32")
    p.add_argument("--reg", type=float, help="base net L2 for the overfit run (0.001)")
    p.add_argument("--dropout", type=float, help="base net dropout for the overfit run (0)")
    p.add_argument("--subset", type=int, default=100, help="training samples to overfit (100)")
    p.set_defaults(func=run_sanity_cmd)
    p = esub.add_parser("sweep", help="vary dropout, hidden size, filters, filter size")
    _add_settings(p, "base net 32")
    p.add_argument("--reg", type=float, help="base net L2 (0.001)")
    p.add_argument("--dropout", type=float, help="base net dropout (0)")
    p.add_argument("--param", choices=list(SWEEPS), help="sweep only this one (default all)")
    p.add_argument("--values", help="comma-separated values for --param, replacing seed 002's")
    p.add_argument("--best-epochs", type=int, help="epochs of the best net's longer run "
                                                   "(default 2 x --epochs)")
    p.set_defaults(func=run_sweep_cmd)

    p = sub.add_parser("visualize-filters", help="first-layer filters of saved weights as a PNG")
    p.add_argument("weights", help="a weights.npz written by 'gpucnn train'")
    p.add_argument("--out", default="filters.png", help="PNG to write (default filters.png)")
    p.set_defaults(func=run_visualize_filters)
