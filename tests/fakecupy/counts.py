"""What one training step costs on a GPU, counted on the stand-in (for tests, and for a later
``gpucnn bench`` report next to its timings)."""
from __future__ import annotations

from ._count import Counter, counting


def step_counts(model, X, y, optimizer) -> Counter:
    """Count one training step as gpucnn.bench times it: ``model.loss(X, y)`` (forward, softmax
    cross-entropy plus L2, backward) then ``optimizer.step(grads)``.  ``model``, ``X`` and ``y``
    must already live on the stand-in device; kernel compilation is not counted (it happens once
    per process)."""
    with counting() as c:
        loss, grads = model.loss(X, y)
        optimizer.step(grads)
    del loss, grads
    return c
