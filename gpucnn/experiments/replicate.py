"""Replicated runs kept in a folder, the machinery every experiment shares (``gpucnn
reproduce``, ``gpucnn experiment sanity|sweep``).

A run is described by a *spec*: a frozen dataclass with ``key`` (its file name), ``title`` (what
the progress line calls it), ``seed`` and ``train(s, dataset) -> dict`` (the run, JSON-able).
Runs with one seed share initialisation, batch order, dropout masks and training subset, so the
experiments compare them in pairs (:mod:`.stats`).

Each finished run is written at once, atomically, to ``<output>/runs/<key>.json``; a rerun skips
the runs found there (so Ctrl-C loses only the runs in progress).  The folder is stamped with the
experiment and the settings its runs were made with, and refused when they differ.  Runs go to a
pool of processes (one BLAS thread each) on a CPU, stay in this process on a GPU, and are spread
over the ranks under ``mpirun``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from ..distributed import get_world, launched_world_size, map_runs, rank_device
from ..files import PROBE_PREFIX, atomic_write, remove_stale_temps, writable_folder
from .common import Settings, load_dataset

RUNS_DIR = "runs"
STAMP = "experiment.json"  # the experiment and settings the folder's runs were made with
# Settings that say how, not what, is computed, or which runs: a folder's runs stay valid when
# these change.
NOT_PROTOCOL = ("device", "seeds", "train_sizes", "grid")
# The pool's workers get one thread each for BLAS and gpucnn's native kernels (the pool already
# has a process per core).  Their malloc keeps freed arrays for reuse as every gpucnn process's
# does (gpucnn.cpu_runtime.tune_malloc): one seed of the sweep (11 runs, one process) took 4.2
# million page faults, 11.9 s user and 8.4 s system time without; 12 thousand, 11.4 s and 0.06 s
# with (2-core VM, glibc 2.36).
WORKER_ENV = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                               "GPUCNN_CPU_THREADS")}


# -- the output folder -------------------------------------------------------------------------
def protocol(s: Settings) -> dict:
    """The settings every run of a folder must share."""
    return {k: v for k, v in s.to_dict().items() if k not in NOT_PROTOCOL}


def claim_folder(folder: str, experiment: str, s: Settings, fresh: bool) -> None:
    """Make sure ``folder`` holds only runs of ``experiment`` under ``s``'s protocol, or refuse
    in one line.  ``fresh`` deletes the folder's earlier runs (only the files these commands
    write)."""
    stamp = os.path.join(folder, STAMP)
    runs = os.path.join(folder, RUNS_DIR)
    ours = os.listdir(runs) if os.path.isdir(runs) else []
    if fresh:
        for name in ours:
            if name.endswith(".json"):
                os.remove(os.path.join(runs, name))
    elif os.path.exists(stamp):
        with open(stamp) as fh:
            earlier = json.load(fh)
        # Folders stamped before sanity and sweep kept runs here hold reproduce's.
        other = earlier.get("experiment", "reproduce")
        if other != experiment:
            raise ValueError(f"--output {folder}: holds runs of another experiment ({other}); "
                             f"add --fresh to replace them, or choose another --output")
        changed = _differences(earlier.get("protocol", {}), protocol(s))
        if changed:
            raise ValueError(f"--output {folder}: holds runs made with other settings "
                             f"({changed}); add --fresh to replace them, or choose another "
                             f"--output")
    else:
        foreign = sorted(n for n in os.listdir(folder)
                         if n != RUNS_DIR and not n.startswith(PROBE_PREFIX))
        if foreign or ours:
            raise ValueError(f"--output {folder}: holds files this command did not record "
                             f"({', '.join(foreign[:3]) or RUNS_DIR}); add --fresh to write over "
                             f"them, or choose another --output")
    os.makedirs(runs, exist_ok=True)
    write_json_atomic(stamp, {"experiment": experiment, "protocol": protocol(s)})


def _differences(earlier: dict, now: dict) -> str:
    keys = sorted(k for k in set(earlier) | set(now) if earlier.get(k) != now.get(k))
    return ", ".join(f"{k} {earlier.get(k)!r} -> {now.get(k)!r}" for k in keys)


def write_json_atomic(path: str, obj: dict) -> None:
    """Write ``obj`` as JSON atomically: readers (and a rerun after Ctrl-C) see the old file or
    the whole new one, never a part, and no temporary file outlives a killed writer's rerun."""
    remove_stale_temps(path)
    with atomic_write(path) as fh:
        fh.write(json.dumps(obj, indent=1).encode())


def run_path(folder: str, spec) -> str:
    return os.path.join(folder, RUNS_DIR, f"{spec.key}.json")


def load_finished(folder: str, specs: list, s: Settings) -> dict:
    """The runs of ``specs`` (spec -> run) already written in ``folder`` under ``s``'s protocol
    (a file left by a --fresh rerun that was interrupted may hold an older one)."""
    done, wanted = {}, protocol(s)
    for spec in specs:
        path = run_path(folder, spec)
        if os.path.exists(path):
            with open(path) as fh:
                run = json.load(fh)
            if run.get("protocol") == wanted:
                done[spec] = run
    return done


