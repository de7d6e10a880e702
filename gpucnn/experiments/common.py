"""What the experiments share: settings (defaults, TOML file, flags), one training run, tables."""
from __future__ import annotations

import csv
import dataclasses
import json
import numbers
import os
import time
import tomllib
from dataclasses import dataclass, field

from .. import data
from ..models import ThreeLayerConvNet
from ..train import Trainer

# A model and learning rate suited to each dataset (Adam, batch 50).  The digits are 1x8x8, so
# 3x3 filters; 28x28 greyscale gets 5x5; CIFAR-10 gets seed 002's base net.
DATASET_MODELS = {
    "digits": {"num_filters": 16, "filter_size": 3, "hidden_dim": 100, "lr": 1e-3},
    "synthetic": {"num_filters": 16, "filter_size": 5, "hidden_dim": 100, "lr": 1e-3},
    "mnist": {"num_filters": 16, "filter_size": 5, "hidden_dim": 100, "lr": 1e-3},
    "fashion-mnist": {"num_filters": 16, "filter_size": 5, "hidden_dim": 100, "lr": 1e-3},
    "cifar10": {"num_filters": 32, "filter_size": 7, "hidden_dim": 500, "lr": 1e-3},
}

# reproduce's default replicates and small training set: on the digits, 200 samples make the
# unregularised gap about +0.07 (8 seeds, interval +/-0.01), and 8 seeds x 2 sizes x 3 runs fit
# the 60 s budget on a 2-core CPU (measured; see the README).
DEFAULT_SEEDS = 8
DEFAULT_SMALL_TRAIN = 200


@dataclass
class Settings:
    """Everything that shapes an experiment's runs.  ``grid`` is reproduce's (reg, dropout) pairs,
    each run once per seed of ``seeds`` (an int N means seeds 0..N-1) and per training-set size
    of ``train_sizes`` ("full" or a sample count); ``seed`` fixes the data split.  ``reg`` /
    ``dropout`` are the base net's (sanity, sweep).  ``weight_scale`` None means He init."""

    dataset: str = "digits"
    device: str | None = None
    epochs: int = 7
    iterations: int = 200
    batch_size: int = 50
    optimizer: str = "adam"
    lr: float = 1e-3
    num_filters: int = 16
    filter_size: int = 3
    hidden_dim: int = 100
    weight_scale: float | None = None
    reg: float = 0.0
    dropout: float = 0.0
    train_samples: int = 1000
    seed: int = 0
    grid: list = field(default_factory=lambda: [[0.0, 0.0], [0.01, 0.0], [0.01, 0.4]])
    seeds: list = field(default_factory=lambda: list(range(DEFAULT_SEEDS)))
    train_sizes: list = field(default_factory=lambda: ["full", DEFAULT_SMALL_TRAIN])

    def model_kwargs(self) -> dict:
        return {"num_filters": self.num_filters, "filter_size": self.filter_size,
                "hidden_dim": self.hidden_dim, "weight_scale": self.weight_scale,
                "reg": self.reg, "dropout": self.dropout, "seed": self.seed}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def read_config(path: str) -> dict:
    """The settings a TOML file gives (top-level keys named like :class:`Settings` fields)."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path}: not valid TOML: {e}") from None
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise ValueError(f"--config {path}: unknown keys {unknown}; expected some of "
                         f"{sorted(FIELDS)}")
    return doc


def make_settings(base: dict, config_path: str | None, flags: dict) -> Settings:
    """Settings from, in rising priority: the experiment's ``base``, the dataset's model
    (:data:`DATASET_MODELS`, unless ``base`` fixes the model), the TOML file, then ``flags``
    (those not None)."""
    file = read_config(config_path) if config_path else {}
    given = {k: v for k, v in flags.items() if v is not None}
    dataset = given.get("dataset", file.get("dataset", base.get("dataset", "digits")))
    if dataset not in DATASET_MODELS:
        raise ValueError(f"dataset={dataset!r}: expected one of {', '.join(DATASET_MODELS)}")
    merged = {**DATASET_MODELS[dataset], **base, **file, **given, "dataset": dataset}
    return check_settings(Settings(**merged))


def check_settings(s: Settings) -> Settings:
    """``s`` after checking every field's type and range; ValueError names the bad one."""
    for name in ("epochs", "iterations", "batch_size", "num_filters", "filter_size",
                 "hidden_dim", "train_samples"):
        _check_number(name, getattr(s, name), 1, integral=True)
    _check_number("seed", s.seed, 0, integral=True)
    _check_number("lr", s.lr, 0, open_low=True)
    _check_number("reg", s.reg, 0)
    _check_dropout("dropout", s.dropout)
    if s.weight_scale is not None:
        _check_number("weight_scale", s.weight_scale, 0, open_low=True)
    if s.filter_size % 2 == 0:
        raise ValueError(f"filter_size={s.filter_size}: expected an odd size ('same' padding)")
    if not isinstance(s.grid, (list, tuple)) or not s.grid:
        raise ValueError(f"grid={s.grid!r}: expected a non-empty list of [reg, dropout] pairs")
    for i, pair in enumerate(s.grid):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"grid[{i}]={pair!r}: expected a [reg, dropout] pair")
        _check_number(f"grid[{i}] reg", pair[0], 0)
        _check_dropout(f"grid[{i}] dropout", pair[1])
    s.grid = [[float(r), float(p)] for r, p in s.grid]
    s.seeds = _check_seeds(s.seeds)
    s.train_sizes = _check_train_sizes(s.train_sizes)
    return s


