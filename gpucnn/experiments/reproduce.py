"""The source document's (seeds/000) experiment, replicated: do L2 and dropout change the
train/validation gap, and in which regime?

Protocol per run: epochs of ``iterations`` updates; accuracy on ``train_samples`` training
samples and on the validation set before training (epoch 0) and after each epoch.  The grid is
every (training-set size, (reg, dropout) pair, seed): by default the full training split and 200
samples, (0, 0), (0.01, 0), (0.01, 0.4), seeds 0..7.  A seed fixes a run's initialisation, batch
order, dropout masks and its training subset, so runs with one seed and size differ only in
(reg, dropout) and can be compared in pairs (:mod:`.reproduce_report` does the statistics).

Each finished run is written at once to ``<output>/runs/<key>.json``; a rerun skips them.  The
runs go to a pool of processes (one BLAS thread each) on a CPU, stay in this process on a GPU,
and are spread over the ranks under ``mpirun``.
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
from dataclasses import dataclass

from ..data.preprocess import stratified_split
from ..distributed import get_world, launched_world_size, map_runs, rank_device
from ..files import PROBE_PREFIX, atomic_write, remove_stale_temps, writable_folder
from .common import Settings, load_dataset, public, train_run

RUNS_DIR = "runs"
STAMP = "experiment.json"  # the settings the folder's runs were made with
# Settings that say how, not what, is computed: a folder's runs stay valid when these change.
NOT_PROTOCOL = ("device", "seeds", "train_sizes", "grid")
# One thread each for BLAS and gpucnn's native kernels: the pool already has a process per core.
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GPUCNN_CPU_THREADS")


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: training-set size ("full" or a count), L2, dropout, seed."""

    train_size: str | int
    reg: float
    dropout: float
    seed: int

    @property
    def key(self) -> str:
        return f"n{self.train_size}_reg{self.reg:g}_p{self.dropout:g}_seed{self.seed}"

    @property
    def label(self) -> str:
        return run_label(self.reg, self.dropout)


def run_label(reg: float, dropout: float) -> str:
    return f"reg={reg:g}, dropout={dropout:g}"


def grid_specs(s: Settings) -> list[RunSpec]:
    """Every run, by size, then seed, then (reg, dropout): an interrupted grid leaves whole
    pairs of a seed behind."""
    return [RunSpec(size, reg, p, seed) for size in s.train_sizes for seed in s.seeds
            for reg, p in s.grid]


def check_train_sizes(s: Settings, num_train: int) -> None:
    """Every count of ``s.train_sizes`` is at most the ``num_train`` samples of the split."""
    for i, size in enumerate(s.train_sizes):
        if size != "full" and size > num_train:
            raise ValueError(f"train_sizes[{i}]={size}: expected at most the {num_train} "
                             f"training samples of {s.dataset}, or \"full\"")


def training_data(dataset, size, seed: int) -> dict:
    """The Trainer's data for one run: all training samples, or ``size`` of them stratified by
    class and drawn by ``seed``; the whole validation split."""
    x, y = dataset.x_train, dataset.y_train
    if size != "full" and size < len(y):
        pick = stratified_split(y, (size / len(y),), seed)[1]
        x, y = x[pick], y[pick]
    return {"X_train": x, "y_train": y, "X_val": dataset.x_val, "y_val": dataset.y_val,
            "meta": dataset.meta}


# -- the output folder -------------------------------------------------------------------------
def protocol(s: Settings) -> dict:
    """The settings every run of a folder must share."""
    return {k: v for k, v in s.to_dict().items() if k not in NOT_PROTOCOL}


def claim_folder(folder: str, s: Settings, fresh: bool) -> None:
    """Make sure ``folder`` holds only runs of ``s``'s protocol, or refuse in one line.

    ``fresh`` deletes the folder's earlier runs (only the files this command writes).
    """
    stamp = os.path.join(folder, STAMP)
    runs = os.path.join(folder, RUNS_DIR)
    ours = os.listdir(runs) if os.path.isdir(runs) else []
    if fresh:
        for name in ours:
            if name.endswith(".json"):
                os.remove(os.path.join(runs, name))
    elif os.path.exists(stamp):
        with open(stamp) as fh:
            earlier = json.load(fh).get("protocol", {})
        changed = _differences(earlier, protocol(s))
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
    write_json_atomic(stamp, {"protocol": protocol(s)})


def _differences(earlier: dict, now: dict) -> str:
    keys = sorted(k for k in set(earlier) | set(now) if earlier.get(k) != now.get(k))
    return ", ".join(f"{k} {earlier.get(k)!r} -> {now.get(k)!r}" for k in keys)


def write_json_atomic(path: str, obj: dict) -> None:
    """Write ``obj`` as JSON atomically: readers (and a rerun after Ctrl-C) see the old file or
    the whole new one, never a part, and no temporary file outlives a killed writer's rerun."""
    remove_stale_temps(path)
    with atomic_write(path) as fh:
        fh.write(json.dumps(obj, indent=1).encode())


