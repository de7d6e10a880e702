"""What a training run measured, per iteration and per epoch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """What ``Trainer.train()`` measured.

    Per iteration: ``loss``.  Per epoch, indexed by epoch number with **epoch 0 = before
    training**: ``train_acc``, ``val_acc``, ``lr`` (the rate used during that epoch),
    ``epoch_loss`` (mean training loss of the epoch; None for epoch 0) and ``epoch_time``
    (seconds: the epoch's updates and its accuracy checks; epoch 0 only the checks).
    ``best_params`` (host NumPy copies) are those of ``best_epoch``, the first epoch with the
    highest ``best_val_acc``.
    """

    loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch_loss: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = -1
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
        return cls(**d, best_params=dict(best_params or {}))

    HEADER = f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'val acc':>7}  {'seconds':>7}"

    def row(self, epoch: int) -> str:
        """One line of the per-epoch table (see ``HEADER``)."""
        loss = self.epoch_loss[epoch]
        return (f"{epoch:>5}  {'-' if loss is None else f'{loss:.4f}':>8}  "
                f"{self.train_acc[epoch]:>9.3f}  {self.val_acc[epoch]:>7.3f}  "
                f"{self.epoch_time[epoch]:>7.2f}")
