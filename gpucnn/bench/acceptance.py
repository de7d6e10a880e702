"""The GPU acceptance run (``scripts/gpu_acceptance.py --out DIR``): one unattended command on a
GPU machine that runs, in order, the parts of :data:`PARTS` -- versions, the GPU test suite,
``gpucnn check``, training steps and kernels against PyTorch + cuDNN, two GPU ranks on one GPU,
``gpucnn reproduce`` on the GPU and then the CPU -- each a child process with its own time
limit within one budget (8 minutes on an H100 by default), never stopping at a failure or a
hang, everything written under DIR, and ``summary.md`` / ``summary.json`` rewritten after every
part, so a run cut short still leaves its summary.

``--rehearse`` runs the same sequence on a CPU with the stand-in CuPy of tests/fakecupy (on
every child's PYTHONPATH through tests/fakecupy/shim) at small sizes, PyTorch on the CPU: what
CI runs, so the script cannot fail on a typo the day it meets a GPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ..files import atomic_write, writable_folder
from .acceptance_report import markdown, targets

BUDGET = {"gpu": 450.0, "rehearse": 240.0}  # seconds; 8 minutes less a margin on the GPU


@dataclass
class Run:
    """One acceptance run: where it writes, what it runs on, its deadline and results."""

    out: str
    root: str       # the source tree (tests/, the shim); children get it first on PYTHONPATH
    rehearse: bool
    budget: float
    started: float = field(default_factory=time.monotonic)
    parts: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "rehearse" if self.rehearse else "gpu"

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def env(self) -> dict:
        paths = [self.root]
        if self.rehearse:
            tests = os.path.join(self.root, "tests")
            paths = [os.path.join(tests, "fakecupy", "shim"), tests, self.root]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        if self.rehearse:  # a stand-in host of one GPU, as the H100 machine is
            env["FAKECUPY_GPUS"] = "1"
        env.pop("GPUCNN_DEVICE", None)
        return env

    def path(self, *parts) -> str:
        return os.path.join(self.out, *parts)


@dataclass(frozen=True)
class Part:
    """A step of the run: its child command (``command(run)``, or a string saying why it is
    skipped), ``limits[mode]`` = (its time limit, the time it keeps for itself from the parts
    before it), its extra environment, and ``judge(rec)``, which turns a finished part's
    record into (status, reason) where an exit code is not the verdict."""

    name: str
    title: str
    command: object
    limits: dict
    env: dict = field(default_factory=dict)
    judge: object = None


def _me(part: str):
    return lambda run: [sys.executable, "-m", "gpucnn.bench.acceptance", "--part", part,
                        "--out", run.out] + (["--rehearse"] if run.rehearse else [])


def _pytest(run: Run) -> list:
    """The GPU suite; rehearsing, the tests of the new paths only (the whole of it takes a
    minute on the stand-in: GPUCNN_REQUIRE_CUDA=1 PYTHONPATH=tests/fakecupy/shim:tests:.
    pytest -m 'cuda and not slow').  A module that fails to import (a missing optional
    package) is reported without stopping the others."""
    select = ["-m", "cuda"] if not run.rehearse else [
        "-m", "cuda and not slow", "-k", "gemm or graph or compare_with"]
    return [sys.executable, "-m", "pytest", *select, "-q", "-rfEs", "-p", "no:cacheprovider",
            "--continue-on-collection-errors", f"--junitxml={run.path('pytest-cuda.xml')}",
            os.path.join(run.root, "tests")]


_TINY = ["--seeds", "1", "--grid", "0:0", "--train-sizes", "200", "--epochs", "1",
         "--iterations-per-epoch", "2", "--train-samples", "50"]


def _reproduce(device: str):
    def command(run: Run) -> list:
        return [sys.executable, "-m", "gpucnn.cli", "reproduce", "--device", device, "--output",
                run.path(f"reproduce-{device}"), "--no-progress"] + (_TINY if run.rehearse else [])
    return command


def _placement(run: Run):
    """Two ranks of ``gpucnn train --device cuda`` on this host: with its one GPU they must be
    refused in one line.  gpucnn's mpirun options are Open MPI's; another MPI's mpirun gets
    none."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'gpucnn[cuda13-mpi]')"
    from ..distributed import find_mpirun, mpirun_command

    argv = [sys.executable, "-m", "gpucnn.cli", "train", "--device", "cuda", "--epochs", "1",
            "--iterations-per-epoch", "2", "--output", run.path("placement"), "--no-progress"]
    try:
        mpirun = find_mpirun()
        about = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=20)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return f"no usable mpirun ({e})"
    if "Open MPI" not in about.stdout + about.stderr:
        return [mpirun, "-n", "2", *argv]
    cmd = mpirun_command(2, argv)
    return cmd[:3] + (["--oversubscribe"] if "--oversubscribe" not in cmd else []) + cmd[3:]