def _check_seeds(seeds) -> list[int]:
    """``seeds`` as a list of distinct seeds; an integer N stands for 0..N-1."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        _check_number("seeds", seeds, 1, integral=True)
        return list(range(seeds))
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ValueError(f"seeds={seeds!r}: expected a count >= 1 or a non-empty list of seeds")
    for i, seed in enumerate(seeds):
        _check_number(f"seeds[{i}]", seed, 0, integral=True)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={list(seeds)}: expected distinct seeds")
    return [int(v) for v in seeds]


def _check_train_sizes(sizes) -> list:
    """``sizes`` as a list of distinct entries, each "full" or a sample count >= 1."""
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"train_sizes={sizes!r}: expected a non-empty list of \"full\" or "
                         f"sample counts")
    for i, size in enumerate(sizes):
        if size != "full":
            _check_number(f"train_sizes[{i}]", size, 1, integral=True)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"train_sizes={list(sizes)}: expected distinct sizes")
    return [v if v == "full" else int(v) for v in sizes]


def _check_number(name, value, low, integral=False, open_low=False):
    kind = numbers.Integral if integral else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok or value < low or (open_low and value == low):
        what = "an integer" if integral else "a number"
        raise ValueError(f"{name}={value!r}: expected {what} {'>' if open_low else '>='} {low}")


def _check_dropout(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r}: expected a drop probability in [0, 1)")


def load_dataset(s: Settings) -> data.Dataset:
    return data.load(s.dataset, seed=s.seed)


def train_run(s: Settings, dataset, label: str, *, epochs: int | None = None,
              progress: bool = True, **overrides) -> dict:
    """Train one model (``overrides``: reg, dropout, hidden_dim, ...) and return its curves.

    ``dataset`` is a ``gpucnn.data.Dataset`` or the Trainer's dict.  The result is JSON-able:
    ``label``, the model settings, ``train_acc`` / ``val_acc`` per epoch (epoch 0 = before
    training), ``epoch_loss``, ``loss`` per iteration, ``best_val_acc``, ``seconds``, ``device``;
    ``model`` holds the trained model (the best epoch's parameters are in ``best_params``) and is
    dropped before anything is written.
    """
    meta = dataset.meta if hasattr(dataset, "meta") else dataset["meta"]
    model = ThreeLayerConvNet(meta.shape, num_classes=meta.num_classes,
                              **{**s.model_kwargs(), **overrides})
    trainer = Trainer(model, dataset, optimizer=s.optimizer, optim_config={"lr": s.lr},
                      batch_size=s.batch_size, num_epochs=s.epochs if epochs is None else epochs,
                      iterations_per_epoch=s.iterations, num_train_samples=s.train_samples,
                      seed=s.seed, device=s.device, progress=progress)
    started = time.perf_counter()
    h = trainer.train()
    settings = {**s.model_kwargs(), **overrides}
    return {"label": label, "settings": settings, "train_acc": h.train_acc, "val_acc": h.val_acc,
            "epoch_loss": h.epoch_loss, "loss": [float(v) for v in h.loss],
            "best_val_acc": h.best_val_acc, "best_epoch": h.best_epoch,
            "best_params": h.best_params, "seconds": time.perf_counter() - started,
            "device": trainer.device, "num_train_eval": len(trainer.train_subset[1]),
            "num_val": len(trainer.val_subset[1])}


def public(run: dict) -> dict:
    """A run's result without the arrays (``best_params``): what the JSON files hold."""
    return {k: v for k, v in run.items() if k != "best_params"}


def seed_table(train_acc, val_acc, sep: str = "\t") -> str:
    """Seed 000's table: an Epoch header, a Training and a Validation row, 6 decimals."""
    rows = [["Epoch", *map(str, range(len(train_acc)))],
            ["Training", *(f"{a:.6f}" for a in train_acc)],
            ["Validation", *(f"{a:.6f}" for a in val_acc)]]
    return "\n".join(sep.join(r) for r in rows)


def markdown_table(header: list, rows: list[list]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def markdown_seed_table(train_acc, val_acc) -> str:
    return markdown_table(["Epoch", *range(len(train_acc))],
                          [["Training", *(f"{a:.6f}" for a in train_acc)],
                           ["Validation", *(f"{a:.6f}" for a in val_acc)]])


def write_curves_csv(path: str, runs: list[dict], keys: tuple[str, ...]) -> None:
    """One row per (run, epoch): the run's ``keys`` settings, then epoch, accuracies, mean loss."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", *keys, "epoch", "train_acc", "val_acc", "epoch_loss"])
        for r in runs:
            for e, (tr, va, lo) in enumerate(zip(r["train_acc"], r["val_acc"], r["epoch_loss"])):
                w.writerow([r["label"], *(r["settings"][k] for k in keys), e, f"{tr:.6f}",
                            f"{va:.6f}", "" if lo is None else f"{lo:.6f}"])


def write_json(path: str, obj: dict) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1)


def prepare_out(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
