"""How each kind of setting is checked and read from a flag's text, for the kinds that hold more
than one number or name: the reproduction's grid, seeds and training-set sizes, a list of epochs
(milestones), the augmentations, a dataset (a name or a path) and a file.

Each checker takes ``(label, value, setting)`` and returns the value normalised (lists, ints,
floats); a bad value is one ``ValueError`` line that starts with ``label=value``.
"""
from __future__ import annotations

import os

from ..checks import check_int, check_probability, check_real
from ..data import AUGMENTATIONS, DATASETS


def check_grid(label, value, setting) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a non-empty list of [reg, dropout] pairs")
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{label}[{i}]={pair!r}: expected a [reg, dropout] pair")
        check_real(f"{label}[{i}] reg", pair[0], 0)
        check_probability(f"{label}[{i}] dropout", pair[1])
    return [[float(r), float(p)] for r, p in value]


def check_seeds(label, value, setting) -> list[int]:
    """A list of distinct seeds; an integer N stands for seeds 0..N-1."""
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(check_int(label, value, 1)))
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a count >= 1 or a non-empty list of seeds")
    seeds = [check_int(f"{label}[{i}]", v, 0) for i, v in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{label}={list(value)}: expected distinct seeds")
    return seeds


def check_sizes(label, value, setting) -> list:
    """Distinct training-set sizes, each "full" or a sample count >= 1."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a non-empty list of \"full\" or sample "
                         f"counts")
    sizes = [v if v == "full" else check_int(f"{label}[{i}]", v, 1) for i, v in enumerate(value)]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"{label}={list(value)}: expected distinct sizes")
    return sizes


def check_epochs(label, value, setting) -> list[int]:
    """Epoch numbers >= 1 in increasing order (a multistep schedule's milestones)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{label}={value!r}: expected a non-empty list of epochs, e.g. [30, 60]")
    epochs = [check_int(f"{label}[{i}]", v, 1) for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"{label}={epochs}: expected increasing epochs")
    return epochs


def check_augment(label, value, setting) -> list:
    """Augmentations applied in order: built-in names (:data:`gpucnn.data.AUGMENTATIONS`) or,
    from Python, functions ``(X, rng) -> X``; a comma-separated string of names is read too."""
    items = value.split(",") if isinstance(value, str) and value else value
    if callable(items):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{label}={value!r}: expected a list of {', '.join(AUGMENTATIONS)} "
                         f"or functions (X, rng) -> X")
    for item in items:
        if not callable(item) and item not in AUGMENTATIONS:
            raise ValueError(f"{label}={value!r}: expected some of {', '.join(AUGMENTATIONS)} "
                             f"(or, from Python, functions (X, rng) -> X); {item!r} is none")
    names = [i for i in items if not callable(i)]
    if len(set(names)) != len(names):
        raise ValueError(f"{label}={value!r}: expected each augmentation once")
    return list(items)


def check_dataset(label, value, setting) -> str:
    """A dataset name, or the path of an ``.npz`` file or of a folder of class folders."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.lower() in DATASETS:
        return value.lower()
    if isinstance(value, str) and value and os.path.exists(value):
        if os.path.isdir(value) or value.endswith(".npz"):
            return os.path.abspath(value)
    raise ValueError(f"{label}={value!r}: expected one of {', '.join(DATASETS)}, an .npz file "
                     f"(x_train, y_train, ...) or a folder with one subfolder of images per "
                     f"class")


def check_file(label, value, setting) -> str:
    """The path of an existing file."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and os.path.isdir(value):
        raise ValueError(f"{label}={value!r}: expected a file, found a folder")
    if not isinstance(value, str) or not os.path.isfile(value):
        raise ValueError(f"{label}={value!r}: no such file")
    return os.path.abspath(value)


CHECKS = {"grid": check_grid, "seeds": check_seeds, "sizes": check_sizes,
          "epochs": check_epochs, "augment": check_augment, "dataset": check_dataset,
          "file": check_file}

# How a flag's text is read, and what it should have looked like.
PARSERS = {
    "grid": (lambda t: [[float(x) for x in pair.split(":")] for pair in t.split(",")],
             "REG:DROPOUT pairs separated by commas, e.g. 0:0,0.01:0,0.01:0.4"),
    "seeds": (lambda t: [int(v) for v in t.split(",")] if "," in t else int(t),
              "a count (e.g. 5) or a comma list of seeds (e.g. 3,7,11)"),
    "sizes": (lambda t: [v if v == "full" else int(v) for v in t.split(",")],
              "comma-separated sample counts or 'full', e.g. full,200"),
    "epochs": (lambda t: [int(v) for v in t.split(",")], "comma-separated epochs, e.g. 30,60"),
    "augment": (lambda t: [v.strip() for v in t.split(",")] if t else [],
                "comma-separated augmentations, e.g. flip,crop"),
}
