"""What the experiments share: settings (the schema's defaults, a TOML file, flags), a run's
training data (a stratified subset drawn by its seed) and the run itself, tables and files."""
from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, field

from .. import data
from ..data.preprocess import stratified_split
from ..config import (DATA, EXPERIMENT, MODEL, OPTIMIZATION, TRAINING, combine,
                      three_layer_kwargs)
from ..models import ThreeLayerConvNet
from ..train import Trainer

# What an experiment's runs take: the data, the three-layer net, the learning rate, the
# Trainer's settings (except checkpoints, which experiments do not write) and the grid.
SCHEMA = combine("experiment", DATA, MODEL, OPTIMIZATION, TRAINING, EXPERIMENT,
                 only=("dataset", "data_dir", "device", "epochs", "iterations_per_epoch",
                       "batch_size", "optimizer", "lr", "filters", "filter_size", "hidden",
                       "weight_scale", "reg", "dropout", "train_samples", "seed", "grid",
                       "seeds", "train_sizes"))
_D = SCHEMA.defaults()

# A model and learning rate suited to each dataset (Adam, batch 50).  The digits are 1x8x8, so
# 3x3 filters; 28x28 greyscale gets 5x5; CIFAR-10 gets the base net of the source document's
# design study (seeds/002).
DATASET_MODELS = {
    "digits": {"filters": 16, "filter_size": 3, "hidden": 100, "lr": 1e-3},
    "synthetic": {"filters": 16, "filter_size": 5, "hidden": 100, "lr": 1e-3},
    "mnist": {"filters": 16, "filter_size": 5, "hidden": 100, "lr": 1e-3},
    "fashion-mnist": {"filters": 16, "filter_size": 5, "hidden": 100, "lr": 1e-3},
    "cifar10": {"filters": 32, "filter_size": 7, "hidden": 500, "lr": 1e-3},
}
# The source document's reg/dropout experiment (seeds/000) trains epochs of 200 iterations;
# its tables run to epoch 7.
REPRODUCE = {"epochs": 7, "iterations_per_epoch": 200}


@dataclass
class Settings:
    """Everything that shapes an experiment's runs, named and defaulted as in :data:`SCHEMA`
    (:mod:`gpucnn.config`).  ``grid`` is reproduce's (reg, dropout) pairs, each run once per
    seed of ``seeds`` and per training-set size of ``train_sizes`` ("full" or a sample count);
    ``seed`` fixes the data split.  ``reg`` / ``dropout`` are the base net's (sanity, sweep).
    ``weight_scale`` None means He init."""

    dataset: str = _D["dataset"]
    data_dir: str | None = _D["data_dir"]
    device: str | None = _D["device"]
    epochs: int = _D["epochs"]
    iterations_per_epoch: int | None = _D["iterations_per_epoch"]
    batch_size: int = _D["batch_size"]
    optimizer: str = _D["optimizer"]
    lr: float = _D["lr"]
    filters: int = _D["filters"]
    filter_size: int = _D["filter_size"]
    hidden: int = _D["hidden"]
    weight_scale: float | None = _D["weight_scale"]
    reg: float = _D["reg"]
    dropout: float = _D["dropout"]
    train_samples: int = _D["train_samples"]
    seed: int = _D["seed"]
    grid: list = field(default_factory=lambda: [list(p) for p in _D["grid"]])
    seeds: list = field(default_factory=lambda: list(_D["seeds"]))
    train_sizes: list = field(default_factory=lambda: list(_D["train_sizes"]))

    def model_kwargs(self) -> dict:
        """:class:`ThreeLayerConvNet` keywords of the base net (its seed included)."""
        return {**three_layer_kwargs(self.to_dict()), "seed": self.seed}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_config(path: str) -> dict:
    """The settings a TOML file gives (top-level keys named like :class:`Settings` fields)."""
    return SCHEMA.read_toml(path)[0]


def make_settings(base: dict, config_path: str | None, flags: dict) -> Settings:
    """Settings from, in rising priority: the schema's defaults, the dataset's model
    (:data:`DATASET_MODELS`), the experiment's ``base`` (its protocol), the TOML file, then
    ``flags`` (those not None; errors name them as flags)."""
    file, file_labels = SCHEMA.read_toml(config_path) if config_path else ({}, {})
    given = {k: v for k, v in flags.items() if v is not None}
    labels = {k: SCHEMA[k].flag for k in given}
    dataset = given.get("dataset", file.get("dataset", base.get("dataset", _D["dataset"])))
    SCHEMA["dataset"].check(dataset, labels.get("dataset", file_labels.get("dataset")))
    values = SCHEMA.resolve((DATASET_MODELS[dataset], {}), (base, {}), (file, file_labels),
                            (given, labels))
    return Settings(**values)


# The model settings a run's result records (and :func:`train_run` overrides take).
MODEL_KEYS = ("filters", "filter_size", "hidden", "weight_scale", "reg", "dropout")


def load_dataset(s: Settings) -> data.Dataset:
    return data.load(s.dataset, data_dir=s.data_dir, seed=s.seed)


