"""The settings that mean something only together, checked in one place for the command line,
TOML files and the Trainer alike: a schedule's options without that schedule, a schedule
without its options, ``crop_pad`` without the crop, an optimizer option another optimizer has
not.  Each refusal is one line naming the settings as the user wrote them (flags, or keywords).
"""
from __future__ import annotations

from .settings import OPTIMIZATION, TRAINING

# setting -> (the setting it belongs to, the values of that setting it means something with)
BELONGS = {
    "step_size": ("schedule", ("step",)),
    "milestones": ("schedule", ("multistep",)),
    "gamma": ("schedule", ("step", "multistep", "plateau")),
    "min_lr": ("schedule", ("cosine", "plateau")),
    "plateau_patience": ("schedule", ("plateau",)),
    "lr_decay": ("schedule", ("constant",)),
    "momentum": ("optimizer", ("sgd", "momentum", "nesterov")),
    "weight_decay": ("optimizer", ("adamw",)),
}
# schedule -> the settings it cannot do without
NEEDS = {"step": ("step_size",), "multistep": ("milestones",)}


def check_together(values: dict, spell=None) -> None:
    """Refuse the combinations above.  ``values``: the settings (training and optimization
    together, e.g. ``{**settings, **optim_config}``; one left at its default is never refused);
    ``spell(name)``: how to write a setting in the message (default: its name, as a keyword;
    the command line passes its flag)."""
    spell = spell or (lambda name: name)
    defaults = {**OPTIMIZATION.defaults(), **TRAINING.defaults()}
    for name, (owner, fits) in BELONGS.items():
        if values.get(name, defaults[name]) != defaults[name] and values.get(owner) not in fits:
            raise ValueError(f"{spell(name)}={values[name]}: only with {spell(owner)} "
                             f"{' or '.join(fits)}, not {values.get(owner)}")
    for name in NEEDS.get(values.get("schedule"), ()):
        if values.get(name) is None:
            raise ValueError(f"{spell('schedule')}={values['schedule']}: needs {spell(name)}")
    if values.get("crop_pad", defaults["crop_pad"]) != defaults["crop_pad"] and \
            "crop" not in (values.get("augment") or ()):
        raise ValueError(f"{spell('crop_pad')}={values['crop_pad']}: only with crop in "
                         f"{spell('augment')}")