def _native_build(run: Run):
    """Build the native CPU kernels in the source tree where they are missing, so the CPU
    reproduce is gpucnn's CPU path as installed (pip builds them), not its NumPy fallback."""
    if run.rehearse:
        return "rehearsing: the kernels of the CPU comparison are left as they are"
    from .. import native

    if native.available:
        return f"built already ({native.isa})"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return f"no C compiler: the CPU reproduce runs the NumPy path ({native.reason})"
    return [sys.executable, "setup.py", "build_ext", "--inplace", "-q"]


def _native_verdict(rec: dict):
    if rec.get("returncode") == 0:
        return "ok", "built: the CPU reproduce runs the native kernels"
    return "skipped", "the build failed (see its log): the CPU reproduce runs the NumPy path"


def _placement_verdict(rec: dict):
    """Two ranks on a one-GPU host must be refused in one line; with two GPUs they train."""
    if rec["result"].get("refused"):
        return "ok", "refused in one line, as expected with one GPU"
    if rec.get("returncode") == 0:
        return "ok", "trained: each rank had a GPU of its own"
    return "failed", "neither refused in one line nor trained (see the log)"


PARTS = (
    Part("versions", "GPU, driver, CUDA, CuPy, PyTorch, NCCL, MPI", _me("versions"),
         {"gpu": (60, 10), "rehearse": (45, 3)}),
    Part("pytest", "GPUCNN_REQUIRE_CUDA=1 pytest -m cuda", _pytest,
         {"gpu": (150, 60), "rehearse": (90, 10)}, {"GPUCNN_REQUIRE_CUDA": "1"}),
    Part("check", "gpucnn check --device cuda", lambda run: [
        sys.executable, "-m", "gpucnn.cli", "check", "--device", "cuda"],
         {"gpu": (60, 20), "rehearse": (60, 5)}),
    Part("train", "training steps against PyTorch + cuDNN", _me("train"),
         {"gpu": (100, 45), "rehearse": (60, 5)}),
    Part("kernels", "conv kernels and the step's products", _me("kernels"),
         {"gpu": (45, 20), "rehearse": (45, 5)}),
    Part("placement", "two ranks on one GPU: refused in one line", _placement,
         {"gpu": (45, 15), "rehearse": (45, 5)}, judge=_placement_verdict),
    Part("reproduce_cuda", "gpucnn reproduce --device cuda", _reproduce("cuda"),
         {"gpu": (150, 60), "rehearse": (60, 5)}),
    Part("native_cpu", "the native CPU kernels, for the CPU comparison", _native_build,
         {"gpu": (90, 0), "rehearse": (30, 0)}, judge=_native_verdict),
    Part("reproduce_cpu", "gpucnn reproduce --device cpu (time allowing)", _reproduce("cpu"),
         {"gpu": (150, 0), "rehearse": (60, 0)}),
)


def _limit(run: Run, index: int) -> float:
    """Seconds part ``index`` may take: its cap, within what the later parts keep."""
    keep = sum(p.limits[run.mode][1] for p in PARTS[index + 1:])
    return min(PARTS[index].limits[run.mode][0], run.left() - keep)


