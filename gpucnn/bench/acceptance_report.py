"""What each part of the acceptance run produced (its JSON, or what its log and files say), the
targets of the GPU proof issue checked against it, and summary.md."""
from __future__ import annotations

import glob
import json
import os
import re
import xml.etree.ElementTree as ET


def read_part(run, name: str, rec: dict) -> dict:
    """The result of finished part ``name`` (``rec`` its record, ``run`` the acceptance Run):
    its JSON, or what its log and files say; {} for a part with nothing to read."""
    if name in ("versions", "train", "kernels"):
        path = run.path(f"{name}.json")
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)
    reader = {"pytest": lambda log: _junit(run.path("pytest-cuda.xml")), "check": _check,
              "placement": _placement, "reproduce_cuda": lambda log: _reproduce(run, rec, log),
              "reproduce_cpu": lambda log: _reproduce(run, rec, log)}.get(name)
    if reader is None:
        return {}
    with open(run.path(rec["log"]), errors="replace") as f:
        return reader(f.read())


def _check(log: str) -> dict:
    passed = re.search(r"(\d+) of (\d+) gradients pass", log)
    return {"gradients": passed.group(0) if passed else None,
            "failed_rows": [line.split()[0] for line in log.splitlines()
                            if line.rstrip().endswith("FAIL")]}


def _placement(log: str) -> dict:
    line = next((x.strip() for x in log.splitlines() if "took the same GPU" in x), None)
    return {"refused": line is not None, "line": line}


def _reproduce(run, rec: dict, log: str) -> dict:
    """Runs finished (their files), of how many, and the whole grid's wall time, measured or
    estimated from the share finished when the part was stopped."""
    device = rec["name"].split("_")[1]
    totals = re.findall(r"^\[\d+/(\d+)\]", log, re.M)
    done = len(glob.glob(run.path(f"reproduce-{device}", "runs", "*.json")))
    total = int(totals[-1]) if totals else None
    estimate = (rec["seconds"] if rec["status"] == "ok" else
                rec["seconds"] * total / done if done and total else None)
    return {"device": device, "runs_finished": done, "runs_total": total,
            "estimated_total_s": None if estimate is None else round(estimate, 1)}


def _junit(path: str) -> dict:
    if not os.path.exists(path):
        return {"error": "pytest wrote no report"}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    bad = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
           if case.find("failure") is not None or case.find("error") is not None]
    return {**counts, "not_passed": bad[:30]}


def _rows(summary: dict, part: str) -> dict:
    rec = next((p for p in summary["parts"] if p["name"] == part), {})
    return rec.get("result") or {}


def targets(summary: dict) -> list:
    """The GPU proof issue's targets, each met (True), not (False) or not measured (None)."""
    parts = {p["name"]: p for p in summary["parts"]}
    out = []

    def add(target, met, value):
        out.append({"target": target, "met": met, "value": value})

    tests = _rows(summary, "pytest")
    if "pytest" in parts:
        add("every cuda test passes with GPUCNN_REQUIRE_CUDA=1",
            parts["pytest"]["status"] == "ok" and tests.get("tests", 0) > 0,
            f"{tests.get('tests')} tests, {tests.get('failures')} failed, "
            f"{tests.get('errors')} errors")
    if "check" in parts:
        add("gpucnn check --device cuda agrees with the CPU", parts["check"]["status"] == "ok",
            _rows(summary, "check").get("gradients"))
    for row in _rows(summary, "train").get("rows", []):
        v = row.get("variants", {})
        for variant, limit in (("eager", 1.0), ("replay", 0.7)):
            if "vs_torch" in v.get(variant, {}):
                ratio = v[variant]["vs_torch"]
                add(f"{row['config']}: {variant} <= {limit}x PyTorch's time", ratio <= limit,
                    f"{ratio:.2f}x")
        mem = row.get("memory", {})
        if "torch_mb" in mem:
            add(f"{row['config']}: peak memory <= PyTorch's", mem["eager_mb"] <= mem["torch_mb"],
                f"{mem['eager_mb']:.0f} vs {mem['torch_mb']:.0f} MiB")
    times = {d: _reproduce_time(parts.get(f"reproduce_{d}", {})) for d in ("cuda", "cpu")}
    known = all(t is not None for t in times.values())
    add("gpucnn reproduce faster with --device cuda than --device cpu",
        times["cuda"][0] < times["cpu"][0] if known else None,
        " vs ".join(f"{d} {t[0]:.0f} s{' (estimated from the runs finished)' if t[1] else ''}"
                    for d, t in times.items()) if known else
        "not measured: " + ", ".join(f"{d} {parts.get(f'reproduce_{d}', {}).get('status', 'not run')}"
                                     for d in times))
    return out


def _reproduce_time(rec: dict):
    """(wall seconds of the whole grid, whether estimated from a stopped run's share), or None."""
    if rec.get("status") == "ok":
        return rec["seconds"], False
    estimate = (rec.get("result") or {}).get("estimated_total_s")
    return None if estimate is None else (estimate, True)


def _ms(s: dict) -> str:
    return f"{s['median_ms']:.3f} [{s['q1_ms']:.3f}-{s['q3_ms']:.3f}]" if "median_ms" in s else "-"