def run_path(folder: str, spec: RunSpec) -> str:
    return os.path.join(folder, RUNS_DIR, f"{spec.key}.json")


def load_finished(folder: str, specs: list[RunSpec], s: Settings) -> dict[RunSpec, dict]:
    """The runs of ``specs`` already written in ``folder`` under ``s``'s protocol (a file left
    by a --fresh rerun that was interrupted may hold an older one)."""
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
def train_one(s: Settings, dataset, spec: RunSpec, folder: str) -> dict:
    """Train ``spec``'s run, write it to ``folder`` and return it (JSON-able)."""
    data = training_data(dataset, spec.train_size, spec.seed)
    run = public(train_run(dataclasses.replace(s, seed=spec.seed), data, spec.label,
                           reg=spec.reg, dropout=spec.dropout, progress=False))
    run.update(spec=dataclasses.asdict(spec), num_train=len(data["y_train"]),
               protocol=protocol(s))
    write_json_atomic(run_path(folder, spec), run)
    return run


_worker: dict = {}  # a pool worker's settings, dataset and folder, loaded once per process


def _init_worker(settings: dict, folder: str, stop) -> None:
    # Idle workers ignore Ctrl-C: the parent decides what stops (through ``stop``); a run in
    # training still stops at the Trainer's own handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    s = Settings(**settings)
    _worker.update(s=s, dataset=load_dataset(s), folder=folder, stop=stop)


def _work(spec: RunSpec) -> dict | None:
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
def _one_blas_thread():
    """Environment for spawned workers: one BLAS thread each, so N workers use N cores."""
    saved = {k: os.environ.get(k) for k in BLAS_THREADS}
    os.environ.update({k: "1" for k in BLAS_THREADS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def run_pool(s: Settings, todo: list[RunSpec], folder: str, workers: int, report) -> None:
    """``todo`` over ``workers`` spawned processes; ``report(run)`` as each one finishes.
    Ctrl-C cancels the runs not started; the finished ones are already on disk."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    with _one_blas_thread():
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(s.to_dict(), folder, stop))
        try:
            for future in as_completed([pool.submit(_work, spec) for spec in todo]):
                run = future.result()
                if run is None:  # a worker saw Ctrl-C first
                    raise KeyboardInterrupt
                report(run)
        except KeyboardInterrupt:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def execute(s: Settings, dataset, todo: list[RunSpec], folder: str, workers: int | None,
            echo) -> str:
    """Train ``todo``; returns how: "mpi", "cuda", "pool of N" or "serial"."""
    count = iter(range(1, len(todo) + 1))
    # on the rank's own GPU under mpirun; workers need not probe again
    s = dataclasses.replace(s, device=rank_device(s.device))

    def report(run):
        spec = run["spec"]
        size = "all" if spec["train_size"] == "full" else spec["train_size"]
        echo(f"[{next(count)}/{len(todo)}] {size} training samples, {run['label']}, seed "
             f"{spec['seed']}: train {run['train_acc'][-1]:.3f}, validation "
             f"{run['val_acc'][-1]:.3f} ({run['seconds']:.1f} s)")

    def one(spec):
        run = train_one(s, dataset, spec, folder)
        report(run)
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


def run_reproduce(s: Settings, folder: str, *, fresh: bool = False, workers: int | None = None,
                  echo=lambda text: print(text, flush=True)) -> dict | None:
    """Train the grid's missing runs into ``folder`` and return every run of the grid:
    ``settings``, ``dataset``, ``runs`` (each with its ``spec``), ``skipped`` (runs found
    finished), ``how``, ``seconds``, ``host``, ``cpu_count``.  MPI ranks other than 0 return
    None."""
    started = time.perf_counter()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers={workers!r}: expected a number of processes >= 1")
    world = get_world()
    writable_folder(folder, "--output")
    dataset = load_dataset(s)
    check_train_sizes(s, len(dataset.y_train))
    refusal = None
    if world.is_root:  # one rank claims the folder: another would see the runs/ it creates
        try:
            claim_folder(folder, s, fresh)
        except ValueError as e:
            refusal = str(e)
    refusal = world.bcast(refusal)  # the other ranks wait for the claim and share its verdict
    if refusal:
        raise ValueError(refusal)
    specs = grid_specs(s)
    done = {} if fresh else load_finished(folder, specs, s)
    todo = [spec for spec in specs if spec not in done]
    if done:
        echo(f"{len(done)} of {len(specs)} runs already finished in {folder}: skipped (--fresh "
             f"redoes them)")
    how = execute(s, dataset, todo, folder, workers, echo) if todo else "nothing to run"
    if not world.is_root:
        return None
    runs = load_finished(folder, specs, s)
    return {"settings": s.to_dict(), "dataset": dataset.meta.to_dict(),
            "runs": [runs[spec] for spec in specs], "skipped": len(done), "how": how,
            "seconds": time.perf_counter() - started, "host": platform.node(),
            "cpu_count": os.cpu_count()}
