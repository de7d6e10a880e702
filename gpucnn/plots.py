"""Plots of the experiments: accuracy curves (with bands across seeds), gaps with intervals, and
first-layer filters as an image grid; and a training run's curves (``gpucnn plot``).

matplotlib is the ``plot`` extra and is imported lazily with the Agg backend (no display needed).
Without it :func:`pyplot` returns None and the experiments still write their tables; the first
time that happens in a process it prints how to get the plots, and never again.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .files import atomic_write

PLOT_HINT = "plots skipped: matplotlib is not installed; get them with: pip install 'gpucnn[plot]'"
_hint_given = False
BORDER_RGB = (0.3, 0.45, 0.75)  # between filter tiles: a colour no grey filter can take
FORMATS = (".png", ".pdf", ".svg")  # what a plot's file name may end in


def pyplot(required: bool = False):
    """``matplotlib.pyplot`` on the Agg backend, or None (after a one-time hint) without it;
    ``required``: a RuntimeError without it instead (for a command that only plots)."""
    global _hint_given
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if required:
            raise RuntimeError("matplotlib is not installed: pip install 'gpucnn[plot]'") from None
        if not _hint_given:
            _hint_given = True
            print(PLOT_HINT, file=sys.stderr)
        return None
    return plt


def plot_accuracy(path: str, curves: list[dict], title: str) -> str | None:
    """Train (solid) and validation (dashed) accuracy per epoch, one colour per curve.

    Each curve is ``{"label", "train_acc", "val_acc"}`` with epoch 0 first.  The left panel shows
    every epoch; the right one zooms on epochs 1 on, where the runs differ.  Returns ``path``, or
    None when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, first in zip(axes, (0, 1)):
        for i, c in enumerate(curves):
            colour = f"C{i % 10}"
            epochs = np.arange(len(c["train_acc"]))[first:]
            ax.plot(epochs, c["train_acc"][first:], "-", color=colour, marker="o", ms=3,
                    label=f"{c['label']} train")
            ax.plot(epochs, c["val_acc"][first:], "--", color=colour, marker="s", ms=3,
                    label=f"{c['label']} validation")
        ax.set_xticks(np.arange(first, max(len(c["train_acc"]) for c in curves)))
        ax.set(xlabel="epoch (0 = before training)", ylabel="accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_title("all epochs")
    axes[1].set_title("from epoch 1 (zoomed)")
    axes[1].legend(fontsize=8, loc="lower right", ncol=1 if len(curves) <= 3 else 2)
    fig.suptitle(title)
    return _save(plt, fig, path)


def _size_label(cell: dict) -> str:
    return "full" if cell["train_size"] == "full" else f"{cell['num_train']} samples"


def plot_gaps(path: str, cells: list[dict], sizes: list[dict], title: str) -> str | None:
    """Left: the final train - validation gap per training-set size (groups along x) and
    configuration (colour): the mean across seeds, its 95% interval as a bar, each seed a dot.
    Right: each configuration's change of the gap, paired by seed, with its 95% interval (the
    verdicts' basis; pairing makes these intervals narrower than the left ones suggest).

    Each cell is ``{"train_size", "num_train", "label", "gaps" (seed -> gap), "gap"}``; each
    size ``{"train_size", "comparisons": [{"kind", "to", "gap_change"}]}``; ``gap`` and
    ``gap_change`` are intervals (``mean``, ``low``, ``high``, ``n``).  None without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return None
    order = list(dict.fromkeys(c["train_size"] for c in cells))
    labels = list(dict.fromkeys(c["label"] for c in cells))
    width = 0.8 / len(labels)
    fig, (left, right) = plt.subplots(1, 2, figsize=(4 + 3.6 * len(order), 4.8))
    for c in cells:
        j = labels.index(c["label"])
        x = order.index(c["train_size"]) + (j - (len(labels) - 1) / 2) * width
        seeds = np.asarray(list(c["gaps"].values()), dtype=float)
        left.scatter(np.full(len(seeds), x + width * 0.25), seeds, s=8, color=f"C{j}",
                     alpha=0.4)
        _interval(left, x, c["gap"], f"C{j}", "o",
                  c["label"] if order.index(c["train_size"]) == 0 else None)
    for s in sizes:
        for c in s["comparisons"]:
            j = labels.index(c["to"])
            own = c["kind"] == "dropout on L2"
            x = order.index(s["train_size"]) + (j - (len(labels) - 1) / 2 + own / 2) * width
            label = (f"{c['to']} vs {c['from']}"
                     if order.index(s["train_size"]) == 0 else None)
            _interval(right, x, c["gap_change"], f"C{j}", "D" if own else "o", label,
                      hollow=own)
    ticks = [_size_label(next(c for c in cells if c["train_size"] == s)) for s in order]
    for ax in (left, right):
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(ticks)
        ax.set_xlabel("training set")
        ax.grid(alpha=0.3, axis="y")
        if ax.get_legend_handles_labels()[1]:  # a grid without comparisons has none to name
            ax.legend(fontsize=7)
    left.set(ylabel="final train - validation accuracy", title="gap per configuration")
    right.set(ylabel="change of the gap (negative = narrower)",
              title="change against the comparison run, paired by seed")
    fig.suptitle(title)
    return _save(plt, fig, path)


def _interval(ax, x, iv, colour, marker, label, hollow=False):
    """A mean with its 95% interval as an error bar (none for a single seed)."""
    yerr = None if iv.n < 2 else [[iv.mean - iv.low], [iv.high - iv.mean]]
    ax.errorbar([x], [iv.mean], yerr=yerr, fmt=marker, color=colour, capsize=4, ms=6,
                mfc="white" if hollow else colour, label=label)


def plot_sweep(path: str, rows: dict, title: str) -> str | None:
    """Per swept parameter (column), top: the final training (hollow) and validation (filled)
    accuracy per value, mean across seeds with its 95% interval; bottom: each value's change
    against the base net, paired by seed, with its 95% interval: validation accuracy (circles)
    and gap (diamonds); the base net's own value has none.

    ``rows`` maps a parameter to its values, each ``{"value", "cell": {"intervals": {"train",
    "val"}}, "comparison": None or {"changes": {"val", "gap"}}}`` (intervals: ``mean``, ``low``,
    ``high``, ``n``).  None without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(2, len(rows), figsize=(0.8 + 3.4 * len(rows), 6.4), sharey="row",
                             squeeze=False)
    named = set()  # each legend entry once

    def label(text):
        if text in named:
            return None
        named.add(text)
        return text

    for j, (param, entries) in enumerate(rows.items()):
        top, bottom = axes[0, j], axes[1, j]
        for i, e in enumerate(entries):
            iv, c = e["cell"]["intervals"], e["comparison"]
            _interval(top, i - 0.12, iv["train"], "C0", "o", label("training"), hollow=True)
            _interval(top, i + 0.12, iv["val"], "C1", "o", label("validation"))
            if c is not None:
                _interval(bottom, i - 0.12, c["changes"]["val"], "C1", "o",
                          label("validation accuracy"))
                _interval(bottom, i + 0.12, c["changes"]["gap"], "C3", "D", label("gap"),
                          hollow=True)
        ticks = [f"{e['value']:g}" + (" (base)" if e["comparison"] is None else "")
                 for e in entries]
        for ax in (top, bottom):
            ax.set_xticks(range(len(entries)))
            ax.set_xticklabels(ticks)
            ax.set_xlim(-0.5, len(entries) - 0.5)
            ax.grid(alpha=0.3, axis="y")
        bottom.axhline(0, color="0.4", lw=0.8)
        top.set_title(param)
        bottom.set_xlabel(param)
    axes[0, 0].set_ylabel("final accuracy")
    axes[1, 0].set_ylabel("change against the base net")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(plt, fig, path)


def plot_curves(path: str, cells: list[dict], title: str) -> str | None:
    """Mean accuracy per epoch with a 95% band, a panel per (training-set size, configuration):
    training solid, validation dashed, epochs 1 on.

    Each cell is ``{"train_size", "num_train", "label", "train_curve", "train_band",
    "val_curve", "val_band"}`` (per epoch, epoch 0 first).  None without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return None
    sizes = list(dict.fromkeys(c["train_size"] for c in cells))
    labels = list(dict.fromkeys(c["label"] for c in cells))
    fig, axes = plt.subplots(len(sizes), len(labels), figsize=(3.6 * len(labels),
                                                                2.9 * len(sizes)),
                             sharex=True, sharey="row", squeeze=False)
    for c in cells:
        ax = axes[sizes.index(c["train_size"]), labels.index(c["label"])]
        for key, style, colour in (("train", "-", "C0"), ("val", "--", "C1")):
            mean = np.asarray(c[f"{key}_curve"])[1:]
            half = np.asarray(c[f"{key}_band"])[1:]
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, style, color=colour, marker="o", ms=3,
                    label="training" if key == "train" else "validation")
            ax.fill_between(epochs, mean - half, mean + half, color=colour, alpha=0.25, lw=0)
            ax.set_xticks(epochs)
        ax.set_title(f"{c['label']}, {_size_label(c)}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return _save(plt, fig, path)


def plot_run(path: str, metrics: dict, title: str, text: dict | None = None) -> str:
    """A run's loss, accuracy and learning rate per epoch from its ``metrics.csv`` columns
    (:func:`gpucnn.train.metrics.read_metrics`), three panels side by side, written at ``path``
    (a PNG, holding the entries of ``text`` as text chunks, unless its name ends in .pdf or
    .svg).  Needs matplotlib (a RuntimeError without it)."""
    plt = pyplot(required=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    epochs = np.asarray(metrics["epoch"])
    for ax, name in zip(axes[:2], ("loss", "acc")):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = np.array([np.nan if v is None else v for v in metrics[f"{split}_{name}"]])
            ax.plot(epochs, values, style, ms=3,
                    label=("training" if split == "train" else "validation"))
        ax.set(xlabel="epoch (0 = before training)",
               ylabel="loss" if name == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("loss (training: mean of the epoch's updates)", fontsize=9)
    axes[1].set_title("accuracy", fontsize=9)
    lr = np.asarray(metrics["lr"])
    axes[2].plot(epochs, lr, "-o", ms=3, color="C2")
    if lr.min() > 0 and lr.max() / lr.min() > 10:
        axes[2].set_yscale("log")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    axes[2].grid(alpha=0.3)
    fig.suptitle(title)
    return _save(plt, fig, path, text)


def filter_grid(weights: np.ndarray, pad: int = 1) -> np.ndarray:
    """First-layer filters (F, C, KH, KW) as one image, each tile scaled to [0, 1] on its own.

    Three input channels give an RGB grid (H, W, 3); any other count gives one grey tile per
    (filter, channel), a grid (H, W).  Tiles are laid out row-major, about square, with ``pad``
    pixels of NaN between them (so a border never looks like a filter value).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"weights: expected conv filters (F, C, KH, KW), got shape {w.shape}")
    tiles = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else w.reshape(-1, *w.shape[2:])
    lo = tiles.min(axis=tuple(range(1, tiles.ndim)), keepdims=True)
    hi = tiles.max(axis=tuple(range(1, tiles.ndim)), keepdims=True)
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1.0)
    n, kh, kw = tiles.shape[:3]
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    grid = np.full((rows * (kh + pad) + pad, cols * (kw + pad) + pad) + tiles.shape[3:], np.nan)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (kh + pad), pad + c * (kw + pad)
        grid[y:y + kh, x:x + kw] = tile
    return grid


def plot_filters(path: str, weights: np.ndarray, title: str) -> str | None:
    """:func:`filter_grid` of ``weights`` written as a PNG at ``path`` (None without matplotlib)."""
    grid = filter_grid(weights)
    if grid.ndim == 2:
        grid = np.repeat(grid[..., None], 3, axis=-1)
    grid[np.isnan(grid).any(axis=-1)] = BORDER_RGB
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + 0.6))
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return _save(plt, fig, path)


def _save(plt, fig, path: str, text: dict | None = None) -> str:
    """Written atomically, to ``path`` exactly (in the format its ending names, else PNG; a
    PNG with the entries of ``text`` as text chunks)."""
    fig.tight_layout()
    ext = os.path.splitext(path)[1].lower()
    fmt = ext[1:] if ext in FORMATS else "png"
    with atomic_write(path) as fh:
        fig.savefig(fh, format=fmt, dpi=120, metadata=text if fmt == "png" else None)
    plt.close(fig)
    return path
