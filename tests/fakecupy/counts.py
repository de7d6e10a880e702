"""What one training step costs on a GPU, counted on the stand-in (for tests, and for a later
``gpucnn bench`` report next to its timings)."""
from __future__ import annotations

from ._count import Counter, counting, phase

PHASES = ("forward", "loss", "backward", "update")


def _in_phase(name, fn):
    def wrapped(*args, **kwargs):
        with phase(name):
            return fn(*args, **kwargs)

    return wrapped


def step_counts(model, X, y, optimizer) -> Counter:
    """Count one training step as gpucnn.bench times it: ``model.loss(X, y)`` then
    ``optimizer.step(grads)``; ``model``, ``X`` and ``y`` already live on the stand-in device.

    ``Counter.phases`` splits it into ``forward`` (``model.net.forward``), ``loss`` (the rest of
    ``model.loss``: labels, softmax cross-entropy, L2), ``backward`` (``model.net.backward``)
    and ``update``.  Kernel compilation is not counted (it happens once per process).
    """
    net = model.net
    net.forward, net.backward = _in_phase("forward", net.forward), _in_phase("backward", net.backward)
    try:
        with counting() as c:
            with phase("loss"):
                loss, grads = model.loss(X, y)
            with phase("update"):
                optimizer.step(grads)
    finally:
        del net.forward, net.backward  # the class's methods again
    del loss, grads
    return c