def _kill(proc) -> None:
    """End the part's process group (mpirun's ranks, pytest's children): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_part(run: Run, index: int) -> dict:
    """Run part ``index`` as a child with its log in DIR/<name>.log; never raises."""
    part = PARTS[index]
    rec = {"name": part.name, "title": part.title, "log": f"{part.name}.log"}
    limit = _limit(run, index)
    command = part.command(run)
    if isinstance(command, str) or limit < max(part.limits[run.mode][1], 3):
        rec.update(status="skipped", reason=command if isinstance(command, str) else
                   f"{max(run.left(), 0):.0f} s of the budget left, not enough for this part")
        return rec
    rec["command"], rec["limit_s"] = command, round(limit, 1)
    start = time.monotonic()
    with open(run.path(rec["log"]), "wb") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=run.root,
                                    env={**run.env(), **part.env}, start_new_session=True)
        except OSError as e:
            rec.update(status="failed", reason=f"could not start: {e}")
            return rec
        try:
            rec["returncode"] = proc.wait(limit)
            rec["status"] = "ok" if rec["returncode"] == 0 else "failed"
        except subprocess.TimeoutExpired:
            _kill(proc)
            rec.update(status="timeout", reason=f"stopped after its {limit:.0f} s limit")
    rec["seconds"] = round(time.monotonic() - start, 1)
    rec["result"] = _result(run, part.name, rec)
    if part.judge is not None and rec["status"] != "timeout":
        rec["status"], rec["reason"] = part.judge(rec)
    return rec


def _result(run: Run, name: str, rec: dict) -> dict:
    """What a part produced: its JSON, or what its log and files say."""
    from .acceptance_report import read_part

    try:
        return read_part(run, name, rec)
    except Exception as e:  # noqa: BLE001 - a part's broken output is reported, not fatal
        return {"error": f"{type(e).__name__}: {e}"}


def write_summary(run: Run) -> None:
    summary = {"mode": run.mode, "budget_s": run.budget,
               "elapsed_s": round(time.monotonic() - run.started, 1), **run.info,
               "parts": run.parts}
    summary["targets"] = targets(summary)
    with atomic_write(run.path("summary.json")) as fh:
        fh.write(json.dumps(summary, indent=1, default=str).encode())
    with atomic_write(run.path("summary.md")) as fh:
        fh.write(markdown(summary).encode())


def _source_info(root: str) -> dict:
    from .. import __version__

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                                 timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None

    return {"gpucnn": __version__, "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "python": sys.version.split()[0], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def main(argv=None, root: str | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_acceptance.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for every file of the run (created)")
    p.add_argument("--rehearse", action="store_true",
                   help="on a CPU with the stand-in CuPy of tests/fakecupy, at small sizes")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default 450, "
                   "240 rehearsing, which takes ~45 s on an idle 2-core machine)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    p.add_argument("--part", help=argparse.SUPPRESS)  # a child: run one measuring part
    args = p.parse_args(argv)
    if args.part:
        from .acceptance_parts import run_measuring_part

        return run_measuring_part(args.part, args.out, args.rehearse)
    root = os.path.abspath(root or os.getcwd())
    try:
        writable_folder(args.out, "--out")
        if os.path.exists(os.path.join(args.out, "summary.json")) and not args.overwrite:
            raise ValueError(f"--out={args.out}: holds a previous acceptance run (summary.json); "
                             f"expected an empty folder, or --overwrite")
        if args.rehearse and not os.path.isdir(os.path.join(root, "tests", "fakecupy")):
            raise ValueError(f"--rehearse: the stand-in CuPy is not at {root}/tests/fakecupy; "
                             f"expected a source tree (run from its root)")
        if args.budget is not None and args.budget <= 0:
            raise ValueError(f"--budget={args.budget:g}: expected seconds > 0")
    except ValueError as e:
        print(f"gpu_acceptance.py: error: {e}", file=sys.stderr)
        return 2
    run = Run(os.path.abspath(args.out), root, args.rehearse,
              args.budget or BUDGET["rehearse" if args.rehearse else "gpu"])
    run.info = _source_info(root)
    for index, part in enumerate(PARTS):
        print(f"[{time.monotonic() - run.started:5.0f} s] {part.name}: {part.title}", flush=True)
        run.parts.append(run_part(run, index))
        rec = run.parts[-1]
        print(f"         {rec['status']}" + (f" ({rec['seconds']} s)" if "seconds" in rec else "")
              + (f": {rec['reason']}" if rec.get("reason") else ""), flush=True)
        try:
            write_summary(run)
        except Exception as e:  # noqa: BLE001 - the next parts still run; their summary may work
            print(f"         the summary could not be written: {type(e).__name__}: {e}",
                  flush=True)
    failed = [r["name"] for r in run.parts if r["status"] in ("failed", "timeout")]
    print(f"summary: {run.path('summary.md')}" + (f"; not ok: {', '.join(failed)}" if failed
                                                  else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
