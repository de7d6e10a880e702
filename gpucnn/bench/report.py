"""The benchmark results as text tables."""
from __future__ import annotations

from .counts import counts_line


def _ms(s: dict) -> str:
    return f"{s['median_ms']:9.3f} [{s['q1_ms']:.3f}-{s['q3_ms']:.3f}]"



def _ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "    -"


def _round_ratio(r: dict) -> str:
    """The median per-round gpucnn/PyTorch ratio, with the rounds left out as disturbed."""
    q = r["ratio"]
    bad = sum(q["disturbed"])
    note = (f" (all {bad} rounds disturbed)" if q["all_disturbed"]
            else f" ({bad}/{len(q['rounds'])} disturbed)" if bad else "")
    return f"{q['median']:5.2f}x{note}"



def train_table(rows: list[dict]) -> list[str]:
    """Training-step rows as text: median [IQR] ms, images/s, peak MiB, gpucnn/torch ratios."""
    lines = [f"{'config':<18} {'gpucnn ms [IQR]':>26} {'img/s':>8} {'peak MiB':>9} | "
             f"{'torch ms [IQR]':>26} {'img/s':>8} {'peak MiB':>9} | {'mem':>6} {'time':>6}"]
    for r in rows:
        g, t = r["gpucnn"], r.get("torch")
        line = f"{r['config']:<18} {_ms(g):>26} {g['images_per_s']:8.0f} {g.get('peak_mb', float('nan')):9.1f} | "
        counted = [f"  one gpucnn step: {counts_line(g['counts'])}"] if "counts" in g else []
        if t is None:
            lines += [line + "(PyTorch not run)"] + counted
            continue
        mem = _ratio(g["peak_mb"], t["peak_mb"]) if "peak_mb" in g else "    -"
        lines.append(line + f"{_ms(t):>26} {t['images_per_s']:8.0f} {t.get('peak_mb', float('nan')):9.1f} | "
                     f"{mem:>6} {_round_ratio(r)}")
        lines += counted
    return lines



def ops_table(rows: list[dict]) -> list[str]:
    lines = [f"{'config':<18} {'op':<15} {'gpucnn fwd ms':>24} {'gpucnn bwd ms':>24} | "
             f"{'torch fwd ms':>24} {'torch bwd ms':>24} | {'fwd+bwd':>7}"]
    for r in rows:
        line = f"{r['config']:<18} {r['op']:<15} {_ms(r['gpucnn_fwd']):>24} {_ms(r['gpucnn_bwd']):>24} | "
        if "torch_fwd" in r:
            line += f"{_ms(r['torch_fwd']):>24} {_ms(r['torch_bwd']):>24} | {_round_ratio(r)}"
        lines.append(line)
    return lines



def fits_lines(fits: dict) -> list[str]:
    lines = []
    for axis, f in fits.items():
        local = ", ".join(f"{e:.2f}" for e in f["time"]["local"])
        lines.append(f"time ~ {axis}^{f['time']['exponent']:.2f}  (local exponents: {local})")
        if "peak_memory_above_base" in f:
            m = f["peak_memory_above_base"]
            local = ", ".join(f"{e:.2f}" for e in m["local"])
            lines.append(f"peak memory above base ~ {axis}^{m['exponent']:.2f}  (local: {local})")
    return lines



# Section titles, printed before each section's rows as they come.
TRAIN_TITLE = "Full training step (forward, loss, backward, SGD update)"
OPS_TITLE = "Ops (conv backward without dx is what the first layer runs)"
SWEEP_TITLE = "Scaling sweep, network (a)"


def header(result: dict) -> list[str]:
    """The machine and the timing method: what every table below was measured under."""
    m = result["machine"]
    blas = m["blas"]
    return [f"gpucnn bench  {m['date']}  device={m['device']}  dtype={result['dtype']}",
            f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {m['platform']}",
            f"numpy {m['numpy']}, BLAS {blas.get('name')} {blas.get('version')} kernels="
            f"{blas.get('corename', '?')} threads={blas.get('threads', '?')}; torch {m['torch'] or 'not installed'}"
            + (f" threads={m['torch_threads']}" if m.get("torch_threads") else ""),
            f"timings, steady state: {result['reps']} rounds; in each, gpucnn and PyTorch take "
            f"turns (order alternating), each turn {result['warmup']} untimed then "
            f"{result['steps']} consecutive timed steps after a {result['pause_s']} s pause; ms "
            f"are medians [interquartile range] of the timed steps; time ratios are the median of "
            f"per-round gpucnn / PyTorch ratios, rounds in which other processes used the CPU "
            f"(/proc/stat) left out; < 1: gpucnn faster or smaller"]


def naive_line(n: dict) -> str:
    return (f"Naive loop conv forward {tuple(n['shape'])}, w (32, 3, 7, 7): "
            f"{n['naive']['median_ms']:.1f} ms vs gpucnn {n['gpucnn']['median_ms']:.3f} ms: "
            f"{n['ratio']:.0f}x slower")


def report(result: dict) -> str:
    """The whole report at once (what ``gpucnn bench`` prints piece by piece as it measures)."""
    out = header(result)
    if result.get("train"):
        out += ["", TRAIN_TITLE] + train_table(result["train"])
    if result.get("ops"):
        out += ["", OPS_TITLE] + ops_table(result["ops"])
    if result.get("naive"):
        out += ["", naive_line(result["naive"])]
    if result.get("sweep"):
        out += ["", SWEEP_TITLE] + train_table(result["sweep"]["rows"])
        out += fits_lines(result["sweep"]["fits"])
    return "\n".join(out)
