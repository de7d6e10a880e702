"""The learning rate a run follows, epoch by epoch: a schedule of :mod:`gpucnn.lr_scheduler`
built from the run's settings and started after ``start`` epochs from the rate ``base_lr``.

A resumed run with the same settings continues the saved schedule (its state is in the
checkpoint); one given another learning rate or schedule starts the new one where it resumes,
from the new rate (or the rate it had reached), and says so in the history.
"""
from __future__ import annotations

from ..config import TRAINING
from ..config.rules import BELONGS
from ..lr_scheduler import make_schedule

# The Trainer settings that make the schedule (with optim_config's lr_decay).
SCHEDULE_KEYS = ("schedule", "step_size", "milestones", "gamma", "min_lr", "plateau_patience",
                 "warmup_epochs")


def schedule_settings(settings: dict, optim_config: dict) -> dict:
    """The settings the schedule is made of: :data:`SCHEDULE_KEYS` and lr_decay."""
    return {**{k: settings[k] for k in SCHEDULE_KEYS},
            "lr_decay": optim_config.get("lr_decay", 1.0)}


class RunSchedule:
    """``lr(epoch)``: the rate of the epoch after ``epoch`` completed ones; ``observe(metric)``
    after each epoch (a plateau cuts on it); ``state()`` for the checkpoint."""

    def __init__(self, settings: dict, monitor: str, base_lr: float, start: int, epochs: int):
        self.settings, self.monitor = dict(settings), monitor
        self.base_lr, self.start, self.epochs = float(base_lr), int(start), int(epochs)
        self.schedule = make_schedule(**self.settings,
                                      mode="max" if monitor == "val_acc" else "min",
                                      epochs=max(epochs - start, 1))

    def lr(self, epoch: int) -> float:
        return self.schedule.get_lr(self.base_lr, epoch - self.start)

    def observe(self, metric: float) -> None:
        self.schedule.step(metric)

    def state(self) -> dict:
        """JSON-able; :meth:`from_state` rebuilds it."""
        return {"settings": self.settings, "base_lr": self.base_lr, "start": self.start,
                "epochs": self.epochs, "schedule": self.schedule.state_dict()}

    @classmethod
    def from_state(cls, state: dict, monitor: str) -> "RunSchedule":
        plan = cls(state["settings"], monitor, state["base_lr"], state["start"], state["epochs"])
        plan.schedule.load_state_dict(state["schedule"])
        return plan

    def describe(self) -> str:
        """E.g. ``step (step_size=10, gamma=0.5, warmup_epochs=2)``: the options that count."""
        s = self.settings
        shown = [f"{k}={v}" for k, v in s.items()
                 if k in BELONGS and s["schedule"] in BELONGS[k][1] and v is not None
                 and not (k == "lr_decay" and v == 1.0)]
        shown += [f"warmup_epochs={s['warmup_epochs']}"] * bool(s["warmup_epochs"])
        return s["schedule"] + (f" ({', '.join(shown)})" if shown else "")


def resumed_schedule(state: dict | None, saved: dict, settings: dict, monitor: str, lr: float,
                     optimizer, epoch: int, epochs: int) -> tuple[RunSchedule, str]:
    """``(schedule, note)`` of a run resumed after ``epoch`` epochs: the checkpoint's (``state``,
    or for a checkpoint from before schedules, ``lr_decay`` from its ``lr``) when ``settings``
    and ``lr`` are the checkpoint's (``saved`` config), else a new one from here, from ``lr``
    if it changed or from the rate ``optimizer`` has reached, whose ``lr`` it then sets; the
    note says what changed ("" when nothing did)."""
    older = {**TRAINING.defaults(), **saved}  # the settings a checkpoint from before them ran
    old = (RunSchedule.from_state(state, monitor) if state else
           RunSchedule(schedule_settings(older, saved["optim_config"]), monitor,
                       saved["optim_config"]["lr"], 0, saved["epochs"]))
    new_lr = lr != saved["optim_config"]["lr"]
    if settings == old.settings and not new_lr:
        return old, ""
    was, now = optimizer.lr, lr if new_lr else optimizer.lr
    plan = RunSchedule(settings, monitor, now, epoch, epochs)
    optimizer.lr = plan.lr(epoch)
    changed = ([f"lr {was:g} -> {now:g}"] * new_lr
               + [f"schedule {old.describe()} -> {plan.describe()}"] * (settings != old.settings))
    return plan, "resumed with " + "; ".join(changed)
