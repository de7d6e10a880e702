"""What one CUDA training step costs in kernel launches, device allocations, uploads and
device-to-host syncs, by phase: the costs a timing on a fast GPU hides in host overhead.

Counting needs a ``cupy`` module with counting hooks, ``counting()`` and ``phase(name)``: the
NumPy-backed stand-in in tests/fakecupy has them (it runs the real CUDA host code and kernels
through their g++ emulation), real CuPy has not, so ``gpucnn bench`` on a GPU reports no counts.
The count test (tests/test_cuda_path_fake.py) pins them; docs/benchmarks.md records them.
"""
from __future__ import annotations

PHASES = ("forward", "loss", "backward", "update")
KINDS = ("launches", "allocations", "uploads", "syncs")


def can_count(hooks) -> bool:
    """Whether module ``hooks`` (the cupy in use) can count: real CuPy cannot."""
    return callable(getattr(hooks, "counting", None)) and callable(getattr(hooks, "phase", None))


def _in_phase(hooks, name, fn):
    def wrapped(*args, **kwargs):
        with hooks.phase(name):
            return fn(*args, **kwargs)

    return wrapped


def step_counts(hooks, model, step):
    """Count ``step()`` with the counting hooks of module ``hooks``: one training step of ``model`` (``model.loss(X, y)`` then the
    optimizer's update), as a counter whose ``phases`` split it into ``forward``
    (``model.net.forward``), ``loss`` (the rest of ``model.loss``: labels, softmax cross-entropy,
    L2), ``backward`` (``model.net.backward``) and ``update`` (everything else in ``step``).
    Kernel compilation is counted too: run one step before counting.
    """
    net = model.net
    net.forward = _in_phase(hooks, "forward", net.forward)
    net.backward = _in_phase(hooks, "backward", net.backward)
    model.loss = _in_phase(hooks, "loss", model.loss)
    try:
        with hooks.counting() as c, hooks.phase("update"):
            step()
    finally:
        del net.forward, net.backward, model.loss  # the classes' methods again
    return c


def phase_table(counter) -> dict:
    """{phase: {kind: n}} with every phase and kind present, as plain ints (JSON-able)."""
    return {p: {k: int(counter.phases.get(p, {}).get(k, 0)) for k in KINDS} for p in PHASES}


def counts_line(table: dict) -> str:
    """``launches 40 (forward 9, loss 20, ...), allocations ...`` for a report."""
    return ", ".join(f"{k} {sum(t[k] for t in table.values())} ("
                     + ", ".join(f"{p} {t[k]}" for p, t in table.items()) + ")" for k in KINDS)
