"""Settings: one declared schema per concept, one name and one default per setting.

A :class:`Setting` is named once: its ``name`` is the Python keyword, the TOML key, the key in
checkpoints and results, and, with ``-`` for ``_``, the flag (``batch_size`` /
``--batch-size``); its value is checked in one place however it arrives.  :mod:`.schema` holds
the machinery, :mod:`.values` how the list-like kinds are checked, :mod:`.settings` the schemas
(:data:`TRAINING`, :data:`OPTIMIZATION`, :data:`MODEL`, :data:`DATA`, :data:`RUN`,
:data:`EVALUATION`, :data:`EXPERIMENT`) and :mod:`.rules` the settings that only mean something
together.  Commands combine schemas with :func:`combine` and get their flags from
:meth:`Schema.add_flags`.
"""
from .rules import check_together
from .schema import KINDS, Schema, Setting, combine
from .settings import (DATA, EVALUATION, EXPERIMENT, MODEL, OPTIMIZATION, RUN, TRAINING,
                       optim_config, three_layer_kwargs)

__all__ = ["DATA", "EVALUATION", "EXPERIMENT", "KINDS", "MODEL", "OPTIMIZATION", "RUN",
           "Schema", "Setting", "TRAINING", "check_together", "combine", "optim_config",
           "three_layer_kwargs"]
