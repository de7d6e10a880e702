"""What a run measures beside its training loss, and the table it keeps of it.

:func:`evaluate` scores a model on a split in batches: the mean cross-entropy (with the run's
label smoothing, without L2), the accuracy, the top-k accuracy and the confusion matrix
(rows: true class, columns: predicted), on any device and summed over MPI ranks when a world
is given.  :func:`write_metrics` writes ``metrics.csv``, one row per epoch (epoch 0 is the
model before training) naming the run, atomically and from the history, so after a resume it
holds the checkpoint's epochs and never a lost epoch's row.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from .. import functional as F
from ..device import to_device, to_numpy
from ..files import atomic_write, remove_stale_temps

METRICS_NAME = "metrics.csv"
# run_id: the run the rows are of (gpucnn.train.folder), the same on every row.
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "run_id")


def evaluate(model, X, y, batch_size: int, *, label_smoothing: float = 0.0, top_k: int = 1,
             num_classes: int | None = None, world=None, loss: bool = True) -> dict:
    """``{"loss", "accuracy", "top_k_accuracy", "confusion", "samples"}`` of ``model`` on
    ``(X, y)`` (host arrays), ``batch_size`` samples at a time on the model's device; with a
    ``world``, each rank scores its shard and the counts are summed.  ``confusion`` is
    (K, K) int64 with ``num_classes`` K (default: from the scores).  ``loss=False`` skips the
    loss (None then): accuracy alone costs no loss kernel."""
    n = len(y)
    if world is not None:
        X, y = world.shard(X, y)
    loss_sum, correct, top = 0.0, 0, 0
    confusion = None
    for i in range(0, len(y), batch_size):
        xb = to_device(X[i:i + batch_size], model.device).astype(model.dtype, copy=False)
        yb = y[i:i + batch_size]
        scores = model.loss(xb)
        k = scores.shape[1] if num_classes is None else num_classes
        if confusion is None:
            confusion = np.zeros((k, k), np.int64)
        if loss:
            mean, _ = F.softmax_cross_entropy(scores, to_device(yb, model.device),
                                              label_smoothing)
            loss_sum += float(mean) * len(yb)
        predicted = to_numpy(scores.argmax(axis=1))
        np.add.at(confusion, (yb, predicted), 1)
        if top_k > 1:  # ranks on the host: k of K scores per sample, a small copy
            host = to_numpy(scores)
            best = np.argpartition(-host, min(top_k, host.shape[1]) - 1, axis=1)[:, :top_k]
            top += int((best == yb[:, None]).any(axis=1).sum())
    if confusion is None:
        confusion = np.zeros((num_classes or 0,) * 2, np.int64)
    if world is not None and world.size > 1:
        loss_sum, top = world.sum(loss_sum), world.sum(top)
        confusion = world.sum(confusion)
    correct = int(np.trace(confusion))
    return {"loss": loss_sum / n if loss else None, "accuracy": correct / n,
            "top_k_accuracy": (top if top_k > 1 else correct) / n, "confusion": confusion,
            "samples": n}


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Each class's accuracy (recall): its diagonal entry over its row's sum (NaN if absent)."""
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(confusion) / counts, np.nan)


def metrics_rows(history, run_id: str) -> list[list]:
    """The rows of ``metrics.csv`` (see :data:`COLUMNS`) from a :class:`History`."""
    rows = []
    for e in range(len(history.val_acc)):
        loss = history.epoch_loss[e]
        rows.append([e, "" if loss is None else loss, history.train_acc[e],
                     history.val_loss[e], history.val_acc[e], history.lr[e],
                     history.epoch_time[e], run_id])
    return rows


def write_metrics(path: str, history, run_id: str) -> None:
    """``metrics.csv`` of run ``run_id`` at ``path`` from ``history``, replaced atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(metrics_rows(history, run_id))
    remove_stale_temps(path)
    with atomic_write(path) as fh:
        fh.write(text.getvalue().encode())


def read_metrics(path: str) -> dict[str, list]:
    """``{column: values}`` of a ``metrics.csv``: numbers (an empty cell is None) and the
    ``run_id`` strings."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0][:len(COLUMNS)]) != COLUMNS:
        raise ValueError(f"{path}: not a gpucnn metrics.csv: expected the header "
                         f"{','.join(COLUMNS)}")
    columns = {c: [] for c in COLUMNS}
    for row in rows[1:]:
        for c, v in zip(COLUMNS, row):
            columns[c].append(v if c == "run_id" else None if v == "" else float(v))
    return columns