def markdown(summary: dict) -> str:
    lines = [f"# GPU acceptance run ({summary['mode']})", "",
             f"Started {summary.get('started')}; gpucnn {summary.get('gpucnn')} at commit "
             f"{summary.get('commit')}{' (with local changes)' if summary.get('dirty') else ''}"
             f"; Python {summary.get('python')}; {summary['elapsed_s']} s of a "
             f"{summary['budget_s']:.0f} s budget."]
    if summary["mode"] == "rehearse":
        lines += ["", "A rehearsal on a CPU with the stand-in CuPy (tests/fakecupy): the "
                      "timings time the NumPy/g++ emulation and mean nothing; what counts is "
                      "that every part ran."]
    ver = _rows(summary, "versions")
    lines += ["", "## Versions", "", "| what | value |", "|---|---|"]
    for key, value in [("nvidia-smi", ver.get("nvidia_smi")), ("host", ver.get("host")),
                       ("CPUs", ver.get("cpus")), ("native CPU kernels", ver.get("native_cpu_kernels")),
                       *[(f"cuda.{k}", v) for k, v in (ver.get("cuda") or {}).items()],
                       *[(f"torch.{k}", v) for k, v in (ver.get("torch") or {}).items()],
                       *[(f"mpi.{k}", v) for k, v in (ver.get("mpi") or {}).items()]]:
        if value not in (None, ""):
            lines.append(f"| {key} | {value} |")
    lines += ["", "## Parts", "", "| part | status | seconds | limit | note |", "|---|---|---|---|---|"]
    for p in summary["parts"]:
        note = p.get("reason") or (f"exit {p['returncode']}" if p.get("returncode") else "")
        lines.append(f"| {p['name']}: {p['title']} | {p['status']} | {p.get('seconds', '-')} | "
                     f"{p.get('limit_s', '-')} | {note} ({p['log']}) |")
    lines += ["", "## Targets (GPU proof issue)", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'-' if t['met'] is None else 'yes' if t['met'] else 'NO'} |"
              for t in summary["targets"]]
    lines += _train_md(_rows(summary, "train")) + _kernels_md(_rows(summary, "kernels"))
    lines += _failures_md(summary)
    return "\n".join(lines) + "\n"


def _train_md(train: dict) -> list:
    if not train:
        return []
    lines = ["", "## Training step (float32)", "", train.get("method", ""), ""]
    if train.get("torch"):
        lines += [f"PyTorch: {train['torch']}.", ""]
    lines += [f"- `{k}`: {v}" for k, v in train.get("variants", {}).items()]
    lines += ["", "| config | variant | ms median [q1-q3] | images/s | vs PyTorch |",
              "|---|---|---|---|---|"]
    for row in train.get("rows", []):
        if "error" in row:
            lines.append(f"| ? | error: {row['error']} | | | |")
            continue
        for k, s in row["variants"].items():
            ratio = f"{s['vs_torch']:.2f}x" if "vs_torch" in s else "-"
            lines.append(f"| {row['config']} | {k} | {_ms(s)} | {s['images_per_s']:.0f} | {ratio} |")
        mem = ", ".join(f"{k} {v:.0f} MiB" for k, v in row.get("memory", {}).items())
        notes = "; ".join(f"{k}: {v}" for k, v in row.get("notes", {}).items())
        lines.append(f"| {row['config']} | peak memory: {mem} | {notes} | | |")
    return lines


def _kernels_md(kernels: dict) -> list:
    if not kernels:
        return []
    lines = ["", f"## Convolution kernels at batch {kernels.get('conv_batch')}", "",
             "| net | kernel | ms median [q1-q3] |", "|---|---|---|"]
    for net, rows in kernels.get("conv", {}).items():
        if isinstance(rows, dict):
            lines.append(f"| ({net}) | error: {rows.get('error')} | |")
            continue
        lines += [f"| ({net}) | {r['kernel']} | {_ms(r)} |" for r in rows]
    lines += ["", "## Every product of a training step: gemm.cu against cuBLAS", "",
              "| config | product | m x k x n | cuBLAS ms (GFLOP/s) | gemm.cu ms (GFLOP/s) | "
              "gemm.cu / cuBLAS |", "|---|---|---|---|---|---|"]
    for config, rows in kernels.get("products", {}).items():
        if isinstance(rows, dict):
            lines.append(f"| {config} | error: {rows.get('error')} | | | | |")
            continue
        for r in rows:
            c, g = r["cublas"], r["gemm"]
            lines.append(f"| {config} | {r['product']} | {' x '.join(map(str, r['m_k_n']))} | "
                         f"{c['median_ms']:.3f} ({c['gflops']:.0f}) | {g['median_ms']:.3f} "
                         f"({g['gflops']:.0f}) | {r['gemm_vs_cublas']:.2f} |")
    return lines


def _failures_md(summary: dict) -> list:
    lines = []
    for p in summary["parts"]:
        result = p.get("result") or {}
        if p["status"] in ("failed", "timeout") or result.get("not_passed"):
            lines += ["", f"### {p['name']}: {p['status']}", ""]
            lines += [f"- {t}" for t in result.get("not_passed", [])]
            lines += [f"see {p['log']}"]
    return (["", "## What did not pass"] + lines) if lines else []