# -- running -----------------------------------------------------------------------------------
def train_one(s: Settings, dataset, spec, folder: str) -> dict:
    """Train ``spec``'s run, write it to ``folder`` and return it (JSON-able)."""
    run = spec.train(s, dataset)
    run.update(spec=dataclasses.asdict(spec), protocol=protocol(s))
    write_json_atomic(run_path(folder, spec), run)
    return run


_worker: dict = {}  # a pool worker's settings, dataset and folder, loaded once per process


def _init_worker(settings: dict, folder: str, stop) -> None:
    # Idle workers ignore Ctrl-C: the parent decides what stops (through ``stop``); a run in
    # training still stops at the Trainer's own handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    s = Settings(**settings)
    _worker.update(s=s, dataset=load_dataset(s), folder=folder, stop=stop)


def _work(spec) -> dict | None:
    """``spec``'s run in a pool worker; None when Ctrl-C stopped it (the Trainer's interrupt
    carries arguments that do not survive the trip back to the parent), or when the parent
    has stopped (runs already queued to the worker would otherwise still start)."""
    if _worker["stop"].is_set():
        return None
    try:
        return train_one(_worker["s"], _worker["dataset"], spec, _worker["folder"])
    except KeyboardInterrupt:
        return None


@contextlib.contextmanager
def _worker_environment():
    """:data:`WORKER_ENV` while the pool spawns its workers."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def run_pool(s: Settings, todo: list, folder: str, workers: int, report) -> None:
    """``todo`` over ``workers`` spawned processes; ``report(spec, run)`` as each one finishes.
    Ctrl-C cancels the runs not started; the finished ones are already on disk."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    with _worker_environment():
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(s.to_dict(), folder, stop))
        try:
            futures = {pool.submit(_work, spec): spec for spec in todo}
            for future in as_completed(futures):
                run = future.result()
                if run is None:  # a worker saw Ctrl-C first
                    raise KeyboardInterrupt
                report(futures[future], run)
        except KeyboardInterrupt:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def execute(s: Settings, dataset, todo: list, folder: str, workers: int | None, echo) -> str:
    """Train ``todo``; returns how: "mpi", "cuda", "pool of N" or "serial"."""
    count = iter(range(1, len(todo) + 1))
    # on the rank's own GPU under mpirun; workers need not probe again
    s = dataclasses.replace(s, device=rank_device(s.device))

    def report(spec, run):
        echo(f"[{next(count)}/{len(todo)}] {spec.title}, seed {spec.seed}: train "
             f"{run['train_acc'][-1]:.3f}, validation {run['val_acc'][-1]:.3f} "
             f"({run['seconds']:.1f} s)")

    def one(spec):
        run = train_one(s, dataset, spec, folder)
        report(spec, run)
        return run

    if launched_world_size() > 1:
        map_runs(one, todo)
        return "mpi"
    if s.device == "cuda":
        for spec in todo:
            one(spec)
        return "cuda"
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for spec in todo:
            one(spec)
        return "serial"
    run_pool(s, todo, folder, workers, report)
    return f"pool of {workers}"


def run_replicated(experiment: str, s: Settings, folder: str, specs: list, *,
                   fresh: bool = False, workers: int | None = None, check=None,
                   echo=lambda text: print(text, flush=True)) -> dict | None:
    """Train the runs of ``specs`` missing from ``folder`` and return every one of them:
    ``experiment``, ``settings``, ``dataset``, ``runs`` (in the order of ``specs``, each with
    its ``spec``), ``skipped`` (runs found finished), ``how``, ``seconds``, ``host``,
    ``cpu_count``.  ``check(dataset)`` may refuse the settings before anything is written.  MPI
    ranks other than 0 return None."""
    started = time.perf_counter()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers={workers!r}: expected a number of processes >= 1")
    world = get_world()
    writable_folder(folder, "--output")
    dataset = load_dataset(s)
    if check:
        check(dataset)
    # One rank claims the folder and says what is left to run: another would see the runs/ it
    # creates, and the runs that ranks already training write there.
    refusal = todo = None
    if world.is_root:
        try:
            claim_folder(folder, experiment, s, fresh)
            done = load_finished(folder, specs, s)
            todo = [spec for spec in specs if spec not in done]
        except ValueError as e:
            refusal = str(e)
    refusal, todo = world.bcast((refusal, todo))
    if refusal:
        raise ValueError(refusal)
    skipped = len(specs) - len(todo)
    if skipped and world.is_root:
        echo(f"{skipped} of {len(specs)} runs already finished in {folder}: skipped (--fresh "
             f"redoes them)")
    how = execute(s, dataset, todo, folder, workers, echo) if todo else "nothing to run"
    if not world.is_root:
        return None
    runs = load_finished(folder, specs, s)
    return {"experiment": experiment, "settings": s.to_dict(), "dataset": dataset.meta.to_dict(),
            "runs": [runs[spec] for spec in specs], "skipped": skipped, "how": how,
            "seconds": time.perf_counter() - started, "host": platform.node(),
            "cpu_count": os.cpu_count()}
