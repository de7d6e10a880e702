"""``gpucnn reproduce``, ``gpucnn experiment sanity|sweep`` and ``gpucnn visualize-filters``."""
from __future__ import annotations


from .. import plots
from ..data import DATASETS
from ..experiments.common import make_settings
from ..experiments.reproduce import print_tables, run_reproduce, write_report
from ..experiments.studies import BASE_NET, SWEEPS, run_sanity, run_sweep, write_sanity, write_sweep

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


def _finish(paths: list[str]) -> int:
    print("wrote " + ", ".join(paths))
    return 0


def run_reproduce_cmd(args) -> int:
    grid = _grid(args.grid) if args.grid else None
    s = make_settings({}, args.config, {**_flags(args), "grid": grid})
    print(f"seed 000 reproduction on {s.dataset}: {len(s.grid)} runs of {s.epochs} epochs x "
          f"{s.iterations} iterations of batch {s.batch_size}", flush=True)
    result = run_reproduce(s, progress=args.progress)
    if result is None:  # an MPI rank other than 0
        return 0
    print_tables(result)
    print()
    print("\n".join(result["conclusion"]["text"] + result["conclusion"]["seed"]))
    print(f"\n{len(result['runs'])} runs in {result['seconds']:.1f} s on {result['device']}")
    return _finish(write_report(result, args.out or f"runs/reproduce-{s.dataset}"))


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
    from ..train import load_weights

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
    g.add_argument("--out", help="output folder")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="seed 000: L2 and dropout vs the train/validation gap",
                       description="Seed 000's experiment: one run per (reg, dropout) pair, "
                                   "accuracy tables per epoch, report.md/csv/json and plots "
                                   "in runs/reproduce-<dataset>.")
    _add_settings(p, "digits 16, 28x28 16, cifar10 32")
    p.add_argument("--grid", help="REG:DROPOUT pairs (default 0:0,0.01:0,0.01:0.4)")
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
