"""Settings: one declared schema per concept, one name and one default per setting.

A :class:`Setting` is named once.  Its ``name`` is the Python keyword, the TOML key, the key in
checkpoints and results, and, with ``-`` for ``_``, the flag: ``batch_size`` / ``--batch-size``.
Values are checked in one place (:meth:`Setting.check`) however they arrive, and a bad one is
reported under the spelling the user typed (``--epochs=0: expected an integer >= 1``).  Old
spellings (``aliases``) stay accepted for one release: as flags hidden from ``--help``, and as
keywords and TOML keys with a DeprecationWarning.

Schemas: :data:`TRAINING` (the Trainer's settings), :data:`OPTIMIZATION` (its ``optim_config``),
:data:`MODEL` (the network the commands build), :data:`DATA`, :data:`RUN` (where results go,
progress) and :data:`EXPERIMENT` (what only experiments have).  Commands combine them with
:func:`combine` and get their flags from :meth:`Schema.add_flags`.
"""
from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass

from .checks import check_int, check_probability, check_real
from .data import DATASETS
from .models import ACTIVATIONS
from .optim import OPTIMIZERS
from .toml import read_toml

KINDS = ("int", "real", "probability", "choice", "text", "switch", "grid", "seeds", "sizes")


@dataclass(frozen=True)
class Setting:
    """One setting: ``kind`` (one of :data:`KINDS`) says how it is checked and parsed from a
    flag; ``low``/``high`` bound numbers; ``optional`` allows None (its meaning is in ``help``);
    ``resume`` marks a training setting a checkpoint must match to resume; ``none_means`` says
    what a None default stands for (shown in ``--help``)."""

    name: str
    kind: str
    default: object
    help: str
    low: float = 0
    low_open: bool = False
    high: float = math.inf
    high_open: bool = True
    choices: tuple = ()
    optional: bool = False
    odd: bool = False
    aliases: tuple = ()
    resume: bool = False
    none_means: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value, label: str | None = None):
        """``value`` checked (and normalised: int, float, list of pairs); ``label`` is the
        spelling to report (default: the name)."""
        label = label or self.name
        if value is None and self.optional:
            return None
        if self.kind == "int":
            value = check_int(label, value, int(self.low))
            if self.odd and value % 2 == 0:
                raise ValueError(f"{label}={value}: expected an odd size ('same' padding)")
            return value
        if self.kind == "real":
            return check_real(label, value, self.low, self.high, self.low_open, self.high_open)
        if self.kind == "probability":
            return check_probability(label, value)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{label}={value!r}: expected one of "
                                 f"{', '.join(map(str, self.choices))}")
            return value
        if self.kind == "switch":
            if not isinstance(value, bool):
                raise ValueError(f"{label}={value!r}: expected true or false")
            return value
        if self.kind == "grid":
            return _check_grid(label, value)
        if self.kind == "seeds":
            return _check_seeds(label, value)
        if self.kind == "sizes":
            return _check_sizes(label, value)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{label}={value!r}: expected a non-empty string")
        return value

    def parse(self, text: str):
        """A flag's text -> the value :meth:`check` takes; ValueError names the flag."""
        try:
            if self.kind == "int":
                return int(text)
            if self.kind in ("real", "probability"):
                return float(text)
            if self.kind == "grid":
                return [[float(x) for x in pair.split(":")] for pair in text.split(",")]
            if self.kind == "seeds":
                return [int(v) for v in text.split(",")] if "," in text else int(text)
            if self.kind == "sizes":
                return [v if v == "full" else int(v) for v in text.split(",")]
        except ValueError:
            what = {"int": "an integer", "grid": "REG:DROPOUT pairs separated by commas, e.g. "
                                                 "0:0,0.01:0,0.01:0.4",
                    "seeds": "a count (e.g. 5) or a comma list of seeds (e.g. 3,7,11)",
                    "sizes": "comma-separated sample counts or 'full', e.g. full,200"
                    }.get(self.kind, "a number")
            raise ValueError(f"{self.flag} {text!r}: expected {what}") from None
        return text


def _check_grid(label, value) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a non-empty list of [reg, dropout] pairs")
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{label}[{i}]={pair!r}: expected a [reg, dropout] pair")
        check_real(f"{label}[{i}] reg", pair[0], 0)
        check_probability(f"{label}[{i}] dropout", pair[1])
    return [[float(r), float(p)] for r, p in value]


