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
import signal
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
from ..train import CHECKPOINT_NAME, Trainer, TrainingInterrupted, load_weights, save_results
from ..train.checkpoint import checkpoint_file, load_checkpoint, prefixed
from ..train.checks import check_batch_size, check_epochs_left
from ..train.folder import CLI, check_run_folder, refuse_overwrite_on_resume
from .main import USER_ERRORS
from .settings import add_settings, resolve

TRAIN = combine("train", DATA, MODEL, OPTIMIZATION, TRAINING, RUN)
COMMAND_DEFAULTS = {"output": "runs/train"}
# evaluate's batch_size is the number of samples predicted at a time.
EVALUATE = combine("evaluate", DATA, TRAINING, only=("dataset", "data_dir", "device",
                                                     "batch_size"))
# What a resumed run may change (the output folder: to continue it elsewhere); everything else
# comes from its checkpoint.
RESUMABLE = ("epochs", "device", "progress", "data_dir", "cuda_graph", "output")
# The flags that shape only the built-in three-layer net: meaningless with --model FILE.
THREE_LAYER_ONLY = ("filters", "filter_size", "hidden", "activation", "dropout")
# What ended a run early, by the signal TrainingInterrupted carries.
STOPPED_BY = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated",
              signal.SIGPIPE: "stopped: the output was closed"}


class _Log:
    """``print``, flushed (a row shows when its epoch ends, through a pipe too).  When the
    reader of stdout has gone (``gpucnn train | head``), training stops at the next iteration
    with a checkpoint, as on Ctrl-C, instead of losing the epoch to the error."""

    def __init__(self):
        self.trainer, self.closed = None, False

    def __call__(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True  # Python's recipe: stdout to devnull, so the exit's flush is quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if self.trainer is not None:
                self.trainer.request_stop(signal.SIGPIPE)


def run_train(args) -> int:
    log = _Log()
    if args.resume:
        if args.overwrite:
            refuse_overwrite_on_resume(CLI)
        values, labels = TRAIN.from_args(args)
        fixed = [labels[k] for k in values if k not in RESUMABLE]
        if fixed or args.config:
            flags = ", ".join(fixed + (["--config"] if args.config else []))
            raise ValueError(f"{flags}: a resumed run keeps its checkpoint's settings; only "
                             f"--epochs, --device, --cuda-graph, --data-dir, --output and "
                             f"--no-progress may be given with --resume")
        trainer, dataset, resumed = _resume(args.resume, values, log)
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
            check_run_folder(v["output"], None, CLI, overwrite=args.overwrite)
        trainer, dataset = _new_run(v, args.overwrite, log)
        resumed = None
    log.trainer, model = trainer, trainer.model
    log(f"training on {dataset.meta.name} ({len(dataset.y_train)} train, {len(dataset.y_val)} "
        f"validation) on {trainer.device}: {trainer.optimizer_name} "
        f"{json.dumps(trainer.optim_config)}, {trainer.epochs} epochs x "
        f"{trainer.iterations_per_epoch} iterations of {trainer.batch_size}")
    log(f"model: {model.net!r}".replace("\n", "\n       "))
    if resumed:
        log(f"resuming {resumed} after epoch {trainer.epoch}, iteration {trainer.iteration}; "
            f"writing to {trainer.checkpoint_dir}")
    if log.closed:  # nobody reads on: train nothing, write nothing
        return 128 + signal.SIGPIPE
    try:
        history = trainer.train()
    except TrainingInterrupted as e:
        why = STOPPED_BY.get(e.signum, "interrupted")
        print(f"{why}; the last checkpoint, after iteration {e.iteration}, is {e.checkpoint}\n"
              f"resume with: gpucnn train --resume {e.checkpoint}" if e.checkpoint else
              f"{why} before the first checkpoint: nothing to resume", file=sys.stderr)
        return 128 + e.signum
    if not trainer.world.is_root:
        return 0  # data parallel: rank 0 writes the results
    weights, best, _ = save_results(trainer, {"dataset": dataset.meta.name})
    log(f"best validation accuracy {history.best_val_acc:.3f} at epoch {history.best_epoch}: "
        f"{best}; final weights (epoch {len(history.val_acc) - 1}): {weights}")
    return 128 + signal.SIGPIPE if log.closed else 0


def _new_run(v: dict, overwrite: bool, log):
    spec = None if v["model"] == "three-layer" else read_spec(v["model"], "--model")
    dataset = load(v["dataset"], data_dir=v["data_dir"])
    check_batch_size("--batch-size", v["batch_size"], len(dataset.y_train))
    shape, classes = dataset.meta.shape, dataset.meta.num_classes
    model = (ThreeLayerConvNet(shape, num_classes=classes, seed=v["seed"], **three_layer_kwargs(v))
             if spec is None else build_model(spec, shape, reg=v["reg"], seed=v["seed"]))
    trainer = Trainer(model, dataset, optim_config=optim_config(v), checkpoint_dir=v["output"],
                      progress=v["progress"], log=log, run_info={"dataset": v["dataset"]},
                      overwrite=overwrite, **{k: v[k] for k in TRAINING.names()})
    return trainer, dataset


def _resume(path: str, given: dict, log):
    path = checkpoint_file(path)
    _, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model") or "dataset" not in config.get("run_info", {}):
        raise ValueError(f"{path}: not written by 'gpucnn train' (no model config or dataset); "
                         f"resume it from Python with Trainer.from_checkpoint")
    check_epochs_left("--epochs", given.get("epochs", config.get("epochs", 0)),
                      meta.get("epoch", 0), path)
    out = given.pop("output", None) or os.path.dirname(path) or "."
    if get_world().is_root:  # before loading the data: the folder must take this run's files
        check_run_folder(out, config["run_info"].get("run_id"), CLI, resumed_from=path,
                         iteration=meta.get("iteration", 0))
    dataset = load(config["run_info"]["dataset"], data_dir=given.pop("data_dir", None))
    overrides = {"progress": given.pop("progress", True), "log": log, "checkpoint_dir": out,
                 **given}
    return (Trainer.from_checkpoint(path, model_from_config(config["model"]), dataset,
                                    **overrides), dataset, path)


def load_saved_model(path: str):
    """``(model, info, path)`` from weights, a checkpoint, or a run folder (its weights.npz,
    else its checkpoint.npz: a run stopped before its end); ``evaluate`` and ``export`` read
    their RUN_OR_WEIGHTS argument with it."""
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
    model, info, args.weights = load_saved_model(args.weights)
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
    model.check_input(X.shape[1:], f"{name} ({args.split} split)", info.get("dataset"))
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
