"""``gpucnn plot RUN``: a training run's curves (loss, accuracy, learning rate per epoch) from
its ``metrics.csv``, drawn to a PNG (matplotlib, the ``plot`` extra)."""
from __future__ import annotations

import os

from .. import plots
from ..train.metrics import METRICS_NAME, read_metrics
from .outputs import check_file


def run_plot(args) -> int:
    path = args.run
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{args.run}: expected a run folder written by 'gpucnn train' "
                                f"(with {METRICS_NAME}) or its {METRICS_NAME}")
    out = check_file("--png", args.png or os.path.join(os.path.dirname(path), "curves.png"))
    plots.pyplot(required=True)  # before any reading: the one-line error names the extra
    metrics = read_metrics(path)
    if not metrics["epoch"]:
        raise ValueError(f"{path}: no epochs yet")
    plots.plot_run(out, metrics, os.path.basename(os.path.dirname(os.path.abspath(path))))
    print(f"wrote {out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("plot", help="draw a training run's loss, accuracy and learning rate "
                                    "per epoch to a PNG")
    p.add_argument("run", help="the output folder of 'gpucnn train' (or its metrics.csv)")
    p.add_argument("--png", help="the image to write (default RUN/curves.png)")
    p.set_defaults(func=run_plot)
