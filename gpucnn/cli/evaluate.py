"""``gpucnn evaluate``: a trained model's accuracy on a dataset split, with its top-k accuracy,
each class's accuracy and the confusion matrix, printed and saved.

It saves beside the weights (or in ``--output``) ``<weights name>.<dataset>.<split>.json``
(every number, the class names, the confusion matrix with rows the true class and columns the
predicted one) and ``<...>.confusion.csv``; evaluating the same weights on the same split again
rewrites them, while a report of other weights under the same name is replaced only with
``--overwrite``.
"""
from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

from ..config import DATA, EVALUATION, RUN, TRAINING, combine
from ..data import load
from ..device import resolve_device
from ..files import atomic_write, check_file, remove_stale_temps, writable_folder
from ..models import model_from_config
from ..train import CHECKPOINT_NAME, load_weights
from ..train.checkpoint import load_checkpoint, prefixed
from ..train.metrics import evaluate, per_class_accuracy

# evaluate's batch_size is the number of samples predicted at a time.
EVALUATE = combine("evaluate", DATA, TRAINING, EVALUATION, RUN,
                   only=("dataset", "data_dir", "device", "batch_size", "top_k", "output"))
# Past this many classes the confusion matrix is saved but not printed.
PRINTED_CLASSES = 20


def load_saved_model(path: str):
    """``(model, info, path)`` from weights, a checkpoint, or a run folder (its weights.npz,
    else its checkpoint.npz: a run stopped before its end); ``evaluate`` and ``export`` read
    their RUN_OR_WEIGHTS argument with it."""
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in ("weights.npz", CHECKPOINT_NAME)
                 if os.path.isfile(os.path.join(path, n))]
        if not found:
            raise FileNotFoundError(f"{path}: a folder without weights.npz or {CHECKPOINT_NAME}")
        path = found[0]
    if os.path.basename(path) != CHECKPOINT_NAME:
        try:
            return (*load_weights(path), path)
        except ValueError as e:
            if "format 'checkpoint'" not in str(e):
                raise
    arrays, meta = load_checkpoint(path)
    config = meta.get("config", {})
    if not config.get("model"):
        raise ValueError(f"{path}: records no model config; evaluate it from Python")
    model = model_from_config(config["model"])
    model.load_state_dict(prefixed(arrays, "param"))
    return model, dict(config.get("run_info", {})), path


def run_evaluate(args) -> int:
    model, info, args.weights = load_saved_model(args.weights)
    bad = [k for k, v in model.state_dict().items()
           if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:  # its predictions would be one constant class: a meaningless accuracy
        raise ValueError(f"{args.weights}: parameter {bad[0]} holds NaN or infinite values"
                         f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}: expected "
                         f"finite weights (did training diverge?)")
    given, labels = EVALUATE.from_args(args)
    name = given.get("dataset") or info.get("dataset")
    if not name:
        raise ValueError(f"{args.weights}: records no dataset; give --dataset")
    v = EVALUATE.resolve(({"dataset": name}, {}), (given, labels))
    out = writable_folder(v["output"] or os.path.dirname(os.path.abspath(args.weights)),
                          "--output")
    stem = os.path.join(out, f"{_stem(args.weights)}.{_stem(v['dataset'])}.{args.split}")
    mine = _report_of(stem + ".json") == os.path.abspath(args.weights)
    for path in (stem + ".json", stem + ".confusion.csv"):  # another's report stays unasked
        check_file("--output", path, overwrite=args.overwrite or mine)
    dataset = load(v["dataset"], data_dir=v["data_dir"])
    X, y = dataset.split(args.split)
    if len(y) == 0:
        raise ValueError(f"--split={args.split}: {v['dataset']} has no {args.split} samples")
    model.check_input(X.shape[1:], f"{dataset.meta.name} ({args.split} split)",
                      info.get("dataset"))
    model.to(resolve_device(v["device"]))  # None: $GPUCNN_DEVICE, as for train
    classes = dataset.meta.class_names
    k = min(v["top_k"], len(classes))
    r = evaluate(model, X, y, v["batch_size"], top_k=k, num_classes=len(classes))
    print(f"{args.weights}: accuracy {r['accuracy']:.4f} on {dataset.meta.name} {args.split} "
          f"({len(y)} samples, {int(round(r['accuracy'] * len(y)))} correct), top-{k} "
          f"{r['top_k_accuracy']:.4f}, loss {r['loss']:.4f}")
    print("\n".join(report_lines(r["confusion"], classes)))
    _save(stem, r, classes, {"weights": os.path.abspath(args.weights),
                             "dataset": dataset.meta.name, "split": args.split, "top_k": k})
    print(f"wrote {stem}.json, {stem}.confusion.csv")
    return 0


def report_lines(confusion: np.ndarray, classes) -> list[str]:
    """Each class's samples and accuracy, then the confusion matrix (rows: true class)."""
    acc, counts = per_class_accuracy(confusion), confusion.sum(axis=1)
    width = max(5, *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  {'samples':>7}  {'accuracy':>8}"]
    lines += [f"{c:<{width}}  {n:>7}  {a:>8.4f}" for c, n, a in zip(classes, counts, acc)]
    if len(classes) > PRINTED_CLASSES:
        return lines + [f"confusion matrix ({len(classes)} classes): in the saved files"]
    cell = max(4, len(str(int(confusion.max(initial=0)))), *(len(c) for c in classes))
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    lines.append(" " * width + "".join(f"  {c:>{cell}}" for c in classes))
    lines += [f"{c:<{width}}" + "".join(f"  {n:>{cell}}" for n in row)
              for c, row in zip(classes, confusion)]
    return lines


def _stem(path: str) -> str:
    """A file name's part without folder and extension ("weights", "digits")."""
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "data"


def _report_of(path: str) -> str | None:
    """The weights whose report the file ``path`` is (None: no report of ours)."""
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc.get("weights") if isinstance(doc, dict) else None


def _save(stem: str, r: dict, classes, facts: dict) -> None:
    acc = per_class_accuracy(r["confusion"])
    doc = {**facts, "samples": r["samples"], "accuracy": r["accuracy"],
           "top_k_accuracy": r["top_k_accuracy"], "loss": r["loss"], "classes": list(classes),
           "per_class_accuracy": [None if np.isnan(a) else float(a) for a in acc],
           "confusion": r["confusion"].tolist()}
    remove_stale_temps(stem + ".json")
    with atomic_write(stem + ".json") as fh:
        fh.write(json.dumps(doc, indent=1).encode())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    writer.writerows([c, *row] for c, row in zip(classes, r["confusion"].tolist()))
    remove_stale_temps(stem + ".confusion.csv")
    with atomic_write(stem + ".confusion.csv") as fh:
        fh.write(text.getvalue().encode())


def add_commands(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, top-k, per-class accuracy and confusion "
                                        "matrix of saved weights on a dataset split")
    p.add_argument("weights", help="a weights.npz or checkpoint.npz written by 'gpucnn train', "
                                   "or its output folder")
    EVALUATE.add_flags(p, {"dataset": "the one it was trained on",
                           "output": "the weights' folder"})
    p.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which split (default test)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report of other weights of the same name in --output "
                        "(refused otherwise; a report of these weights is replaced)")
    p.set_defaults(func=run_evaluate)
