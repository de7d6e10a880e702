"""``gpucnn plot RUN``: a training run's curves (loss, accuracy, learning rate per epoch) from
its ``metrics.csv``, drawn to a PNG (matplotlib, the ``plot`` extra) that names the run, as the
run's other files do: plotting the run again replaces it, any other file is replaced only with
``--overwrite``."""
from __future__ import annotations

import os

from .. import plots
from ..train.folder import CURVES_NAME, PNG_RUN_KEY, plot_run_id
from ..train.metrics import METRICS_NAME, read_metrics
from .outputs import check_file


def run_plot(args) -> int:
    path = args.run
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{args.run}: expected a run folder written by 'gpucnn train' "
                                f"(with {METRICS_NAME}) or its {METRICS_NAME}")
    plots.pyplot(required=True)  # before any reading: the one-line error names the extra
    metrics = read_metrics(path)
    if not metrics["epoch"]:
        raise ValueError(f"{path}: no epochs yet")
    run_id = metrics["run_id"][0] or None
    out = args.png or os.path.join(os.path.dirname(path), CURVES_NAME)
    mine = run_id is not None and os.path.isfile(out) and plot_run_id(out) == run_id
    check_file("--png", out, overwrite=args.overwrite or mine)
    plots.plot_run(out, metrics, os.path.basename(os.path.dirname(os.path.abspath(path))),
                   {PNG_RUN_KEY: run_id} if run_id else None)
    print(f"wrote {out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("plot", help="draw a training run's loss, accuracy and learning rate "
                                    "per epoch to a PNG")
    p.add_argument("run", help="the output folder of 'gpucnn train' (or its metrics.csv)")
    p.add_argument("--png", help=f"the image to write (default RUN/{CURVES_NAME}; a plot of the "
                                 f"same run there is replaced)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --png if it holds anything but a plot of this run")
    p.set_defaults(func=run_plot)
