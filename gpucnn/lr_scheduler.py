"""Learning-rate schedules by epoch, named and computed as ``torch.optim.lr_scheduler``'s.

A schedule gives the learning rate of each epoch from a base rate: ``get_lr(base_lr, t)`` for
the ``t``-th epoch it runs (``t = 0`` for its first), as torch's closed forms do at
``last_epoch = t``.  :class:`ReduceLROnPlateau` also hears the monitored metric after each
epoch (``step(metric)``) and keeps state, which ``state_dict()`` / ``load_state_dict()`` carry
through checkpoints.  :class:`Warmup` runs ``epochs`` epochs at ``base * (t + 1) / (epochs + 1)``
before its schedule, which then counts its own epochs from 0: torch's ``SequentialLR`` of
``LinearLR(start_factor=1 / (epochs + 1), total_iters=epochs)`` and the schedule.

:func:`make_schedule` builds one from the settings of ``gpucnn train`` (``--schedule`` and its
options, ``--lr-decay``, ``--warmup-epochs``); :class:`gpucnn.train.Trainer` runs it.
"""
from __future__ import annotations

import math
from bisect import bisect_right

from .checks import check_int, check_real

SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")


class Schedule:
    """A schedule without state: ``get_lr`` is all there is."""

    def get_lr(self, base_lr: float, t: int) -> float:
        raise NotImplementedError(f"{type(self).__name__}: a schedule defines get_lr")

    def step(self, metric: float) -> None:
        """Hear the monitored metric of the epoch just finished (only a plateau listens)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class ExponentialLR(Schedule):
    """base * gamma ** t: ``lr_decay`` after every epoch (gamma 1: a constant rate)."""

    def __init__(self, gamma: float = 1.0):
        self.gamma = check_real("gamma", gamma, 0.0, 1.0, low_open=True, high_open=False)

    def get_lr(self, base_lr, t):
        return base_lr * self.gamma ** t


class StepLR(Schedule):
    """base * gamma ** (t // step_size): times ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma, 0.0, 1.0, low_open=True, high_open=False)

    def get_lr(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(Schedule):
    """base * gamma ** (milestones passed): times ``gamma`` after each milestone epoch."""

    def __init__(self, milestones, gamma: float = 0.1):
        if not isinstance(milestones, (list, tuple)) or not milestones:
            raise ValueError(f"milestones={milestones!r}: expected a list of epochs")
        self.milestones = sorted(check_int(f"milestones[{i}]", m, 1)
                                 for i, m in enumerate(milestones))
        self.gamma = check_real("gamma", gamma, 0.0, 1.0, low_open=True, high_open=False)

    def get_lr(self, base_lr, t):
        return base_lr * self.gamma ** bisect_right(self.milestones, t)


class CosineAnnealingLR(Schedule):
    """eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2 up to ``T_max`` epochs, then
    ``eta_min`` (torch's formula rises again after T_max; an extended run here stays low)."""

    def __init__(self, T_max: int, eta_min: float = 0.0):  # noqa: N803  (torch's name)
        self.T_max = check_int("T_max", T_max, 1)
        self.eta_min = check_real("eta_min", eta_min, 0.0)

    def get_lr(self, base_lr, t):
        if t >= self.T_max:
            return self.eta_min
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class ReduceLROnPlateau(Schedule):
    """Times ``factor`` (not below ``min_lr``) once the metric has not improved for more than
    ``patience`` epochs; ``mode`` "min" for a loss, "max" for an accuracy; improvement is
    relative (``threshold``); ``cooldown`` epochs after a cut are not counted."""

    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}: expected 'min' or 'max'")
        self.mode = mode
        self.factor = check_real("factor", factor, 0.0, 1.0, low_open=True)
        self.patience = check_int("patience", patience, 0)
        self.threshold = check_real("threshold", threshold, 0.0)
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = check_real("min_lr", min_lr, 0.0)
        self.eps = check_real("eps", eps, 0.0)
        # lr: the rate now, cut by cut as torch's (None: the base rate, until get_lr first runs)
        self._state = {"best": None, "num_bad_epochs": 0, "cooldown_counter": 0, "lr": None}

    def get_lr(self, base_lr, t):
        if self._state["lr"] is None:
            self._state["lr"] = float(base_lr)
        return self._state["lr"]

    def step(self, metric):
        s, current = self._state, float(metric)
        if s["lr"] is None:
            raise RuntimeError("ReduceLROnPlateau.step before get_lr: no rate to cut yet")
        if s["best"] is None or self._is_better(current, s["best"]):
            s["best"], s["num_bad_epochs"] = current, 0
        else:
            s["num_bad_epochs"] += 1
        if s["cooldown_counter"] > 0:
            s["cooldown_counter"] -= 1
            s["num_bad_epochs"] = 0
        if s["num_bad_epochs"] > self.patience:
            s["cooldown_counter"], s["num_bad_epochs"] = self.cooldown, 0
            new = max(s["lr"] * self.factor, self.min_lr)
            if s["lr"] - new > self.eps:
                s["lr"] = new

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < best * (1 - self.threshold)
        return a > best * (1 + self.threshold)

    def state_dict(self):
        return dict(self._state)

    def load_state_dict(self, state):
        self._state = {**self._state, **state}


class Warmup(Schedule):
    """``epochs`` epochs rising linearly to the base rate (``base * (t + 1) / (epochs + 1)``),
    then ``schedule`` with its epochs counted from 0 (a plateau hears no metric before)."""

    def __init__(self, schedule: Schedule, epochs: int):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule={schedule!r}: expected a gpucnn.lr_scheduler schedule")
        self.schedule, self.epochs = schedule, check_int("epochs", epochs, 0)
        self._t = 0  # epochs heard (step): the plateau starts listening after the warmup

    def get_lr(self, base_lr, t):
        if t < self.epochs:
            return base_lr * (t + 1) / (self.epochs + 1)
        return self.schedule.get_lr(base_lr, t - self.epochs)

    def step(self, metric):
        self._t += 1
        if self._t > self.epochs:
            self.schedule.step(metric)

    def state_dict(self):
        return {"t": self._t, "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state):
        self._t = int(state["t"])
        self.schedule.load_state_dict(state["schedule"])


def make_schedule(schedule: str = "constant", *, lr_decay: float = 1.0, step_size=None,
                  milestones=None, gamma: float = 0.1, min_lr: float = 0.0,
                  plateau_patience: int = 10, mode: str = "max", warmup_epochs: int = 0,
                  epochs: int | None = None) -> Schedule:
    """The schedule of ``gpucnn train``'s settings: ``constant`` (times ``lr_decay`` after each
    epoch), ``step`` (``step_size``, ``gamma``), ``multistep`` (``milestones``, ``gamma``),
    ``cosine`` (to ``min_lr`` over the ``epochs`` after the warmup) or ``plateau`` (``gamma``,
    ``plateau_patience``, ``min_lr``; ``mode`` "max" for an accuracy, "min" for a loss), after
    ``warmup_epochs`` of warmup."""
    if schedule == "constant":
        main = ExponentialLR(check_real("lr_decay", lr_decay, 0.0, 1.0, low_open=True,
                                        high_open=False))
    elif schedule == "step":
        main = StepLR(step_size, gamma)
    elif schedule == "multistep":
        main = MultiStepLR(milestones, gamma)
    elif schedule == "cosine":
        main = CosineAnnealingLR(max(check_int("epochs", epochs, 1) - warmup_epochs, 1), min_lr)
    elif schedule == "plateau":
        main = ReduceLROnPlateau(mode, gamma, plateau_patience, min_lr=min_lr)
    else:
        raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")
    return Warmup(main, warmup_epochs) if warmup_epochs else main
