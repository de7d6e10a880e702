"""Splitting and preprocessing: stratified splits, scaling to [0, 1] and per-channel
normalisation (augmentation is :mod:`gpucnn.data.augment`).

Large sets are handled in pieces so that loading CIFAR-10 holds little more than the float32
result in memory: images are converted from uint8 chunk by chunk, and statistics and
normalisation run in place over blocks of samples.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

SPLIT_STREAM = 0x5B1  # keeps the split's draws apart from other users of the same seed
_BLOCK = 1024  # samples per step of the blockwise passes (bounds temporaries)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int
                     ) -> list[np.ndarray]:
    """Split sample indices by class: ``[rest, part_1, part_2, ...]``, each sorted.

    Part ``k`` takes ``round(fractions[k] * N)`` samples, shared among the classes in
    proportion to their counts (largest remainders get the odd samples), chosen at random
    from ``seed``; the rest is what remains.  Deterministic for a given (labels, fractions,
    seed).
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng([seed, SPLIT_STREAM])
    perm = rng.permutation(n)
    order = perm[np.argsort(labels[perm], kind="stable")]   # by class, random within a class
    counts = np.bincount(labels, minlength=int(labels.max()) + 1 if n else 0)
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    cls = labels[order]
    parts, lower = [], np.zeros_like(counts)
    for f in fractions:
        upper = lower + _apportion(f, counts)
        parts.append(np.sort(order[(rank >= lower[cls]) & (rank < upper[cls])]))
        lower = upper
    return [np.sort(order[rank >= lower[cls]])] + parts


def _apportion(fraction: float, counts: np.ndarray) -> np.ndarray:
    """Per-class sample counts summing to round(fraction * total), each within 1 of its share."""
    quota = fraction * counts
    take = np.floor(quota).astype(counts.dtype)
    extra = int(round(fraction * counts.sum())) - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    return take


def gather_scaled(chunks: list[tuple[np.ndarray, np.ndarray]], index_sets: list[np.ndarray],
                  scale: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pick the samples ``index_sets`` (sorted global indices) out of uint8 ``chunks`` as float32.

    ``chunks`` is a list of ``(images (n_k, C, H, W) uint8, labels (n_k,))`` that together
    index 0..N-1; it is emptied as it is consumed, so each chunk is freed once converted.
    Returns one ``(images * scale as float32, labels)`` pair per index set.
    """
    shape = chunks[0][0].shape[1:]
    outs = [(np.empty((len(ix),) + shape, np.float32), np.empty(len(ix), np.int64))
            for ix in index_sets]
    offset = 0
    while chunks:
        images, labels = chunks.pop(0)
        end = offset + len(images)
        for ix, (ox, oy) in zip(index_sets, outs):
            a, b = np.searchsorted(ix, [offset, end])
            local = ix[a:b] - offset
            oy[a:b] = labels[local]
            for lo in range(0, b - a, _BLOCK):  # small gathers: no chunk-sized temporaries
                sel = local[lo:lo + _BLOCK]
                np.multiply(images[sel], np.float32(scale), out=ox[a + lo:a + lo + len(sel)],
                            dtype=np.float32)
        offset = end
        del images, labels
        _return_freed_memory()
    return outs


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; elsewhere nothing happens).

    A CIFAR-10 batch (30 MB) is below glibc's largest mmap threshold, so it lives on the heap
    and stays resident after it is freed: without this, loading CIFAR-10 peaks ~120 MB higher.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError, TypeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def channel_stats(x: np.ndarray, with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel mean (and std) of ``x`` (N, C, H, W), accumulated in float64 by blocks."""
    c = x.shape[1]
    count = x.shape[0] * x.shape[2] * x.shape[3]
    total = np.zeros(c)
    for lo in range(0, len(x), _BLOCK):
        total += x[lo:lo + _BLOCK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / max(count, 1)
    if not with_std:
        return mean, None
    sq = np.zeros(c)
    m32 = mean.astype(np.float32)[None, :, None, None]
    for lo in range(0, len(x), _BLOCK):
        d = x[lo:lo + _BLOCK] - m32
        sq += np.einsum("nchw,nchw->c", d, d, dtype=np.float64)
    std = np.sqrt(sq / max(count, 1))
    return mean, np.where(std > 0, std, 1.0)  # a constant channel is left unscaled


def normalize_(x: np.ndarray, mean, std=None) -> np.ndarray:
    """In place: ``x = (x - mean) / std`` per channel (std None: only subtract); returns x."""
    m = np.asarray(mean, np.float32)[None, :, None, None]
    inv = None if std is None else (1 / np.asarray(std, np.float32))[None, :, None, None]
    for lo in range(0, len(x), _BLOCK):
        block = x[lo:lo + _BLOCK]
        block -= m
        if inv is not None:
            block *= inv
    return x
