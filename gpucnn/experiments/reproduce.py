"""The source document's (seeds/000) experiment, replicated: do L2 and dropout change the
train/validation gap, and in which regime?

Protocol per run: epochs of ``iterations`` updates; accuracy on ``train_samples`` training
samples and on the validation set before training (epoch 0) and after each epoch.  The grid is
every (training-set size, (reg, dropout) pair, seed): by default the full training split and 200
samples, (0, 0), (0.01, 0), (0.01, 0.4), seeds 0..7.  A seed fixes a run's initialisation, batch
order, dropout masks and its training subset, so runs with one seed and size differ only in
(reg, dropout) and can be compared in pairs (:mod:`.reproduce_report` does the statistics).

The runs are kept, resumed and spread over processes by :mod:`.replicate`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .common import Settings, check_train_sizes, public, train_run, training_data
from .replicate import run_replicated


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: training-set size ("full" or a count), L2, dropout, seed."""

    train_size: str | int
    reg: float
    dropout: float
    seed: int

    @property
    def key(self) -> str:
        return f"n{self.train_size}_reg{self.reg:g}_p{self.dropout:g}_seed{self.seed}"

    @property
    def label(self) -> str:
        return run_label(self.reg, self.dropout)

    @property
    def title(self) -> str:
        size = "all" if self.train_size == "full" else self.train_size
        return f"{size} training samples, {self.label}"

    def train(self, s: Settings, dataset) -> dict:
        """This run on ``dataset`` (a ``gpucnn.data.Dataset``) under ``s``."""
        data = training_data(dataset, self.train_size, self.seed)
        run = public(train_run(dataclasses.replace(s, seed=self.seed), data, self.label,
                               reg=self.reg, dropout=self.dropout, progress=False))
        run["num_train"] = len(data["y_train"])
        return run


def run_label(reg: float, dropout: float) -> str:
    return f"reg={reg:g}, dropout={dropout:g}"


def grid_specs(s: Settings) -> list[RunSpec]:
    """Every run, by size, then seed, then (reg, dropout): an interrupted grid leaves whole
    pairs of a seed behind."""
    return [RunSpec(size, reg, p, seed) for size in s.train_sizes for seed in s.seeds
            for reg, p in s.grid]


def run_reproduce(s: Settings, folder: str, *, fresh: bool = False, workers: int | None = None,
                  echo=lambda text: print(text, flush=True)) -> dict | None:
    """Train the grid's missing runs into ``folder`` and return every run of the grid (see
    :func:`.replicate.run_replicated`).  MPI ranks other than 0 return None."""
    return run_replicated("reproduce", s, folder, grid_specs(s), fresh=fresh, workers=workers,
                          check=lambda dataset: check_train_sizes(s, dataset), echo=echo)
