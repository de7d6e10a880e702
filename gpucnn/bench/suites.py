"""The benchmark parts: training steps, per-op timings, a naive loop conv, the scaling sweep."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..device import xp_for
from . import counts
from .memory import cpu_peak_memory, cuda_peak_memory
from .nets import NETS, Config, gpucnn_ops, gpucnn_step
from .timing import make_timer, time_steady
from .torch_twins import torch_ops, torch_step

PARTS = ("train", "ops", "naive", "sweep")


def bench_ops(cfg: Config, dtype, device: str, torch_mod, reps: int, steps: int, warmup: int,
              pause: float) -> list[dict]:
    """One row per op: gpucnn (and PyTorch) forward and backward summaries, steady state
    (:func:`time_steady`: ``reps`` rounds of ``steps`` timed calls after ``warmup``)."""
    ours = gpucnn_ops(cfg, dtype, device)
    theirs = torch_ops(cfg, dtype, device) if torch_mod is not None else {}
    rows = []
    for name, (fwd, bwd) in ours.items():
        fns = {"gpucnn_fwd": fwd, "gpucnn_bwd": bwd}
        if name in theirs:
            fns.update(torch_fwd=theirs[name][0], torch_bwd=theirs[name][1])
        timers = {k: make_timer(device, k.split("_")[0]) for k in fns}
        res = time_steady(fns, timers, reps, steps, warmup, pause)
        rows.append({"config": cfg.name, "op": name, **res})
    return rows



def bench_train(cfg: Config, dtype, device: str, torch_mod, reps: int, steps: int, warmup: int,
                memory: bool, pause: float) -> dict:
    """Full training step of ``cfg``: steady-state time summaries and the per-round
    gpucnn/PyTorch ratio (:func:`time_steady`), images/s and peak memory per framework."""
    step, model = gpucnn_step(cfg, dtype, device)
    fns = {"gpucnn": step}
    if torch_mod is not None:
        fns["torch"] = torch_step(cfg, dtype, device, model)
    timers = {k: make_timer(device, k) for k in fns}
    row = {"config": cfg.name, "net": cfg.net, "batch": cfg.batch, "size": cfg.spec.size,
           **time_steady(fns, timers, reps, steps, warmup, pause)}
    xp = xp_for(device)
    if device == "cuda" and counts.can_count(xp):  # the stand-in cupy: see .counts
        row["gpucnn"]["counts"] = counts.phase_table(counts.step_counts(xp, model, step))
    for k in fns:
        row[k]["images_per_s"] = cfg.batch / (row[k]["median_ms"] / 1e3)
        if memory:
            row[k].update(cpu_peak_memory(k, cfg, dtype) if device == "cpu"
                          else cuda_peak_memory(k, fns[k]))
    return row



def naive_conv(x, w, b, pad: int):
    """Textbook convolution: one dot product per output element, in Python loops.

    x (N, C, H, W), w (F, C, K, K), b (F,) -> out (N, F, OH, OW), stride 1.
    """
    N, _, H, W = x.shape
    Fn, _, K, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = H + 2 * pad - K + 1, W + 2 * pad - K + 1
    out = np.empty((N, Fn, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(Fn):
            for i in range(OH):
                for j in range(OW):
                    out[n, f, i, j] = np.sum(xp[n, :, i:i + K, j:j + K] * w[f]) + b[f]
    return out



def bench_naive(batch: int, size: int, dtype, device: str, reps: int) -> dict:
    """Naive loop conv (host) vs gpucnn's conv forward on (a)'s conv layer at a small size."""
    spec = NETS["a"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, spec.channels, size, size)).astype(dtype)
    w = rng.standard_normal((spec.filters, spec.channels, spec.ksize, spec.ksize)).astype(dtype)
    b = rng.standard_normal(spec.filters).astype(dtype)
    xp = xp_for(device)
    xd, wd, bd = xp.asarray(x), xp.asarray(w), xp.asarray(b)
    fns = {"naive": lambda: naive_conv(x, w, b, spec.pad),
           "gpucnn": lambda: F.conv2d_forward(xd, wd, bd, 1, spec.pad)}
    timers = {"naive": make_timer("cpu", "naive"), "gpucnn": make_timer(device, "gpucnn")}
    res = time_steady(fns, timers, 1, min(reps, 3), 1)  # seconds per naive call: few of them
    return {"shape": [batch, spec.channels, size, size], **res,
            "ratio": res["naive"]["median_ms"] / res["gpucnn"]["median_ms"]}



def sweep_configs(batches, sizes, size_batch: int) -> list[Config]:
    """(a)'s layers at each batch on 32x32 images, then at each image size at ``size_batch``."""
    a = NETS["a"]
    return ([Config("a", n, a) for n in batches]
            + [Config("a", size_batch, a.with_size(s)) for s in sizes if s != a.size or size_batch not in batches])



def loglog_exponents(xs, ts) -> dict:
    """Least-squares slope of log t on log x over all points, and the local slope between
    neighbours (1 = linear; < 1 = overheads amortised; > 1 = cache or memory effects)."""
    lx, lt = np.log(np.asarray(xs, float)), np.log(np.asarray(ts, float))
    fit = float(np.polyfit(lx, lt, 1)[0]) if len(xs) >= 2 else float("nan")
    local = [float((lt[i + 1] - lt[i]) / (lx[i + 1] - lx[i])) for i in range(len(xs) - 1)]
    return {"exponent": fit, "local": local}



def bench_sweep(batches, sizes, size_batch: int, dtype, device, torch_mod, reps, steps, warmup,
                memory, pause) -> dict:
    """Training-step rows for every sweep config, plus log-log exponents of gpucnn's time (and
    of its peak memory above the process's baseline) against batch and against pixels."""
    configs = sweep_configs(batches, sizes, size_batch)
    rows = [bench_train(c, dtype, device, torch_mod, reps, steps, warmup, memory, pause)
            for c in configs]
    fits = {}
    for axis, key, pick in (("batch", "batch", lambda r: r["size"] == NETS["a"].size),
                            ("pixels", "size", lambda r: r["batch"] == size_batch)):
        sel = sorted((r for r in rows if pick(r)), key=lambda r: r[key])
        if len(sel) < 2:
            continue
        xs = [r[key] if axis == "batch" else r[key] ** 2 for r in sel]
        fits[axis] = {"x": xs, "time": loglog_exponents(xs, [r["gpucnn"]["median_ms"] for r in sel])}
        if memory and device == "cpu":
            work = [max(r["gpucnn"]["peak_mb"] - r["gpucnn"]["base_mb"], 1e-3) for r in sel]
            fits[axis]["peak_memory_above_base"] = loglog_exponents(xs, work)
    return {"rows": rows, "fits": fits}