def _check_seeds(label, value) -> list[int]:
    """A list of distinct seeds; an integer N stands for seeds 0..N-1."""
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(check_int(label, value, 1)))
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a count >= 1 or a non-empty list of seeds")
    seeds = [check_int(f"{label}[{i}]", v, 0) for i, v in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{label}={list(value)}: expected distinct seeds")
    return seeds


def _check_sizes(label, value) -> list:
    """Distinct training-set sizes, each "full" or a sample count >= 1."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a non-empty list of \"full\" or sample "
                         f"counts")
    sizes = [v if v == "full" else check_int(f"{label}[{i}]", v, 1) for i, v in enumerate(value)]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"{label}={list(value)}: expected distinct sizes")
    return sizes


class Schema:
    """An ordered set of settings with one default each."""

    def __init__(self, title: str, *settings: Setting):
        self.title = title
        self.settings = {s.name: s for s in settings}
        self.aliases = {a: s.name for s in settings for a in s.aliases}

    def __getitem__(self, name: str) -> Setting:
        return self.settings[name]

    def __iter__(self):
        return iter(self.settings.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self.settings)

    def defaults(self) -> dict:
        return {s.name: s.default for s in self}

    def canonical(self, values: dict, where: str) -> dict:
        """``values`` with old names renamed (DeprecationWarning); unknown names are an error
        that starts with ``where`` (e.g. the TOML file)."""
        out = {}
        for key, value in values.items():
            if key in self.aliases:
                warnings.warn(f"{where}: {key!r} is now called {self.aliases[key]!r}; the old "
                              f"name goes in the next release", DeprecationWarning, stacklevel=3)
                key = self.aliases[key]
            elif key not in self.settings:
                raise ValueError(f"{where}: unknown setting {key!r}; expected some of "
                                 f"{', '.join(self.settings)}")
            out[key] = value
        return out

    def check(self, values: dict, labels: dict | None = None) -> dict:
        """Every value of ``values`` checked; ``labels`` maps a name to the spelling to report."""
        labels = labels or {}
        return {k: self[k].check(v, labels.get(k)) for k, v in values.items()}

    def read_toml(self, path: str) -> tuple[dict, dict]:
        """``(values, labels)`` of a TOML file's top-level keys, named like these settings."""
        doc = read_toml(path, "--config")
        values = self.canonical(doc, f"--config {path}")
        return values, {k: f"{path}: {k}" for k in values}

    def add_flags(self, parser, defaults: dict | None = None) -> None:
        """One flag per setting on ``parser`` (or an argument group), each defaulting to None (a
        switch: to its default) so that a flag the user gave can be told from one left out;
        the help shows the default
        (``defaults`` overrides a command's own).  Old spellings are hidden aliases."""
        defaults = {**self.defaults(), **(defaults or {})}
        for s in self:
            shown = defaults[s.name]
            tail = f" (default {s.none_means if shown is None else shown})"
            if s.kind == "switch":  # the flag flips the default; its value is never None
                names = [_switch_flag(s)]
                kwargs = dict(action="store_const", const=not s.default, default=s.default,
                              help=s.help)
            else:
                names = [s.flag]
                kwargs = dict(help=s.help + tail, choices=s.choices or None, default=None,
                              metavar=s.name.upper() if s.kind != "choice" else None)
            parser.add_argument(*names, dest=s.name, **kwargs)
            for alias in s.aliases:
                flag = "--" + alias.replace("_", "-")
                hidden = {k: v for k, v in kwargs.items() if k != "metavar"}
                parser.add_argument(flag, dest=s.name, **{**hidden, "help": argparse.SUPPRESS})

    def from_args(self, args) -> tuple[dict, dict]:
        """``(values, labels)`` of the flags given on the command line (parsed and labelled
        with the flag, for errors)."""
        values, labels = {}, {}
        for s in self:
            text = getattr(args, s.name, None)
            if text is None or (s.kind == "switch" and text == s.default):
                continue
            values[s.name] = s.parse(text) if isinstance(text, str) else text
            labels[s.name] = s.flag if s.kind != "switch" else _switch_flag(s)
        return values, labels

    def resolve(self, *layers: tuple[dict, dict], where: str = "settings") -> dict:
        """The defaults, overridden by each ``(values, labels)`` layer in turn (later wins),
        every value checked under the label of the layer that gave it; ``where`` names the
        caller in the message about an old or unknown name."""
        values, labels = self.defaults(), {}
        for layer, layer_labels in layers:
            layer = self.canonical(layer, where)
            values.update(layer)
            for k in layer:
                if k in layer_labels:
                    labels[k] = layer_labels[k]
                else:
                    labels.pop(k, None)
        return self.check(values, labels)


def _switch_flag(s: Setting) -> str:
    """A switch's flag: ``--no-progress`` turns an on-by-default one off, ``--cuda-graph`` an
    off-by-default one on."""
    return ("--no-" + s.name.replace("_", "-")) if s.default else s.flag


def combine(title: str, *schemas: Schema, only: tuple[str, ...] | None = None) -> Schema:
    """One schema of the settings of ``schemas`` (those named in ``only``, if given)."""
    settings = [s for schema in schemas for s in schema if only is None or s.name in only]
    return Schema(title, *settings)


TRAINING = Schema(
    "training",
    Setting("optimizer", "choice", "adam", "update rule", choices=tuple(OPTIMIZERS), resume=True),
    Setting("batch_size", "int", 50, "samples per batch (training: per update, the global batch "
            "with several ranks)", low=1, resume=True),
    Setting("epochs", "int", 5, "epochs to train", low=1, aliases=("num_epochs",)),
    Setting("iterations_per_epoch", "int", None, "updates per epoch", low=1, optional=True,
            resume=True, aliases=("iterations",), none_means="one pass over the training set"),
    Setting("train_samples", "int", 1000, "training samples scored after each epoch", low=1,
            resume=True, aliases=("num_train_samples",)),
    Setting("val_samples", "int", None, "validation samples scored after each epoch", low=1,
            optional=True, resume=True, aliases=("num_val_samples",), none_means="all"),
    Setting("seed", "int", 0, "seed of the model, dropout, the batch order and the scored "
            "subsets", resume=True),
    Setting("device", "text", None, "cpu, cuda or auto", optional=True,
            none_means="$GPUCNN_DEVICE, else auto"),
    Setting("checkpoint_every", "int", 1, "write a checkpoint every this many epochs", low=1),
    Setting("cuda_graph", "switch", False, "replay each training step as one CUDA graph (SGD "
            "on one GPU; elsewhere a notice and eager steps)"),
)

OPTIMIZATION = Schema(
    "optimization",
    Setting("lr", "real", 3e-3, "learning rate", low_open=True),
    Setting("lr_decay", "real", 1.0, "learning-rate multiplier after each epoch", low_open=True,
            high=1.0, high_open=False),
    Setting("momentum", "real", None, "momentum/nesterov: momentum", high=1.0, optional=True,
            none_means="the optimizer's, 0.9"),
)

MODEL = Schema(
    "model",
    Setting("model", "text", "three-layer", "'three-layer' or a TOML file of [[layers]] tables"),
    Setting("filters", "int", 16, "three-layer: conv filters", low=1, aliases=("num_filters",)),
    Setting("filter_size", "int", 3, "three-layer: odd conv filter size", low=1, odd=True),
    Setting("hidden", "int", 100, "three-layer: hidden units", low=1, aliases=("hidden_dim",)),
    Setting("weight_scale", "real", None, "init std", low_open=True, optional=True,
            none_means="He, sqrt(2/fan_in)"),
    Setting("activation", "choice", "relu", "three-layer: activation", choices=ACTIVATIONS),
    Setting("reg", "real", 0.0, "L2 strength on weights"),
    Setting("dropout", "probability", 0.0, "three-layer: drop probability"),
)

DATA = Schema(
    "data",
    Setting("dataset", "choice", "digits", "dataset", choices=DATASETS),
    Setting("data_dir", "text", None, "data folder", optional=True,
            none_means="$GPUCNN_DATA or ~/.cache/gpucnn"),
)

RUN = Schema(
    "run",
    Setting("output", "text", None, "output folder", optional=True, aliases=("out",),
            none_means="the command's own"),
    Setting("progress", "switch", True, "no progress bar (it is off anyway when stderr is not a "
            "terminal)"),
)

EXPERIMENT = Schema(
    "experiment",
    Setting("grid", "grid", [[0.0, 0.0], [0.01, 0.0], [0.01, 0.4]],
            "reproduce: REG:DROPOUT pairs, one run each"),
    # reproduce's: on the digits, 200 training samples make the unregularised gap about +0.07
    # (8 seeds, interval +/-0.01), and 8 seeds x 2 sizes x 3 runs fit 60 s on a 2-core CPU
    # (README).  sanity and sweep set their own (gpucnn/cli/experiments.py).
    Setting("seeds", "seeds", list(range(8)),
            "replicates, a count N (seeds 0..N-1) or a comma list; a seed fixes a run's init, "
            "batch order, dropout masks and training subset; --seed still fixes the data split"),
    Setting("train_sizes", "sizes", ["full", 200],
            "training-set sizes, 'full' or sample counts, comma separated"),
)


def optim_config(values: dict) -> dict:
    """The Trainer's ``optim_config`` from :data:`OPTIMIZATION` values (momentum only if set,
    so each optimizer keeps its own default)."""
    config = {"lr": values["lr"], "lr_decay": values["lr_decay"]}
    if values.get("momentum") is not None:
        config["momentum"] = values["momentum"]
    return config


def three_layer_kwargs(values: dict) -> dict:
    """:class:`gpucnn.models.ThreeLayerConvNet` keywords (CS231n names) from :data:`MODEL`
    values."""
    return {"num_filters": values["filters"], "filter_size": values["filter_size"],
            "hidden_dim": values["hidden"], "weight_scale": values["weight_scale"],
            "reg": values["reg"], "dropout": values["dropout"],
            "activation": values.get("activation", "relu")}
