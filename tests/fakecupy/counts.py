"""What one training step costs on a GPU, counted on the stand-in (gpucnn.bench.counts does the
counting against any cupy module with these hooks)."""
from __future__ import annotations

import sys

from gpucnn.bench.counts import PHASES, step_counts as _step_counts  # noqa: F401

from ._count import Counter


def step_counts(model, X, y, optimizer) -> Counter:
    """Count one training step as gpucnn.bench times it and the Trainer takes it:
    ``model.loss(X, y, l2_in_grads=False)`` then ``optimizer.step(grads, weight_decay=...)``
    (L2's gradient folded into the update); ``model``, ``X`` and ``y`` already live on the
    stand-in device.  See :func:`gpucnn.bench.counts.step_counts` for the phases."""
    def step():
        grads = model.loss(X, y, l2_in_grads=False)[1]
        optimizer.step(grads, weight_decay=model.weight_decay())

    return _step_counts(sys.modules[__package__], model, step)
