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
import signal
import sys

from ..config import (DATA, MODEL, OPTIMIZATION, RUN, TRAINING, check_together, combine,
                      optim_config, three_layer_kwargs)
from ..data import load
from ..distributed import get_world
from ..distributed.launch import launch
from ..models import ThreeLayerConvNet, build_model, model_from_config
from ..specs import read_spec
from ..train import Trainer, TrainingInterrupted, save_results
from ..train.checkpoint import checkpoint_file, load_checkpoint, load_parameters
from ..train.checks import (check_augment_images, check_batch_size, check_early_stop,
                            check_epochs_left, check_stopped_early)
from ..train.folder import CLI, check_run_folder, refuse_overwrite_on_resume
from ..train.resume import saved_settings
from ..train.schedule import SCHEDULE_KEYS
from .main import USER_ERRORS
from .settings import add_settings, given_labels, resolve

TRAIN = combine("train", DATA, MODEL, OPTIMIZATION, TRAINING, RUN)
COMMAND_DEFAULTS = {"output": "runs/train"}
# What a resumed run may change (the output folder: to continue it elsewhere); everything else
# comes from its checkpoint.  A new learning rate or schedule is noted in the history.
SCHEDULE = ("lr", "lr_decay", *SCHEDULE_KEYS)
RESUMABLE = ("epochs", "device", "progress", "data_dir", "cuda_graph", "early_stop", *SCHEDULE,
             "output")
# The --help sections of the optimisation and training flags.
STOPPING = ("lr_decay", *SCHEDULE_KEYS, "early_stop", "monitor")
LOOP = tuple(k for k in (*OPTIMIZATION.names(), *TRAINING.names())
             if k not in (*STOPPING, "augment", "crop_pad", "label_smoothing", "clip_grad_norm",
                          "init_weights"))
HELP_GROUPS = (("optimisation", LOOP),
               ("learning-rate schedule and early stopping", STOPPING),
               ("augmentation, regularisation and fine-tuning",
                ("augment", "crop_pad", "label_smoothing", "clip_grad_norm", "init_weights")))
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
            allowed = ", ".join(TRAIN[k].flag for k in RESUMABLE if k != "progress")
            raise ValueError(f"{flags}: a resumed run keeps its checkpoint's settings; only "
                             f"{allowed} and --no-progress may be given with --resume")
        trainer, dataset, resumed = _resume(args.resume, values, labels, log)
    else:
        v = resolve(args, TRAIN, defaults=COMMAND_DEFAULTS)
        labels = given_labels(args, TRAIN)
        spell = functools.partial(_spell, labels)
        check_together(v, spell)
        check_early_stop(spell("early_stop"), v["early_stop"], spell("epochs"), v["epochs"])
        if v["model"] != "three-layer":
            ignored = [labels[k] for k in THREE_LAYER_ONLY if k in labels]
            if ignored:
                raise ValueError(f"{', '.join(ignored)}: only for --model three-layer; the "
                                 f"layers of --model {v['model']} are set in that file")
        if get_world().is_root:  # rank 0 writes; before loading data or building the model
            check_run_folder(v["output"], None, CLI, overwrite=args.overwrite)
        trainer, dataset = _new_run(v, args.overwrite, log, spell)
        resumed = None
    log.trainer, model = trainer, trainer.model
    log(f"training on {dataset.meta.name} ({len(dataset.y_train)} train, {len(dataset.y_val)} "
        f"validation) on {trainer.device}: {trainer.optimizer_name} "
        f"{json.dumps(trainer.optim_config)}, {trainer.epochs} epochs x "
        f"{trainer.iterations_per_epoch} iterations of {trainer.batch_size}")
    log(f"model: {model.net!r}".replace("\n", "\n       "))
    log(_plan(trainer))
    if resumed:
        log(f"resuming {resumed} after epoch {trainer.epoch}, iteration {trainer.iteration}; "
            f"writing to {trainer.checkpoint_dir}")
    notes = trainer.history.notes
    if notes and notes[-1]["iteration"] == trainer.iteration:
        log(notes[-1]["note"])
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
    monitor = trainer.settings["monitor"]
    if history.stopped_epoch is not None:
        log(f"stopped early after epoch {history.stopped_epoch}: {monitor} has not improved "
            f"for {trainer.settings['early_stop']} epochs")
    final = (f"the best epoch's, {history.best_epoch}" if history.stopped_epoch is not None
             else f"epoch {len(history.val_acc) - 1}")
    loss = (f"validation loss {history.metric(monitor, history.best_epoch):.4f}, "
            if monitor == "val_loss" else "")
    log(f"best {loss}validation accuracy {history.best_val_acc:.3f} at epoch "
        f"{history.best_epoch}: {best}; final weights ({final}): {weights}")
    return 128 + signal.SIGPIPE if log.closed else 0


