"""A training run's folder: the files a run leaves there, which run each belongs to, and the one
check, shared by ``gpucnn train`` and the :class:`~gpucnn.train.Trainer`, that a run writes over
nothing but its own files.

Every run has a random id, kept in its checkpoints (``run_info["run_id"]``), its weights files
(``info["run_id"]``), its ``history.json`` (``"run_id"``), its ``metrics.csv`` (a ``run_id``
column) and ``gpucnn plot``'s ``curves.png`` (a PNG text chunk); a resumed run keeps its id.  A
folder may receive a run's files when it holds none of :data:`RESULTS`, or only files of the
same run that are not further along.  Files written before run ids existed are matched only
by resuming the folder's own ``checkpoint.npz``.
"""
from __future__ import annotations

import json
import os
import secrets
import struct
from dataclasses import dataclass

from ..files import atomic_write, check_folder, remove_stale_temps
from .checkpoint import CHECKPOINT_NAME, read_meta, write_weights
from .metrics import METRICS_NAME, read_metrics

WEIGHTS_NAME, BEST_NAME, HISTORY_NAME = "weights.npz", "best.npz", "history.json"
CURVES_NAME = "curves.png"  # gpucnn plot's, the run id in a PNG text chunk (PNG_RUN_KEY)
PNG_RUN_KEY = "gpucnn run_id"
# The files whose presence means a folder holds a run.
RESULTS = (CHECKPOINT_NAME, WEIGHTS_NAME, BEST_NAME, HISTORY_NAME, METRICS_NAME, CURVES_NAME)


@dataclass(frozen=True)
class Spelling:
    """How one interface names the output folder, the permission to replace a run and a resume
    (``{path}``: the checkpoint), so the one check words its refusals in the user's terms."""

    folder: str
    overwrite: str
    resume: str


CLI = Spelling("--output", "--overwrite", "--resume {path}")
PYTHON = Spelling("checkpoint_dir", "overwrite=True",
                  "Trainer.from_checkpoint({path!r}, model, data)")


def new_run_id() -> str:
    return secrets.token_hex(6)


def run_of(path: str) -> tuple[str | None, int | None]:
    """``(run id, iteration)`` a result file records (iteration: checkpoints only); None for
    what it does not record or when it cannot be read."""
    if path.endswith(".json"):
        try:
            with open(path) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            return None, None
        return (doc.get("run_id") if isinstance(doc, dict) else None), None
    if path.endswith(".csv"):
        try:
            ids = read_metrics(path)["run_id"]
        except (OSError, ValueError, UnicodeDecodeError):
            return None, None
        return ((ids[0] or None) if ids else None), None
    if path.endswith(".png"):
        return plot_run_id(path), None
    meta = read_meta(path) or {}
    if meta.get("format") == "checkpoint":
        run_info = (meta.get("config") or {}).get("run_info") or {}
        return run_info.get("run_id"), meta.get("iteration")
    return (meta.get("info") or {}).get("run_id"), None


def plot_run_id(path: str) -> str | None:
    """The run whose curves the PNG file ``path`` shows (``gpucnn plot``); None for anything
    else."""
    return _png_text(path).get(PNG_RUN_KEY)


def _png_text(path: str) -> dict:
    """The ``tEXt`` entries (keyword -> text) of a PNG file; {} for anything else."""
    text = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            while len(head := fh.read(8)) == 8:
                size, kind = struct.unpack(">I4s", head)
                if kind != b"tEXt":
                    fh.seek(size + 4, os.SEEK_CUR)  # the data and its CRC
                    continue
                key, _, value = fh.read(size).partition(b"\0")
                text[key.decode("latin-1")] = value.decode("latin-1")
                fh.seek(4, os.SEEK_CUR)
    except OSError:
        return {}
    return text


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite_on_resume(spelling: Spelling):
    """Permission to replace a run means nothing to a resumed one, which continues: refused
    rather than ignored."""
    raise ValueError(f"{spelling.overwrite}: not with a resume, which continues the run; give "
                     f"another {spelling.folder} to continue it elsewhere")