def check_train_sizes(s: Settings, dataset, sizes: dict | None = None) -> None:
    """Every training-set size is at most the training samples of ``dataset``: ``sizes`` maps
    the name to report to a size ("full" or a count), default each of ``s.train_sizes``."""
    num_train = len(dataset.y_train)
    if sizes is None:
        sizes = {f"train_sizes[{i}]": size for i, size in enumerate(s.train_sizes)}
    for label, size in sizes.items():
        if size != "full" and size > num_train:
            raise ValueError(f"{label}={size}: expected at most the {num_train} training "
                             f"samples of {s.dataset}")


def training_data(dataset, size, seed: int) -> dict:
    """The Trainer's data for one run: all training samples, or ``size`` of them stratified by
    class and drawn by ``seed``; the whole validation split."""
    x, y = dataset.x_train, dataset.y_train
    if size != "full" and size < len(y):
        pick = stratified_split(y, (size / len(y),), seed)[1]
        x, y = x[pick], y[pick]
    return {"X_train": x, "y_train": y, "X_val": dataset.x_val, "y_val": dataset.y_val,
            "meta": dataset.meta}


def size_name(train_size, num_train: int) -> str:
    if train_size == "full":
        return f"the full training split ({num_train} samples)"
    return f"{num_train} training samples"


def train_run(s: Settings, dataset, label: str, *, epochs: int | None = None,
              progress: bool = True, **overrides) -> dict:
    """Train one model (``overrides``: model settings such as reg, dropout, hidden) and return
    its curves.

    ``dataset`` is a ``gpucnn.data.Dataset`` or the Trainer's dict.  The result is JSON-able:
    ``label``, the model settings and seed, ``train_acc`` / ``val_acc`` per epoch (epoch 0 = before
    training), ``epoch_loss``, ``loss`` per iteration, ``best_val_acc``, ``seconds``, ``device``;
    ``model`` holds the trained model and ``best_params`` the best epoch's parameters; both are
    dropped before anything is written (:func:`public`).
    """
    meta = dataset.meta if hasattr(dataset, "meta") else dataset["meta"]
    settings = {**{k: getattr(s, k) for k in MODEL_KEYS}, **overrides}
    model = ThreeLayerConvNet(meta.shape, num_classes=meta.num_classes, seed=s.seed,
                              **three_layer_kwargs(settings))
    trainer = Trainer(model, dataset, optimizer=s.optimizer, optim_config={"lr": s.lr},
                      batch_size=s.batch_size, epochs=s.epochs if epochs is None else epochs,
                      iterations_per_epoch=s.iterations_per_epoch,
                      train_samples=s.train_samples, seed=s.seed, device=s.device,
                      progress=progress)
    started = time.perf_counter()
    h = trainer.train()
    return {"label": label, "settings": {**settings, "seed": s.seed}, "train_acc": h.train_acc,
            "val_acc": h.val_acc,
            "epoch_loss": h.epoch_loss, "loss": [float(v) for v in h.loss],
            "best_val_acc": h.best_val_acc, "best_epoch": h.best_epoch,
            "best_params": h.best_params, "model": model,
            "seconds": time.perf_counter() - started,
            "device": trainer.device, "num_train_eval": len(trainer.train_subset[1]),
            "num_val": len(trainer.val_subset[1])}


def public(run: dict) -> dict:
    """A run's result without the model and its arrays: what the JSON files hold."""
    return {k: v for k, v in run.items() if k not in ("model", "best_params")}


def seed_table(train_acc, val_acc, sep: str = "\t") -> str:
    """The table as the source document's reg/dropout experiment (seeds/000) prints it: an
    Epoch header, a Training and a Validation row, 6 decimals."""
    rows = [["Epoch", *map(str, range(len(train_acc)))],
            ["Training", *(f"{a:.6f}" for a in train_acc)],
            ["Validation", *(f"{a:.6f}" for a in val_acc)]]
    return "\n".join(sep.join(r) for r in rows)


def runs_line(result: dict, configurations: int) -> str:
    """What a report's runs were and how long they took, in one sentence."""
    s = result["settings"]
    return (f"{len(result['runs'])} runs ({len(s['seeds'])} seeds x {len(s['train_sizes'])} "
            f"training-set sizes x {configurations} configurations; {result['skipped']} found "
            f"finished) in {result['seconds']:.1f} s on {result['host']} "
            f"({result['cpu_count']} CPUs, {result['how']}).")


def markdown_table(header: list, rows: list[list]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def markdown_seed_table(train_acc, val_acc) -> str:
    return markdown_table(["Epoch", *range(len(train_acc))],
                          [["Training", *(f"{a:.6f}" for a in train_acc)],
                           ["Validation", *(f"{a:.6f}" for a in val_acc)]])


def write_runs_csv(path: str, runs: list[dict]) -> None:
    """One row per (run, epoch): the fields of the run's spec (size, seed, ...), then epoch,
    accuracies, mean loss."""
    keys = list(runs[0]["spec"])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, "epoch", "train_acc", "val_acc", "epoch_loss"])
        for r in runs:
            for e, (tr, va, lo) in enumerate(zip(r["train_acc"], r["val_acc"], r["epoch_loss"])):
                w.writerow([*(r["spec"][k] for k in keys), e, f"{tr:.6f}", f"{va:.6f}",
                            "" if lo is None else f"{lo:.6f}"])


def write_json(path: str, obj: dict) -> None:
    """``obj`` as JSON; objects with a ``to_dict`` (intervals) as their dicts."""
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, default=lambda o: o.to_dict())
