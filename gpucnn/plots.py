"""Plots of the experiments: accuracy and loss curves, and first-layer filters as an image grid.

matplotlib is the ``plot`` extra and is imported lazily with the Agg backend (no display needed).
Without it :func:`pyplot` returns None and the experiments still write their tables; the first
time that happens in a process it prints how to get the plots, and never again.
"""
from __future__ import annotations

import sys

import numpy as np

PLOT_HINT = "plots skipped: matplotlib is not installed; get them with: pip install 'gpucnn[plot]'"
_hint_given = False
BORDER_RGB = (0.3, 0.45, 0.75)  # between filter tiles: a colour no grey filter can take


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or None (after a one-time hint) without it."""
    global _hint_given
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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


def plot_loss(path: str, curves: list[dict], title: str) -> str | None:
    """Training loss per iteration (faint) and its per-epoch mean (markers), one colour per curve.

    Each curve is ``{"label", "loss" (per iteration), "epoch_loss" (None first, then per epoch)}``.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, c in enumerate(curves):
        colour = f"C{i % 10}"
        loss = np.asarray(c["loss"], dtype=float)
        per_epoch = [v for v in c["epoch_loss"] if v is not None]
        ipe = len(loss) // max(len(per_epoch), 1)
        ax.plot(np.arange(1, len(loss) + 1), loss, color=colour, alpha=0.25, lw=0.7)
        ax.plot(ipe * np.arange(1, len(per_epoch) + 1), per_epoch, "-o", color=colour, ms=4,
                label=f"{c['label']} (epoch mean)")
    ax.set(title=title, xlabel="iteration", ylabel="training loss (data + L2)", yscale="log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


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


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