def check_run_folder(folder: str, run_id: str | None, spelling: Spelling, *,
                     iteration: int = 0, resumed_from: str | None = None,
                     overwrite: bool = False) -> list[str]:
    """Refuse, in one line, to write run ``run_id`` (at ``iteration``; resumed from the
    checkpoint ``resumed_from``, if it was) into ``folder`` when that is not a writable folder
    or holds another run's files or a later checkpoint of this run; ``overwrite`` (a new run
    only) lets another run's files go.  Creates nothing.  Returns the files to delete before
    the first write: the other run's, when ``overwrite``."""
    if resumed_from is not None and overwrite:
        refuse_overwrite_on_resume(spelling)
    check_folder(folder, spelling.folder)
    if not os.path.isdir(folder):
        return []
    own = os.path.join(folder, CHECKPOINT_NAME)
    if resumed_from is not None and _same_file(resumed_from, own):
        return []  # the run's own folder
    others, later = [], None
    for name in RESULTS:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        rid, at = run_of(path)
        if rid is None or rid != run_id:
            others.append(name)
        elif at is not None and at > iteration:
            later = (name, at)
    where = f"{spelling.folder}={folder}"
    if resumed_from is not None:
        resume = spelling.resume.format(path=resumed_from)
        if others:
            raise ValueError(f"{resume}: would write to {where}, which holds another run "
                             f"({others[0]}); give another {spelling.folder} to continue this "
                             f"run there")
        if later:
            raise ValueError(f"{resume}: would write to {where}, which holds a later checkpoint "
                             f"of this run ({later[0]}, after iteration {later[1]}; this one "
                             f"is after iteration {iteration}); resume that one, or give "
                             f"another {spelling.folder}")
        return []
    if later:  # this very run, further along: a Trainer rebuilt without its checkpoint
        raise ValueError(f"{where}: holds a later checkpoint of this run ({later[0]}); "
                         f"resume it with {spelling.resume.format(path=own)}")
    if others and not overwrite:
        way = (f"{spelling.resume.format(path=own)} to continue it or "
               if CHECKPOINT_NAME in others else "")
        raise ValueError(f"{where}: holds a previous run ({others[0]}); give {way}"
                         f"{spelling.overwrite} to replace it, or another {spelling.folder}")
    return [os.path.join(folder, name) for name in others]


def save_results(trainer, info: dict | None = None) -> tuple[str, str, str]:
    """What ``gpucnn train`` leaves beside the checkpoint once a run is over, written atomically
    into ``trainer.checkpoint_dir``: ``weights.npz`` (the final parameters: the best epoch's
    after early stopping), ``best.npz`` (those of the epoch of the best monitored metric) and
    ``history.json``, each naming the run.
    ``info`` (JSON-able, e.g. the dataset) goes into both weights files.  Returns their paths."""
    folder, h = trainer.checkpoint_dir, trainer.history
    if folder is None:
        raise ValueError("checkpoint_dir=None: expected the folder the run's results go to")
    model = trainer.model
    config = model.config() if callable(getattr(model, "config", None)) else None
    run = {**(info or {}), "run_id": trainer.run_id}
    paths = tuple(os.path.join(folder, n) for n in (WEIGHTS_NAME, BEST_NAME, HISTORY_NAME))
    final = ({"val_acc": h.val_acc[-1]} if h.stopped_epoch is None  # else the model holds
             else {"epoch": h.best_epoch, "val_acc": h.best_val_acc})  # the best epoch's
    write_weights(paths[0], model.state_dict(), config, {**run, **final})
    write_weights(paths[1], h.best_params, config, {**run, "epoch": h.best_epoch,
                                                    "val_acc": h.best_val_acc})
    remove_stale_temps(paths[2])
    with atomic_write(paths[2]) as fh:
        fh.write(json.dumps({"run_id": trainer.run_id, **h.to_dict()}, indent=1).encode())
    return paths
