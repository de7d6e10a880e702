"""What a resumed run must share with its checkpoint, and what it may change.

The settings that shape the history (``resume=True`` in :data:`gpucnn.config.TRAINING`, the
optimizer's settings, the split sizes) must equal the checkpoint's; ``epochs``, the device and
the learning-rate schedule (the rate itself, ``lr_decay`` and the settings of
:data:`gpucnn.train.schedule.SCHEDULE_KEYS`) may change, and a change is noted in the history.
"""
from __future__ import annotations

from .. import config
from ..data.augment import AUGMENTATIONS, describe
from .checks import recorded_diff
from .schedule import SCHEDULE_KEYS

# History-shaping settings added after checkpoints were first written: an older checkpoint
# lacks them, and ran as their defaults do.
ADDED_LATER = ("monitor", "augment", "crop_pad", "label_smoothing", "clip_grad_norm")
# optim_config entries a resumed run may change: the schedule's.
CHANGEABLE = ("lr", "lr_decay")
RESUME_KEYS = (*(s.name for s in config.TRAINING if s.resume), "optim_config", "num_train",
               "num_val")


def stored(settings: dict) -> dict:
    """``settings`` as checkpoints hold them: augmentation functions by name."""
    return {**settings, "augment": describe(settings["augment"])}


def saved_settings(saved: dict, path: str, overrides: dict) -> dict:
    """The Trainer keywords a checkpoint's ``config`` recorded (settings added since take
    their defaults, unless they shape the history and came with the first checkpoints),
    replaced by ``overrides``; a new ``schedule`` there comes with its own options (those not
    given take their defaults, and lr_decay 1 unless ``optim_config`` or ``lr_decay`` is
    given).  Optimizer settings among ``overrides`` (``lr=``) replace those of the saved
    ``optim_config``."""
    defaults = config.TRAINING.defaults()
    overrides = dict(overrides)
    rate = {k: overrides.pop(k) for k in config.OPTIMIZATION.names() if k in overrides}
    try:
        names = [k for k in config.TRAINING.names()
                 if k in saved or (config.TRAINING[k].resume and k not in ADDED_LATER)]
        settings = {k: saved[k] for k in names}
        settings.update({k: saved.get(k, defaults[k]) for k in ADDED_LATER})
        settings.update({k: saved[k] for k in ("optim_config", "run_info")})
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: cannot resume from this checkpoint: missing setting "
                         f"{e}") from None
    functions = [a for a in settings["augment"] if a not in AUGMENTATIONS]
    if functions and "augment" not in overrides:
        raise ValueError(f"{path}: the run augmented its batches with {', '.join(functions)}: "
                         f"pass it again, Trainer.from_checkpoint(path, model, data, "
                         f"augment=[...])")
    settings["init_weights"] = None  # the checkpoint's parameters replace any start
    if "schedule" in overrides:  # a new schedule: its options are those given with it
        settings.update({k: defaults[k] for k in SCHEDULE_KEYS})
        settings["optim_config"] = {**settings["optim_config"], "lr_decay": 1.0}
    settings = {**settings, **overrides}
    settings["optim_config"] = {**settings["optim_config"], **rate}
    return settings


def check_resumable(saved: dict, mine: dict, saved_world: int, world: int) -> None:
    """Refuse to resume a checkpoint of settings ``saved`` (written by ``saved_world`` ranks)
    into a run of settings ``mine`` (``world`` ranks) that would not continue its history: a
    ValueError listing what differs."""
    diff = differences(saved, mine) + recorded_diff(saved, mine, "data_checksum")
    if diff:
        raise ValueError("settings differ: " + "; ".join(diff))
    if saved_world != world:
        raise ValueError(f"the checkpoint was written by {saved_world} ranks, this run has "
                         f"{world}: expected the same world size")


def differences(saved: dict, mine: dict) -> list[str]:
    """What differs in the settings a resume must keep: ``["name=saved in the checkpoint,
    mine here", ...]`` (``saved`` and ``mine`` as the checkpoints store them)."""
    defaults = config.TRAINING.defaults()
    diff = []
    for k in RESUME_KEYS:
        theirs = saved.get(k, stored(defaults)[k] if k in ADDED_LATER else None)
        ours = mine[k]
        if k == "optim_config":
            theirs, ours = _without(theirs or {}, CHANGEABLE), _without(ours, CHANGEABLE)
        if theirs != ours:
            diff.append(f"{k}={theirs!r} in the checkpoint, {ours!r} here")
    return diff


def _without(d: dict, keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}
