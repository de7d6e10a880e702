"""``gpucnn train`` and ``gpucnn evaluate``.

``train`` fits a model to a dataset of :mod:`gpucnn.data`, prints one table row per epoch and
leaves in its output folder ``checkpoint.npz`` (the latest state, for ``--resume``),
``weights.npz`` (the final parameters and the model's description, for ``evaluate``),
``best.npz`` (the same for the epoch of best validation accuracy) and ``history.json``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np

from ..config import (DATA, MODEL, OPTIMIZATION, RUN, TRAINING, combine, optim_config,
                      three_layer_kwargs)
from ..data import load
from ..device import resolve_device
from ..distributed import get_world
from ..distributed.launch import launch
from ..models import ThreeLayerConvNet, build_model, model_from_config
from ..specs import read_spec
from ..train import CHECKPOINT_NAME, Trainer, TrainingInterrupted, load_weights, save_weights
from ..train.checkpoint import load_checkpoint, prefixed
from .main import USER_ERRORS
from .outputs import prepare_output
from .settings import add_settings, resolve

TRAIN = combine("train", DATA, MODEL, OPTIMIZATION, TRAINING, RUN)
COMMAND_DEFAULTS = {"output": "runs/train"}
# evaluate's batch_size is the number of samples predicted at a time.
EVALUATE = combine("evaluate", DATA, TRAINING, only=("dataset", "data_dir", "device",
                                                     "batch_size"))
# What a resumed run may change; everything else comes from its checkpoint.
RESUMABLE = ("epochs", "device", "progress", "data_dir", "cuda_graph")
# Files whose presence means the output folder holds a run (another run must not overwrite it).
RESULTS = (CHECKPOINT_NAME, "weights.npz", "best.npz", "history.json")


def _make_model(v: dict, input_dim, num_classes):
    if v["model"] == "three-layer":
        return ThreeLayerConvNet(input_dim, num_classes=num_classes, seed=v["seed"],
                                 **three_layer_kwargs(v))
    if not os.path.isfile(v["model"]):
        raise FileNotFoundError(f"--model {v['model']}: expected 'three-layer' or a TOML file "
                                f"of [[layers]]")
    return build_model(read_spec(v["model"]), input_dim, reg=v["reg"], seed=v["seed"])


# The flags that shape only the built-in three-layer net: meaningless with --model FILE.
THREE_LAYER_ONLY = ("filters", "filter_size", "hidden", "activation", "dropout")


def run_train(args) -> int:
    if args.resume:
        if args.overwrite:  # it would be ignored: a resumed run continues, it replaces nothing
            raise ValueError("--overwrite: not with --resume, which continues the run in place")
        values, labels = TRAIN.from_args(args)
        fixed = [labels[k] for k in values if k not in RESUMABLE]
        if fixed or args.config:
            flags = ", ".join(fixed + (["--config"] if args.config else []))
            raise ValueError(f"{flags}: a resumed run keeps its checkpoint's settings; only "
                             f"--epochs, --device, --cuda-graph, --data-dir and --no-progress "
                             f"may be given with --resume")
        trainer, dataset = _resume(args.resume, values)
    else:
        v = resolve(args, TRAIN, defaults=COMMAND_DEFAULTS)
        if v["model"] != "three-layer":
            given, labels = TRAIN.read_toml(args.config) if args.config else ({}, {})
            flags, flag_labels = TRAIN.from_args(args)
            labels.update(flag_labels)
            ignored = [labels[k] for k in THREE_LAYER_ONLY if k in {**given, **flags}]
            if ignored:
                raise ValueError(f"{', '.join(ignored)}: only for --model three-layer; the "
                                 f"layers of --model {v['model']} are set in that file")
        if get_world().is_root:  # rank 0 writes; before loading data or building the model
            prepare_output("--output", v["output"], RESULTS, args.overwrite, resume_hint=True)
        trainer, dataset = _new_run(v)
    model = trainer.model
    print(f"training on {dataset.meta.name} ({len(dataset.y_train)} train, {len(dataset.y_val)} "
          f"validation) on {trainer.device}: {trainer.optimizer_name} "
          f"{json.dumps(trainer.optim_config)}, {trainer.epochs} epochs x "
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
    best = os.path.join(out, "best.npz")
    model.load_state_dict(history.best_params)  # the run is over: the model is free to reuse
    save_weights(best, model, {"dataset": dataset.meta.name, "epoch": history.best_epoch,
                               "val_acc": history.best_val_acc})
    print(f"best validation accuracy {history.best_val_acc:.3f} at epoch {history.best_epoch}: "
          f"{best}; final weights (epoch {len(history.val_acc) - 1}): {weights}")
    return 0


def _new_run(v: dict):
    dataset = load(v["dataset"], data_dir=v["data_dir"])
    if v["batch_size"] > len(dataset.y_train):  # else every "batch" is the whole set, silently
        raise ValueError(f"--batch-size={v['batch_size']}: expected at most the training-set "
                         f"size of {v['dataset']}, {len(dataset.y_train)} samples")
    model = _make_model(v, dataset.meta.shape, dataset.meta.num_classes)
    trainer = Trainer(model, dataset, optim_config=optim_config(v), checkpoint_dir=v["output"],
                      progress=v["progress"], log=print, run_info={"dataset": v["dataset"]},
                      **{k: v[k] for k in TRAINING.names()})
    return trainer, dataset


def _resume(path: str, given: dict):
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    _, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model") or "dataset" not in config.get("run_info", {}):
        raise ValueError(f"{path}: not written by 'gpucnn train' (no model config or dataset); "
                         f"resume it from Python with Trainer.from_checkpoint")
    epochs = given.get("epochs", config.get("epochs", 0))
    if epochs <= meta.get("epoch", 0):  # nothing would be trained, and exit 0 would hide it
        raise ValueError(f"--epochs={epochs}: {path} is at epoch {meta.get('epoch')}; expected "
                         f"--epochs above {meta.get('epoch')} to train on")
    dataset = load(config["run_info"]["dataset"], data_dir=given.pop("data_dir", None))
    overrides = {"progress": given.pop("progress", True), "log": print, **given}
    return Trainer.from_checkpoint(path, model_from_config(config["model"]), dataset,
                                   **overrides), dataset


def _load_for_evaluate(path: str):
    """``(model, info, path)`` from weights, a checkpoint, or a run folder (its weights.npz,
    else its checkpoint.npz: a run stopped before its end)."""
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in ("weights.npz", CHECKPOINT_NAME)
                 if os.path.isfile(os.path.join(path, n))]
        if not found:
            raise FileNotFoundError(f"{path}: a folder without weights.npz or {CHECKPOINT_NAME}")
        path = found[0]
    if os.path.basename(path) != CHECKPOINT_NAME:
        try:
            return (*load_weights(path), path)
        except ValueError as e:
            if "format 'checkpoint'" not in str(e):
                raise
    arrays, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model"):
        raise ValueError(f"{path}: records no model config; evaluate it from Python")
    model = model_from_config(config["model"])
    model.load_state_dict(prefixed(arrays, "param"))
    return model, dict(config.get("run_info", {})), path


def run_evaluate(args) -> int:
    model, info, args.weights = _load_for_evaluate(args.weights)
    bad = [k for k, v in model.state_dict().items()
           if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:  # its predictions would be one constant class: a meaningless accuracy
        raise ValueError(f"{args.weights}: parameter {bad[0]} holds NaN or infinite values"
                         f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}: expected "
                         f"finite weights (did training diverge?)")
    given, labels = EVALUATE.from_args(args)
    name = given.get("dataset") or info.get("dataset")
    if not name:
        raise ValueError(f"{args.weights}: records no dataset; give --dataset")
    v = EVALUATE.resolve(({"dataset": name}, {}), (given, labels))
    dataset = load(name, data_dir=v["data_dir"])
    X, y = dataset.split(args.split)
    model.to(resolve_device(v["device"]))  # None: $GPUCNN_DEVICE, as for train
    acc = float((model.predict(X, v["batch_size"]) == y).mean())
    print(f"{args.weights}: accuracy {acc:.4f} on {name} {args.split} ({len(y)} samples, "
          f"{int(round(acc * len(y)))} correct)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset; per-epoch table, checkpoints",
                       description="Train a model. Without flags: a 3x3, 16-filter ThreeLayerConvNet "
                                   "on the embedded digits with Adam, 5 epochs.")
    add_settings(p, combine("data and model", DATA, MODEL), "data and model", config=False)
    add_settings(p, combine("optimisation", OPTIMIZATION, TRAINING), "optimisation", config=False)
    add_settings(p, RUN, "run", defaults=COMMAND_DEFAULTS)
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (a file or its folder); "
                        "--epochs then sets the new total")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output (refused otherwise)")
    p.add_argument("--nproc", type=int, help="data parallel: start this many MPI ranks on this "
                   "host (one GPU each with --device cuda); --batch-size is the global batch")
    p.set_defaults(func=command(run_train, p))

    p = sub.add_parser("evaluate", help="accuracy of saved weights on a dataset split")
    p.add_argument("weights", help="a weights.npz or checkpoint.npz written by 'gpucnn train', "
                                   "or its output folder")
    EVALUATE.add_flags(p, {"dataset": "the one it was trained on"})
    p.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which split (default test)")
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
        if (isinstance(action, argparse._HelpAction) or action.dest in skip
                or action.help == argparse.SUPPRESS):  # an old spelling of another flag
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
