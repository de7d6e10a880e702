"""Timers (wall clock on the CPU, device events on CUDA) and the steady-state method."""
from __future__ import annotations

import os
import time

import numpy as np


def make_timer(device: str, framework: str):
    """A function ``timer(fn) -> seconds`` for one call of ``fn`` on ``device``.

    CPU: wall clock around the call.  CUDA: device events recorded on the current stream around
    the call, then synchronised (cupy events for gpucnn, torch.cuda events for PyTorch).
    """
    if device == "cpu":
        def timer(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return timer
    if framework == "torch":
        import torch

        def timer(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return timer
    import cupy

    def timer(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1e3
    return timer


def summarize(times) -> dict:
    """Seconds -> {median, q1, q3, min, max, n} in milliseconds."""
    t = np.asarray(times, dtype=np.float64) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(t.min()), "max_ms": float(t.max()), "n": int(t.size)}


# --- steady state: rounds of consecutive steps, ratios per round, disturbed rounds flagged ----

def _cpu_ticks(pids=()) -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process's threads and of processes
    ``pids``) from /proc, or None where /proc is missing.  Their difference over a round is
    other processes' CPU use."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        ours = 0
        for pid in ("self", *pids):
            with open(f"/proc/{pid}/stat") as fh:
                own = fh.read().rsplit(")", 1)[1].split()
            ours += int(own[11]) + int(own[12])  # utime + stime
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, ours


def time_steady(fns: dict, timers: dict, rounds: int, steps: int, warmup: int,
                pause: float = 0.0, foreign_limit: float = 0.15) -> dict:
    """Steady-state timing: ``rounds`` rounds; in each, every framework in turn runs ``warmup``
    untimed calls, then ``steps`` consecutive timed ones, the frameworks' order alternating
    round by round.  Timing one call right after idle measures a cold first step (for the
    MNIST-sized net PyTorch took 8.4 ms then, 6.2-6.9 ms warm): consecutive calls after
    untimed ones measure throughput.

    A framework is a group of keys of ``fns`` (the part before "_": "gpucnn_fwd" and
    "gpucnn_bwd" are one turn).  -> :func:`steady_rounds`' result.
    """
    groups = {}
    for k in fns:
        groups.setdefault(k.split("_")[0], []).append(k)

    def turn(g):
        for _ in range(warmup):
            for k in groups[g]:
                fns[k]()
        times = {k: [] for k in groups[g]}
        for _ in range(steps):
            for k in groups[g]:
                times[k].append(timers[k](fns[k]))
        return times

    return steady_rounds(list(groups), turn, rounds, pause, foreign_limit)


def steady_rounds(order: list, turn, rounds: int, pause: float = 0.0,
                  foreign_limit: float = 0.15, pids=()) -> dict:
    """``rounds`` rounds of ``turn(group) -> {key: [seconds, ...]}`` for every group of
    ``order``, the order reversed every other round, each turn after a ``pause`` (idle worker
    threads of the framework before stop spinning).  A turn may run in another process
    (``pids``: processes whose CPU time is ours, not other processes').

    -> {key: summary of its timed calls in clean rounds} and, when a "gpucnn" and a "torch"
    group are both there, "ratio": the median over clean rounds of the per-round ratio of their
    median times (sums over a group's keys, e.g. forward + backward), with every round's ratio
    and whether it was disturbed: other processes used more than ``foreign_limit`` of a CPU
    during it (read from /proc; a shared 2-core VM varies 30% otherwise).  When every round is
    disturbed all count, and the result says so.
    """
    per_round = []
    for r in range(rounds):
        before, t0 = _cpu_ticks(pids), time.perf_counter()
        times = {}
        for g in (order if r % 2 == 0 else order[::-1]):
            time.sleep(pause)
            times.update(turn(g))
        after, wall = _cpu_ticks(pids), time.perf_counter() - t0
        foreign = None if before is None or after is None else \
            ((after[0] - before[0]) - (after[1] - before[1])) / os.sysconf("SC_CLK_TCK")
        per_round.append({"times": times, "foreign_cpu_s": foreign, "wall_s": wall,
                          "disturbed": foreign is not None and foreign > foreign_limit * wall})
    clean = [r for r in per_round if not r["disturbed"]] or per_round
    keys = list(per_round[0]["times"])
    out = {k: summarize([t for r in clean for t in r["times"][k]]) for k in keys}
    groups = {}
    for k in keys:
        groups.setdefault(k.split("_")[0], []).append(k)
    if {"gpucnn", "torch"} <= set(groups):
        ratios = [sum(np.median(r["times"][k]) for k in groups["gpucnn"])
                  / sum(np.median(r["times"][k]) for k in groups["torch"]) for r in per_round]
        kept = [q for q, r in zip(ratios, per_round) if not r["disturbed"]] or ratios
        out["ratio"] = {"median": float(np.median(kept)), "rounds": [float(q) for q in ratios],
                        "disturbed": [r["disturbed"] for r in per_round],
                        "all_disturbed": all(r["disturbed"] for r in per_round)}
    return out
