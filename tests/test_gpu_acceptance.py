"""scripts/gpu_acceptance.py: the rehearsal (the whole sequence on the stand-in CuPy, on a CPU)
passes every part and writes its summary; a part that hangs or crashes is stopped and reported
and the run goes on; what the summary's targets say from the parts' results."""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpucnn.bench import acceptance
from gpucnn.bench.acceptance_report import targets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_acceptance.py"


@pytest.mark.slow
def test_the_rehearsal_runs_every_part_and_writes_its_summary(tmp_path):
    """Under a minute on a 2-core CI machine: versions, a subset of the GPU suite, gpucnn check,
    training steps (eager, gemm.cu, graph replay, PyTorch on the CPU), conv kernels and
    products, two ranks refused on one GPU, reproduce on both devices."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--rehearse", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=400)
    summary = json.loads((out / "summary.json").read_text())
    parts = {p["name"]: p for p in summary["parts"]}
    assert [p.name for p in acceptance.PARTS] == list(parts)
    want = {**dict.fromkeys(parts, "ok"), "native_cpu": "skipped"}  # not rebuilt rehearsing
    assert {n: p["status"] for n, p in parts.items()} == want, done.stdout
    assert done.returncode == 0 and summary["mode"] == "rehearse"
    assert parts["pytest"]["result"]["tests"] > 10 and parts["pytest"]["result"]["failures"] == 0
    assert parts["placement"]["result"]["refused"]
    torch = {"torch", "torchfp32"} if importlib.util.find_spec("torch") else set()
    for row in parts["train"]["result"]["rows"]:
        assert set(row["variants"]) == {"eager", "gemm", "graph", "replay", *torch}
        assert not row["notes"]  # the graph captured
    assert parts["reproduce_cuda"]["result"]["runs_finished"] == 1
    md = (out / "summary.md").read_text()
    for heading in ("## Versions", "## Parts", "## Targets", "## Training step",
                    "## Convolution kernels at batch 2", "## Every product of a training step"):
        assert heading in md
    again = subprocess.run([sys.executable, str(SCRIPT), "--rehearse", "--out", str(out)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0
    assert "holds a previous acceptance run (summary.json)" in again.stderr


def test_a_hanging_part_is_stopped_a_crashing_one_reported_and_the_run_goes_on(tmp_path,
                                                                               monkeypatch):
    pid_file = tmp_path / "grandchild.pid"
    hang = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); open(sys.argv[1], 'w').write(str(p.pid)); "
            "time.sleep(60)")
    parts = (
        acceptance.Part("hang", "sleeps", lambda run: [sys.executable, "-c", hang, str(pid_file)],
                        {"rehearse": (4, 0)}),
        acceptance.Part("crash", "exits 3", lambda run: [sys.executable, "-c", "raise SystemExit(3)"],
                        {"rehearse": (10, 0)}),
        acceptance.Part("absent", "cannot run", lambda run: "mpi4py is not installed",
                        {"rehearse": (10, 0)}),
    )
    monkeypatch.setattr(acceptance, "PARTS", parts)
    start = time.monotonic()
    assert acceptance.main(["--rehearse", "--out", str(tmp_path / "run")], root=str(ROOT)) == 1
    assert time.monotonic() - start < 20
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    got = {p["name"]: (p["status"], p.get("returncode"), p.get("reason")) for p in summary["parts"]}
    assert got == {"hang": ("timeout", None, "stopped after its 4 s limit"),
                   "crash": ("failed", 3, None),
                   "absent": ("skipped", None, "mpi4py is not installed")}
    time.sleep(0.5)
    stat = Path(f"/proc/{pid_file.read_text()}/stat")  # its whole process group was ended
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_without_mpi4py_the_placement_part_is_skipped_saying_why(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpi4py" else real(name, *a))
    run = acceptance.Run(str(tmp_path), str(ROOT), rehearse=False, budget=60)
    assert acceptance._placement(run) == ("mpi4py is not installed (pip install "
                                          "'gpucnn[cuda13-mpi]')")


def test_the_native_cpu_kernels_are_built_only_where_missing(tmp_path, monkeypatch):
    from gpucnn import native

    run = acceptance.Run(str(tmp_path), str(ROOT), rehearse=False, budget=60)
    monkeypatch.setattr(native, "available", False)
    monkeypatch.setattr(native, "reason", "not built")
    assert acceptance._native_build(run)[1:] == ["setup.py", "build_ext", "--inplace", "-q"]
    monkeypatch.setattr(acceptance.shutil, "which", lambda name: None)
    assert acceptance._native_build(run) == ("no C compiler: the CPU reproduce runs the NumPy "
                                             "path (not built)")
    monkeypatch.setattr(native, "available", True)
    monkeypatch.setattr(native, "isa", "avx2")
    assert acceptance._native_build(run) == "built already (avx2)"
    assert acceptance._native_verdict({"returncode": 1})[0] == "skipped"


def test_without_cuda_in_pytorch_the_torch_rows_are_left_out_with_the_reason():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this PyTorch has CUDA")
    from gpucnn.bench.acceptance_parts import _torch

    assert _torch(rehearse=False) == (None, None, f"PyTorch {torch.__version__} has no CUDA "
                                                  f"(torch.version.cuda={torch.version.cuda})")


def _part(name, status, seconds=None, **result):
    return {"name": name, "status": status, "seconds": seconds, "result": result}


def test_targets_say_met_not_met_or_not_measured():
    train = {"rows": [{"config": "(a) b512", "variants": {
        "eager": {"vs_torch": 0.9}, "replay": {"vs_torch": 0.8}},
        "memory": {"eager_mb": 300.0, "torch_mb": 250.0}}]}
    summary = {"parts": [_part("pytest", "ok", tests=40, failures=0, errors=0),
                         _part("check", "failed", gradients="33 of 34 gradients pass"),
                         _part("train", "ok", **train),
                         _part("reproduce_cuda", "timeout", 150, estimated_total_s=300.0),
                         _part("reproduce_cpu", "ok", 40.0)]}
    got = {t["target"]: (t["met"], t["value"]) for t in targets(summary)}
    assert got == {
        "every cuda test passes with GPUCNN_REQUIRE_CUDA=1": (True, "40 tests, 0 failed, 0 errors"),
        "gpucnn check --device cuda agrees with the CPU": (False, "33 of 34 gradients pass"),
        "(a) b512: eager <= 1.0x PyTorch's time": (True, "0.90x"),
        "(a) b512: replay <= 0.7x PyTorch's time": (False, "0.80x"),
        "(a) b512: peak memory <= PyTorch's": (False, "300 vs 250 MiB"),
        "gpucnn reproduce faster with --device cuda than --device cpu":
            (False, "cuda 300 s (estimated from the runs finished) vs cpu 40 s")}
    summary["parts"][-1] = _part("reproduce_cpu", "skipped")
    assert targets(summary)[-1]["met"] is None
