"""The measuring side of ``gpucnn bench --parts suite``: a process that builds one case's steps
for one or both frameworks and times turns of them when :mod:`.suite_run` asks.

Started as ``python -c "import numpy; ...main()" SPEC`` (:data:`WORKER_MAIN`), so NumPy is
loaded before gpucnn, as in most users' scripts; a worker for gpucnn alone never imports
PyTorch, one for PyTorch alone runs no gpucnn step.  Protocol, one JSON object a line: the
worker says ``{"ready": pid}``; then each ``{"run": framework, "warmup": w, "steps": s}``
gets ``{"times": [seconds, ...]}`` (w untimed steps, then s timed consecutive ones, wall
clock); end of input ends it.  A failure replies ``{"error": message}`` and exits.
"""
from __future__ import annotations

import json
import sys
import time

WORKER_MAIN = "import numpy\nfrom gpucnn.bench.suite_worker import main\nmain()"


def build_steps(case_name: str, frameworks, dtype: str, threads: int) -> dict:
    """{framework: step()} for the suite case named ``case_name``: a training step (loss,
    backward, SGD with L2 / weight decay on weights) or an inference pass, both frameworks
    from the same initial weights (seed 0) and the same data."""
    import numpy as np

    from ..models import build_model
    from ..optim import SGD
    from .nets import LR, REG
    from .suite_nets import CASES
    from .torch_twins import import_torch, torch_infer_step, torch_train_step, torch_twin

    case = {c.name: c for c in CASES}[case_name]
    model = build_model(list(case.net.layers), case.net.input_dim, reg=REG, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((case.batch,) + case.net.input_dim).astype(dtype)
    y = rng.integers(0, 10, case.batch)
    train = case.mode == "train"
    steps = {}
    if "torch" in frameworks:
        if import_torch("cpu", threads) is None:
            raise RuntimeError("PyTorch is not installed")
        net = torch_twin(model.net)  # before gpucnn's first update: the same weights
        steps["torch"] = torch_train_step(net, X, y) if train else torch_infer_step(net, X)
    if "gpucnn" in frameworks:
        if train:
            opt = SGD(model.parameters(), lr=LR)
            steps["gpucnn"] = lambda: model.train_step(X, y, opt)
        else:
            steps["gpucnn"] = lambda: model.loss(X)
    return steps


def _reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    import os

    try:
        spec = json.loads(sys.argv[1])
        steps = build_steps(spec["case"], spec["frameworks"], spec["dtype"], spec["threads"])
    except Exception as e:  # reported by the parent as one line
        _reply({"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    _reply({"ready": os.getpid()})
    for line in sys.stdin:
        msg = json.loads(line)
        fn = steps[msg["run"]]
        for _ in range(msg["warmup"]):
            fn()
        times = []
        for _ in range(msg["steps"]):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        _reply({"times": times})