def _spell(labels: dict, name: str) -> str:
    """How the user wrote setting ``name`` (its flag, or the TOML file and key), for errors."""
    return labels.get(name, TRAIN[name].flag)


def _plan(trainer) -> str:
    """One line: the learning-rate schedule, and what else shapes the run when it is on."""
    s = trainer.settings
    extras = [f"{k}={s[k]}" for k in ("label_smoothing", "clip_grad_norm") if s[k]]
    extras += [f"augment={','.join(s['augment'])}"] * bool(s["augment"])
    if s["early_stop"]:
        extras.append(f"early stopping after {s['early_stop']} epochs without a better "
                      f"{s['monitor']}")
    return f"learning rate: {trainer.lr_schedule.describe()}" + "".join(f"; {e}" for e in extras)


def _new_run(v: dict, overwrite: bool, log, spell):
    spec = None if v["model"] == "three-layer" else read_spec(v["model"], "--model")
    dataset = load(v["dataset"], data_dir=v["data_dir"])
    check_batch_size(spell("batch_size"), v["batch_size"], len(dataset.y_train))
    shape, classes = dataset.meta.shape, dataset.meta.num_classes
    check_augment_images(spell("augment"), v["augment"], shape, dataset.meta.name)
    try:
        model = (ThreeLayerConvNet(shape, num_classes=classes, seed=v["seed"],
                                   **three_layer_kwargs(v))
                 if spec is None else build_model(spec, shape, reg=v["reg"], seed=v["seed"]))
    except ValueError as e:  # a layer the samples are too small for: one's own data, say
        raise ValueError(f"{spell('dataset')}={v['dataset']}: its samples are "
                         f"{'x'.join(map(str, shape))}, and for the model {e}") from None
    if v["init_weights"]:  # refused under the flag; the Trainer loads them (again) as its own
        load_parameters(model, v["init_weights"], spell("init_weights"))
    trainer = Trainer(model, dataset, optim_config=optim_config(v), checkpoint_dir=v["output"],
                      progress=v["progress"], log=log, run_info={"dataset": v["dataset"]},
                      overwrite=overwrite, **{k: v[k] for k in TRAINING.names()})
    return trainer, dataset


def _resume(path: str, given: dict, labels: dict, log):
    path = checkpoint_file(path)
    _, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model") or "dataset" not in config.get("run_info", {}):
        raise ValueError(f"{path}: not written by 'gpucnn train' (no model config or dataset); "
                         f"resume it from Python with Trainer.from_checkpoint")
    given = TRAIN.check(given, labels)
    spell = functools.partial(_spell, labels)
    data_dir, progress = given.pop("data_dir", None), given.pop("progress", True)
    out = given.pop("output", None) or os.path.dirname(path) or "."
    settings = saved_settings(config, path, given)  # a new --schedule brings its own options
    check_epochs_left(spell("epochs"), settings["epochs"], meta.get("epoch", 0), path)
    check_stopped_early(spell("early_stop"), settings["early_stop"], meta.get("history", {}),
                        path)
    check_together({**settings, **settings["optim_config"]}, spell)
    check_early_stop(spell("early_stop"), settings["early_stop"], spell("epochs"),
                     settings["epochs"])
    if get_world().is_root:  # before loading the data: the folder must take this run's files
        check_run_folder(out, config["run_info"].get("run_id"), CLI, resumed_from=path,
                         iteration=meta.get("iteration", 0))
    dataset = load(config["run_info"]["dataset"], data_dir=data_dir)
    return (Trainer.from_checkpoint(path, model_from_config(config["model"]), dataset,
                                    progress=progress, log=log, checkpoint_dir=out, **given),
            dataset, path)


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
