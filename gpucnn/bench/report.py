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



def _suite_cell(res: dict | None, fw: str) -> str:
    return f"{res[fw]['median_ms']:9.2f}" if res and fw in res else "        -"


def _suite_ratio(res: dict | None) -> str:
    return _round_ratio({"ratio": res["ratio"]}) if res and "ratio" in res else "    -"


def suite_table(rows: list[dict]) -> list[str]:
    """Suite rows as text: ms (median) and gpucnn/PyTorch ratio, one process and two."""
    lines = [f"{'case':<26} {'role':<9} | {'gpucnn ms':>9} {'torch ms':>9} {'ratio':>6} (one process)"
             f" | {'gpucnn ms':>9} {'torch ms':>9} {'ratio':>6} (two processes)"]
    for r in rows:
        one, two = r["together"], r.get("apart")
        lines.append(f"{r['case']:<26} {r['role']:<9} | {_suite_cell(one, 'gpucnn')} "
                     f"{_suite_cell(one, 'torch')} {_suite_ratio(one)} | {_suite_cell(two, 'gpucnn')} "
                     f"{_suite_cell(two, 'torch')} {_suite_ratio(two)}")
    return lines


def suite_summary(rows: list[dict], target: float = 0.8) -> list[str]:
    """Per role: how many cases are at or under ``target`` both ways, and the worst ratio."""
    out = []
    for role in ("tuning", "held-out"):
        ratios = [max(r[k]["ratio"]["median"] for k in ("together", "apart") if "ratio" in r.get(k, {}))
                  for r in rows if r["role"] == role and "ratio" in r["together"]]
        if ratios:
            out.append(f"{role}: {sum(q <= target for q in ratios)} of {len(ratios)} cases at "
                       f"<= {target}x PyTorch's time both ways; worst {max(ratios):.2f}x")
    return out


def suite_markdown(result: dict) -> str:
    """The suite as a markdown document: machine and method, one row per case, the summary."""
    lines = ["# gpucnn bench suite", "", *(f"    {h}" for h in header(result)), "",
             "gpucnn / PyTorch time ratio (median of per-round ratios; < 1: gpucnn faster). "
             "*One process*: both frameworks loaded in one worker process; *two processes*: "
             "each in its own. Workers import NumPy before gpucnn.", "",
             "| net | role | batch | step | gpucnn ms | PyTorch ms | ratio, one process "
             "| ratio, two processes |", "|---|---|---|---|---|---|---|---|"]
    for r in result["suite"]:
        one, two = r["together"], r.get("apart")
        lines.append(f"| {r['net']} | {r['role']} | {r['batch']} | {r['mode']} | "
                     f"{_suite_cell(two or one, 'gpucnn').strip()} | {_suite_cell(two or one, 'torch').strip()} | "
                     f"{_suite_ratio(one).strip()} | {_suite_ratio(two).strip()} |")
    lines += ["", "ms: medians of the timed steps in the two-process runs. Nets:", ""]
    seen = {}
    for r in result["suite"]:
        seen.setdefault(r["net"], f"- **{r['net']}** ({r['role']}, {'x'.join(map(str, r['input']))}): {r['what']}")
    return "\n".join(lines + list(seen.values()) + [""] + suite_summary(result["suite"])) + "\n"


# Section titles, printed before each section's rows as they come.
TRAIN_TITLE = "Full training step (forward, loss, backward, SGD update)"
OPS_TITLE = "Ops (conv backward without dx is what the first layer runs)"
SWEEP_TITLE = "Scaling sweep, network (a)"
SUITE_TITLE = ("Suite: nets of the families of docs/benchmarks.md, training steps and inference "
               "passes, both frameworks in one process and in two")


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
            f"(/proc/stat) left out; < 1: gpucnn faster or smaller"] + \
        ([f"shared machine: {result['busy']} busy process(es) spinning beside every measurement "
          f"(--busy), so every round counts as disturbed"] if result.get("busy") else [])


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
    if result.get("suite"):
        out += ["", SUITE_TITLE] + suite_table(result["suite"]) + suite_summary(result["suite"])
    return "\n".join(out)
