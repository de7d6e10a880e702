"""``gpucnn train``: fits a model to a dataset of :mod:`gpucnn.data` (a name or one's own
files), prints one table row per epoch and leaves in its output folder ``checkpoint.npz`` (the
latest state, for ``--resume``), ``metrics.csv`` (a row per epoch, written as it goes),
``weights.npz`` (the final parameters and the model's description, for ``gpucnn evaluate``; the
best epoch's after early stopping), ``best.npz`` (the same for the epoch of the best monitored
metric) and ``history.json``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np

from ..config import (DATA, MODEL, OPTIMIZATION, RUN, TRAINING, check_together, combine,
                      optim_config, three_layer_kwargs)
from ..data import load
from ..distributed import get_world
from ..distributed.launch import launch
from ..models import ThreeLayerConvNet, build_model, model_from_config, read_spec
from ..train import CHECKPOINT_NAME, Trainer, TrainingInterrupted, save_weights
from ..train.checkpoint import load_checkpoint
from ..train.metrics import METRICS_NAME
from ..train.resume import saved_settings
from ..train.schedule import SCHEDULE_KEYS
from .main import USER_ERRORS
from .outputs import prepare_output
from .settings import add_settings, given_labels, resolve

TRAIN = combine("train", DATA, MODEL, OPTIMIZATION, TRAINING, RUN)
COMMAND_DEFAULTS = {"output": "runs/train"}
# What a resumed run may change; everything else comes from its checkpoint.  A new learning
# rate or schedule is noted in the history.
SCHEDULE = ("lr", "lr_decay", *SCHEDULE_KEYS)
RESUMABLE = ("epochs", "device", "progress", "data_dir", "cuda_graph", "early_stop", *SCHEDULE)
# The --help sections of the optimisation and training flags.
STOPPING = ("lr_decay", *SCHEDULE_KEYS, "early_stop", "monitor")
LOOP = tuple(k for k in (*OPTIMIZATION.names(), *TRAINING.names())
             if k not in (*STOPPING, "augment", "crop_pad", "label_smoothing", "clip_grad_norm",
                          "init_weights"))
HELP_GROUPS = (("optimisation", LOOP),
               ("learning-rate schedule and early stopping", STOPPING),
               ("augmentation, regularisation and fine-tuning",
                ("augment", "crop_pad", "label_smoothing", "clip_grad_norm", "init_weights")))
# Files whose presence means the output folder holds a run (another run must not overwrite it).
RESULTS = (CHECKPOINT_NAME, "weights.npz", "best.npz", "history.json", METRICS_NAME)


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
            allowed = ", ".join(TRAIN[k].flag for k in RESUMABLE if k != "progress")
            raise ValueError(f"{flags}: a resumed run keeps its checkpoint's settings; only "
                             f"{allowed} and --no-progress may be given with --resume")
        trainer, dataset = _resume(args.resume, values, labels)
    else:
        v = resolve(args, TRAIN, defaults=COMMAND_DEFAULTS)
        labels = given_labels(args, TRAIN)
        check_together(v, lambda k: labels.get(k, TRAIN[k].flag))
        if v["model"] != "three-layer":
            ignored = [labels[k] for k in THREE_LAYER_ONLY if k in labels]
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
    print(_plan(trainer))
    notes = trainer.history.notes
    if args.resume:
        print(f"resuming {trainer.checkpoint_path} after epoch {trainer.epoch}, iteration "
              f"{trainer.iteration}")
    if notes and notes[-1]["iteration"] == trainer.iteration:
        print(notes[-1]["note"])
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
    monitor = trainer.settings["monitor"]
    if history.stopped_epoch is not None:
        print(f"stopped early after epoch {history.stopped_epoch}: {monitor} has not improved "
              f"for {trainer.settings['early_stop']} epochs")
    final = (f"the best epoch's, {history.best_epoch}" if history.stopped_epoch is not None
             else f"epoch {len(history.val_acc) - 1}")
    loss = (f"validation loss {history.metric(monitor, history.best_epoch):.4f}, "
            if monitor == "val_loss" else "")
    print(f"best {loss}validation accuracy {history.best_val_acc:.3f} at epoch "
          f"{history.best_epoch}: {best}; final weights ({final}): {weights}")
    return 0


def _plan(trainer) -> str:
    """One line: the learning-rate schedule, and what else shapes the run when it is on."""
    s = trainer.settings
    extras = [f"{k}={s[k]}" for k in ("label_smoothing", "clip_grad_norm") if s[k]]
    extras += [f"augment={','.join(s['augment'])}"] * bool(s["augment"])
    if s["early_stop"]:
        extras.append(f"early stopping after {s['early_stop']} epochs without a better "
                      f"{s['monitor']}")
    return f"learning rate: {trainer.lr_schedule.describe()}" + "".join(f"; {e}" for e in extras)


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


def _resume(path: str, given: dict, labels: dict):
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    _, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model") or "dataset" not in config.get("run_info", {}):
        raise ValueError(f"{path}: not written by 'gpucnn train' (no model config or dataset); "
                         f"resume it from Python with Trainer.from_checkpoint")
    epochs = given.get("epochs", config.get("epochs", 0))
    history = meta.get("history", {})
    if epochs <= meta.get("epoch", 0):  # nothing would be trained, and exit 0 would hide it
        raise ValueError(f"--epochs={epochs}: {path} is at epoch {meta.get('epoch')}; expected "
                         f"--epochs above {meta.get('epoch')} to train on")
    if history.get("stopped_epoch") is not None and "early_stop" not in given:
        raise ValueError(f"--resume={path}: the run stopped early after epoch "
                         f"{history['stopped_epoch']}; give a larger --early-stop to train on")
    given = TRAIN.check(given, labels)
    data_dir, progress = given.pop("data_dir", None), given.pop("progress", True)
    rate = {k: given.pop(k) for k in ("lr", "lr_decay") if k in given}
    settings = saved_settings(config, path, given)  # a new --schedule brings its own options
    optim = {**settings["optim_config"], **rate}
    check_together({**settings, **optim}, lambda k: labels.get(k, TRAIN[k].flag))
    dataset = load(config["run_info"]["dataset"], data_dir=data_dir)
    return Trainer.from_checkpoint(path, model_from_config(config["model"]), dataset,
                                   progress=progress, log=print, optim_config=optim,
                                   **given), dataset


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset; per-epoch table, checkpoints",
                       description="Train a model. Without flags: a 3x3, 16-filter ThreeLayerConvNet "
                                   "on the embedded digits with Adam, 5 epochs.")
    add_settings(p, combine("data and model", DATA, MODEL), "data and model", config=False)
    for title, names in HELP_GROUPS:
        add_settings(p, combine(title, OPTIMIZATION, TRAINING, only=names), title, config=False)
    add_settings(p, RUN, "run", defaults=COMMAND_DEFAULTS)
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (a file or its folder); "
                        "--epochs then sets the new total")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output (refused otherwise)")
    p.add_argument("--nproc", type=int, help="data parallel: start this many MPI ranks on this "
                   "host (one GPU each with --device cuda); --batch-size is the global batch")
    p.set_defaults(func=command(run_train, p))


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
