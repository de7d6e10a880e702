"""``gpucnn train`` and ``gpucnn evaluate``.

``train`` fits a model to a dataset of :mod:`gpucnn.data`, prints one table row per epoch and
leaves in its output folder ``checkpoint.npz`` (the latest state, for ``--resume``),
``weights.npz`` (the final parameters and the model's description, for ``evaluate``) and
``history.json``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

from ..distributed import get_world
from ..distributed.launch import launch
from ..data import DATASETS, load
from ..models import ThreeLayerConvNet, build_model, model_from_config, read_spec
from ..optim import OPTIMIZERS
from ..train import CHECKPOINT_NAME, Trainer, TrainingInterrupted, load_weights, save_weights
from ..train.checkpoint import load_checkpoint
from .main import USER_ERRORS

# Flags that shape a run; on --resume they come from the checkpoint instead.
DEFAULTS = {"dataset": "digits", "model": "three-layer", "filters": 16, "filter_size": 3,
            "hidden": 100, "weight_scale": None, "activation": "relu", "reg": 0.0, "dropout": 0.0,
            "optimizer": "adam", "lr": 3e-3, "lr_decay": 1.0, "momentum": None, "batch_size": 50,
            "iterations_per_epoch": None, "seed": 0}
RESUMABLE = ("epochs", "device", "progress")


def _make_model(a, input_dim, num_classes):
    if a.model == "three-layer":
        return ThreeLayerConvNet(input_dim, a.filters, a.filter_size, a.hidden, num_classes,
                                 a.weight_scale, a.reg, a.dropout, seed=a.seed,
                                 activation=a.activation)
    if not os.path.isfile(a.model):
        raise FileNotFoundError(f"--model {a.model}: expected 'three-layer' or a TOML file of "
                                f"[[layers]]")
    return build_model(read_spec(a.model), input_dim, reg=a.reg, seed=a.seed)


def run_train(args) -> int:
    if args.resume:
        given = [k for k in DEFAULTS if getattr(args, k) is not None]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"{flags}: a resumed run keeps its checkpoint's settings; only "
                             f"--epochs, --device and --no-progress may be given with --resume")
        trainer, dataset = _resume(args)
    else:
        for k, v in DEFAULTS.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
        trainer, dataset = _new_run(args)
    model = trainer.model
    print(f"training on {dataset.meta.name} ({len(dataset.y_train)} train, {len(dataset.y_val)} "
          f"validation) on {trainer.device}: {trainer.optimizer_name} "
          f"{json.dumps(trainer.optim_config)}, {trainer.num_epochs} epochs x "
          f"{trainer.iterations_per_epoch} iterations of {trainer.batch_size}")
    print(f"model: {model.net!r}".replace("\n", "\n       "))
    if args.resume:
        print(f"resuming {trainer.checkpoint_path} after epoch {trainer.epoch}, iteration "
              f"{trainer.iteration}")
    try:
        history = trainer.train()
    except TrainingInterrupted as e:
        print(f"interrupted after iteration {e.iteration}; checkpoint written to {e.checkpoint}\n"
              f"resume with: gpucnn train --resume {e.checkpoint}", file=sys.stderr)
        return 130
    if not trainer.world.is_root:
        return 0  # data parallel: rank 0 writes the results
    out = trainer.checkpoint_dir
    weights = os.path.join(out, "weights.npz")
    save_weights(weights, model, {"dataset": dataset.meta.name,
                                  "val_acc": history.val_acc[-1]})
    with open(os.path.join(out, "history.json"), "w") as fh:
        json.dump(history.to_dict(), fh, indent=1)
    print(f"best validation accuracy {history.best_val_acc:.3f} at epoch {history.best_epoch}; "
          f"final weights: {weights}")
    return 0


def _new_run(a):
    dataset = load(a.dataset)
    model = _make_model(a, dataset.meta.shape, dataset.meta.num_classes)
    optim_config = {"lr": a.lr, "lr_decay": a.lr_decay}
    if a.momentum is not None:
        optim_config["momentum"] = a.momentum
    trainer = Trainer(model, dataset, optimizer=a.optimizer, optim_config=optim_config,
                      batch_size=a.batch_size, num_epochs=5 if a.epochs is None else a.epochs,
                      iterations_per_epoch=a.iterations_per_epoch, seed=a.seed, device=a.device,
                      checkpoint_dir=a.output, progress=a.progress, log=print,
                      run_info={"dataset": a.dataset})
    return trainer, dataset


def _resume(a):
    path = a.resume
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    _, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model") or "dataset" not in config.get("run_info", {}):
        raise ValueError(f"{path}: not written by 'gpucnn train' (no model config or dataset); "
                         f"resume it from Python with Trainer.from_checkpoint")
    dataset = load(config["run_info"]["dataset"])
    overrides = {"progress": a.progress, "log": print}
    if a.epochs is not None:
        overrides["num_epochs"] = a.epochs
    if a.device is not None:
        overrides["device"] = a.device
    return Trainer.from_checkpoint(path, model_from_config(config["model"]), dataset,
                                   **overrides), dataset


def run_evaluate(args) -> int:
    model, info = load_weights(args.weights)
    name = args.dataset or info.get("dataset")
    if not name:
        raise ValueError(f"{args.weights}: records no dataset; give --dataset")
    dataset = load(name)
    X, y = dataset.split(args.split)
    if args.device is not None:
        model.to(args.device)
    acc = float((model.predict(X, args.batch_size) == y).mean())
    print(f"{args.weights}: accuracy {acc:.4f} on {name} {args.split} ({len(y)} samples, "
          f"{int(round(acc * len(y)))} correct)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset; per-epoch table, checkpoints",
                       description="Train a model. Without flags: a 3x3, 16-filter ThreeLayerConvNet "
                                   "on the embedded digits with Adam, 5 epochs.")
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", choices=DATASETS, help="dataset (default digits)")
    g.add_argument("--model", help="'three-layer' (default) or a TOML file of [[layers]] tables")
    g.add_argument("--filters", type=int, help="three-layer: conv filters (default 16)")
    g.add_argument("--filter-size", type=int, help="three-layer: odd filter size (default 3)")
    g.add_argument("--hidden", type=int, help="three-layer: hidden units (default 100)")
    g.add_argument("--weight-scale", type=float, help="init std (default: He, sqrt(2/fan_in))")
    g.add_argument("--activation", choices=("relu", "sigmoid"), help="three-layer (default relu)")
    g.add_argument("--reg", type=float, help="L2 strength on weights (default 0)")
    g.add_argument("--dropout", type=float, help="three-layer: drop probability (default 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), help="update rule (default adam)")
    g.add_argument("--lr", type=float, help="learning rate (default 3e-3)")
    g.add_argument("--lr-decay", type=float, help="lr multiplier after each epoch (default 1)")
    g.add_argument("--momentum", type=float, help="momentum/nesterov: momentum (default 0.9)")
    g.add_argument("--batch-size", type=int, help="samples per update (default 50)")
    g.add_argument("--epochs", type=int, help="epochs to train (default 5; with --resume: "
                                              "the new total)")
    g.add_argument("--iterations-per-epoch", type=int,
                   help="updates per epoch (default: one pass over the training set)")
    g.add_argument("--seed", type=int, help="seed of the model and the batch order (default 0)")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, help="cpu, cuda or auto (default: $GPUCNN_DEVICE or auto)")
    g.add_argument("--output", default="runs/train", help="folder for checkpoint.npz, weights.npz, "
                   "history.json (default runs/train; with --resume: the checkpoint's folder)")
    g.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (a file or its folder)")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is off anyway when stderr is not a terminal)")
    g.add_argument("--nproc", type=int, help="data parallel: start this many MPI ranks on this "
                   "host (one GPU each with --device cuda); --batch-size is the global batch")
    p.set_defaults(func=command(run_train, p))

    p = sub.add_parser("evaluate", help="accuracy of saved weights on a dataset split")
    p.add_argument("weights", help="a weights.npz written by 'gpucnn train'")
    p.add_argument("--dataset", choices=DATASETS, help="default: the one it was trained on")
    p.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which split (default test)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: the CPU)")
    p.add_argument("--batch-size", type=int, default=100, help="samples per forward pass")
    p.set_defaults(func=run_evaluate)


def command(func, parser: argparse.ArgumentParser):
    """Wrap a CLI command ``func(args)`` for data parallelism.

    With ``--nproc N`` the same command is started again as N MPI ranks (``mpirun``); under MPI
    the command runs guarded (an error on one rank stops the job with that rank's message) and
    only rank 0 writes to stdout.
    """
    @functools.wraps(func)
    def run(args):
        if getattr(args, "nproc", None) is not None:
            name = parser.prog.split()[-1]
            return launch(args.nproc, [name, *_argv_from(parser, args, skip=("nproc",))])
        world = get_world()
        if world.size == 1:
            return func(args)
        if not world.is_root:
            sys.stdout = open(os.devnull, "w")
        with world.guard(brief=USER_ERRORS):
            return func(args)

    return run


def _argv_from(parser: argparse.ArgumentParser, args, skip=()) -> list[str]:
    """Command-line arguments that make ``parser`` parse to ``args`` again (values that differ
    from their defaults, long option names, ``--opt=value`` so values may start with '-')."""
    options, positionals = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in skip:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if not action.option_strings:
            positionals += [str(v) for v in values]
        elif action.nargs == 0:
            options.append(action.option_strings[-1])
        elif isinstance(value, (list, tuple)):
            options += [action.option_strings[-1], *map(str, values)]
        else:
            options.append(f"{action.option_strings[-1]}={value}")
    return options + (["--", *positionals] if positionals else [])
