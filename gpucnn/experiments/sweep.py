"""The source document's design sweeps (seeds/002), replicated: does changing one design decision
of the base net (32 filters 7x7, hidden 500, reg 0.001) change its accuracy, and its overfitting?

Per training-set size and seed, the base net and every swept value (dropout 0.1-0.8, hidden
300/500/700, filters 16/32/48, filter size 3/5/7) are trained once; a value equal to the base
net's is the base net's run.  Runs with one seed share initialisation stream, batch order,
dropout stream and training subset, so each value is compared with the base net in pairs
(:mod:`.sweep_analysis`).  The runs are kept, resumed and spread over processes by
:mod:`.replicate`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .common import SCHEMA, Settings, check_train_sizes, public, train_run, training_data
from .replicate import run_replicated

BASE_NET = {"filters": 32, "filter_size": 7, "hidden": 500, "reg": 0.001, "dropout": 0.0}
# The design study's sweeps: parameter (as --param names it) -> (model setting, values).
SWEEPS = {
    "dropout": ("dropout", [0.1, 0.3, 0.5, 0.8]),
    "hidden": ("hidden", [300, 500, 700]),
    "filters": ("filters", [16, 32, 48]),
    "filter-size": ("filter_size", [3, 5, 7]),
}


@dataclass(frozen=True)
class SweepSpec:
    """One run: training-set size ("full" or a count), the parameter changed from the base net
    (a key of :data:`SWEEPS`; None for the base net itself) and its value, seed."""

    train_size: str | int
    param: str | None
    value: float | None
    seed: int

    @property
    def label(self) -> str:
        return "base" if self.param is None else f"{self.param}={self.value:g}"

    @property
    def key(self) -> str:
        what = "base" if self.param is None else f"{self.param}{self.value:g}"
        return f"n{self.train_size}_{what}_seed{self.seed}"

    @property
    def title(self) -> str:
        size = "all" if self.train_size == "full" else self.train_size
        return f"{size} training samples, {self.label}"

    def train(self, s: Settings, dataset) -> dict:
        """This run on ``dataset`` (a ``gpucnn.data.Dataset``) under ``s``, with its final
        accuracy on the test split (``test_acc``)."""
        data = training_data(dataset, self.train_size, self.seed)
        change = {} if self.param is None else {SWEEPS[self.param][0]: self.value}
        run = train_run(dataclasses.replace(s, seed=self.seed), data, self.label,
                        progress=False, **change)
        test = float(np.mean(run["model"].predict(dataset.x_test) == dataset.y_test))
        return {**public(run), "num_train": len(data["y_train"]), "test_acc": test,
                "num_test": len(dataset.y_test)}


def sweep_values(s: Settings, params: list[str], values: list | None = None) -> dict:
    """Parameter -> its values: the design study's, or ``values`` for the one parameter of
    ``params``; every one checked before any run, duplicates dropped."""
    unknown = [p for p in params if p not in SWEEPS]
    if unknown or not params or len(set(params)) != len(params):
        raise ValueError(f"params={params!r}: expected distinct names among "
                         f"{', '.join(SWEEPS)}")
    if values is not None and len(params) != 1:
        raise ValueError(f"values={values!r}: give one parameter with them, got {params}")
    if values is not None:
        setting = SWEEPS[params[0]][0]
        return {params[0]: list(dict.fromkeys(SCHEMA[setting].check(v, f"--values {params[0]}")
                                              for v in values))}
    return {p: list(SWEEPS[p][1]) for p in params}


def base_value(s: Settings, param: str):
    """The base net's value of ``param``."""
    return getattr(s, SWEEPS[param][0])


def sweep_specs(s: Settings, swept: dict) -> list[SweepSpec]:
    """Every run, by size, then seed, then the base net and each value that differs from the
    base net's: an interrupted sweep leaves whole seeds behind."""
    specs = []
    for size in s.train_sizes:
        for seed in s.seeds:
            specs.append(SweepSpec(size, None, None, seed))
            specs += [SweepSpec(size, p, v, seed) for p, vs in swept.items() for v in vs
                      if v != base_value(s, p)]
    return specs


def run_sweep(s: Settings, folder: str, params: list[str], values: list | None = None, *,
              fresh: bool = False, workers: int | None = None,
              echo=lambda text: print(text, flush=True)) -> dict | None:
    """Train the sweep's missing runs into ``folder`` and return them (see
    :func:`.replicate.run_replicated`) with ``swept`` (parameter -> values) and ``base`` (the
    base net's value of each parameter).  MPI ranks other than 0 return None."""
    swept = sweep_values(s, params, values)
    result = run_replicated("sweep", s, folder, sweep_specs(s, swept), fresh=fresh,
                            workers=workers, check=lambda dataset: check_train_sizes(s, dataset),
                            echo=echo)
    if result is None:
        return None
    return {**result, "swept": swept, "base": {p: base_value(s, p) for p in swept}}
