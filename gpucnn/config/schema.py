"""The machinery of settings: a :class:`Setting` is named once, a :class:`Schema` holds a
concept's settings, :func:`combine` joins schemas for a command.

A setting's ``name`` is the Python keyword, the TOML key, the key in checkpoints and results,
and, with ``-`` for ``_``, the flag: ``batch_size`` / ``--batch-size``.  Values are checked in
one place (:meth:`Setting.check`) however they arrive, and a bad one is reported under the
spelling the user typed (``--epochs=0: expected an integer >= 1``).  Old spellings
(``aliases``) stay accepted for one release: as flags hidden from ``--help``, and as keywords
and TOML keys with a DeprecationWarning.
"""
from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass

from ..checks import check_int, check_probability, check_real, did_you_mean
from ..toml import read_toml
from .values import CHECKS, PARSERS

# Names other tools give settings: the hint of an unknown-setting error.
SYNONYMS = {"learning_rate": "lr", "batch": "batch_size", "n_epochs": "epochs", "l2": "reg",
            "out_dir": "output", "output_dir": "output", "checkpoint_dir": "output",
            "scheduler": "schedule", "lr_scheduler": "schedule", "lr_schedule": "schedule",
            "milestone": "milestones", "eta_min": "min_lr", "lr_min": "min_lr",
            "factor": "gamma", "patience": "early_stop", "early_stopping": "early_stop",
            "warmup": "warmup_epochs", "augmentation": "augment", "augmentations": "augment",
            "smoothing": "label_smoothing", "max_grad_norm": "clip_grad_norm",
            "grad_clip": "clip_grad_norm", "gradient_clip_val": "clip_grad_norm",
            "wd": "weight_decay", "pretrained": "init_weights", "weights": "init_weights",
            "metric": "monitor", "topk": "top_k"}
KINDS = ("int", "real", "probability", "choice", "text", "switch", *CHECKS)


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
        if self.kind in CHECKS:
            return CHECKS[self.kind](label, value, self)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{label}={value!r}: expected a non-empty string")
        return value

    def parse(self, text: str):
        """A flag's text -> the value :meth:`check` takes; ValueError names the flag."""
        parse, what = {"int": (int, "an integer"), "real": (float, "a number"),
                       "probability": (float, "a number"), **PARSERS}.get(self.kind, (str, ""))
        try:
            return parse(text)
        except ValueError:
            raise ValueError(f"{self.flag} {text!r}: expected {what}") from None


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
                hint = did_you_mean(key, self.settings, SYNONYMS)
                raise ValueError(f"{where}: unknown setting {key!r}{hint}; expected some of "
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
            shown = "none" if shown in ((), []) else shown
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
