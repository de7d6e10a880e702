"""What a training run measured, per iteration and per epoch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """What ``Trainer.train()`` measured.

    Per iteration: ``loss``.  Per epoch, indexed by epoch number with **epoch 0 = before
    training**: ``train_acc``, ``val_acc``, ``val_loss`` (mean cross-entropy on the validation
    samples, with the run's label smoothing, without L2), ``lr`` (the rate used during that
    epoch), ``epoch_loss`` (mean training loss of the epoch's updates, L2 included; None for
    epoch 0) and ``epoch_time`` (seconds: the epoch's updates and its measurements; epoch 0
    only the measurements).  ``best_epoch`` is the first epoch with the best monitored metric
    (``monitor``: the highest val_acc or the lowest val_loss), ``best_val_acc`` its validation
    accuracy and ``best_params`` (host NumPy copies) its parameters.  ``stopped_epoch`` is the
    epoch early stopping ended the run after (None: it did not).  ``notes`` records what
    changed along the way: ``{"epoch", "iteration", "note"}``, e.g. a new learning rate on
    resume, or the weights a run started from.
    """

    loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch_loss: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = -1
    stopped_epoch: int | None = None
    notes: list = field(default_factory=list)
    best_params: dict = field(default_factory=dict, repr=False)

    @property
    def epochs(self) -> int:
        """Epochs completed (not counting epoch 0)."""
        return max(len(self.val_acc) - 1, 0)

    def to_dict(self) -> dict:
        """Everything but ``best_params``, JSON-able."""
        d = asdict(self)
        del d["best_params"]
        return d

    @classmethod
    def from_dict(cls, d: dict, best_params: dict | None = None) -> "History":
        """The history of :meth:`to_dict`; one written before validation loss was measured
        gets None for its epochs."""
        d = dict(d)
        d.setdefault("val_loss", [None] * len(d.get("val_acc", ())))
        return cls(**d, best_params=dict(best_params or {}))

    def metric(self, monitor: str, epoch: int = -1) -> float:
        """The monitored metric ("val_acc" or "val_loss") of ``epoch`` (default: the last)."""
        return self.val_acc[epoch] if monitor == "val_acc" else self.val_loss[epoch]

    def improved(self, monitor: str) -> bool:
        """The last epoch beats ``best_epoch`` on ``monitor`` (strictly: the first best stays)."""
        if self.best_epoch < 0:
            return True
        now, best = self.metric(monitor), self.metric(monitor, self.best_epoch)
        return now > best if monitor == "val_acc" else now < best

    def add_note(self, iteration: int, note: str) -> None:
        self.notes.append({"epoch": self.epochs, "iteration": iteration, "note": note})

    HEADER = (f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'val loss':>8}  {'val acc':>7}  "
              f"{'lr':>9}  {'seconds':>7}")

    def row(self, epoch: int) -> str:
        """One line of the per-epoch table (see ``HEADER``)."""
        loss, val_loss = self.epoch_loss[epoch], self.val_loss[epoch]
        return (f"{epoch:>5}  {'-' if loss is None else f'{loss:.4f}':>8}  "
                f"{self.train_acc[epoch]:>9.3f}  "
                f"{'-' if val_loss is None else f'{val_loss:.4f}':>8}  "
                f"{self.val_acc[epoch]:>7.3f}  {self.lr[epoch]:>9.3g}  "
                f"{self.epoch_time[epoch]:>7.2f}")
