"""Procedurally generated labelled images whose class is their stripe orientation.

Image ``i`` shows a patch of parallel stripes (a cosine grating under a Gaussian window) whose
orientation is ``pi * (label + jitter) / num_classes``, with random phase, frequency, window
position and per-channel contrast, plus uniform pixel noise (256 levels).  Images are drawn in fixed blocks
of ``BLOCK`` from a generator seeded by ``(seed, block number)``, so image ``i`` is a pure
function of ``(seed, i)``: generating ``start .. start + n - 1`` in pieces gives exactly the
pieces of one large draw, which lets scaling benchmarks stream sets that do not fit in memory.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_int

BLOCK = 128  # images per generator seed and per vectorised step


def synthetic_images(n: int, *, size: int = 32, channels: int = 3, num_classes: int = 10,
                     seed: int = 0, start: int = 0, noise: float = 0.2
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + n - 1``: (x (n, channels, size, size) float32 in [0, 1], y (n,) int64).

    ``noise`` is the half-width of the uniform pixel noise (0 gives clean stripes).  Classes
    are equally likely.  Orientations of neighbouring classes differ by 180/num_classes
    degrees, so many classes on tiny images make a hard problem.
    """
    check_int("n", n, 0)
    check_int("size", size, 4)
    check_int("channels", channels, 1)
    check_int("num_classes", num_classes, 2)
    check_int("seed", seed, 0)
    check_int("start", start, 0)
    if not 0 <= noise <= 1:
        raise ValueError(f"noise={noise!r}: expected a number in [0, 1]")
    x = np.empty((n, channels, size, size), np.float32)
    y = np.empty(n, np.int64)
    stop, pos = start + n, start
    while pos < stop:
        block = pos // BLOCK
        lo, hi = pos - block * BLOCK, min(stop - block * BLOCK, BLOCK)
        bx, by = _block(np.random.default_rng([seed, block]), size, channels, num_classes,
                        np.float32(noise))
        x[pos - start:pos - start + hi - lo], y[pos - start:pos - start + hi - lo] = \
            bx[lo:hi], by[lo:hi]
        pos += hi - lo
    return x, y


def _block(rng, size, channels, num_classes, noise):
    n, f32 = BLOCK, np.float32
    label = rng.integers(0, num_classes, n)
    u = rng.random((6, n), dtype=f32)
    theta = f32(np.pi) * (label + (u[0] - 0.5) * 0.5).astype(f32) / num_classes
    freq = 1.5 + 1.5 * u[1]                          # cycles across the image
    phase = f32(2 * np.pi) * u[2]
    cx, cy = 0.8 * u[3] - 0.4, 0.8 * u[4] - 0.4      # window centre; the image spans [-1, 1]
    grid = np.linspace(-1, 1, size, dtype=f32)
    gy, gx = grid[None, :, None], grid[None, None, :]
    along = gx * np.cos(theta)[:, None, None] + gy * np.sin(theta)[:, None, None]
    stripes = np.cos(f32(np.pi) * freq[:, None, None] * along + phase[:, None, None])
    window = np.exp(-((gx - cx[:, None, None]) ** 2 + (gy - cy[:, None, None]) ** 2) / f32(0.5))
    contrast = 0.25 + 0.2 * rng.random((n, channels, 1, 1), dtype=f32)
    img = contrast * (stripes * window)[:, None]     # (n, channels, size, size)
    img += f32(0.5) - noise
    if noise:
        # 256-level noise from random bytes: a third of the cost of float draws
        img += np.multiply(rng.integers(0, 256, img.shape, dtype=np.uint8),
                           2 * noise / f32(255), dtype=f32)
    np.clip(img, 0, 1, out=img)
    return img, label


def class_names(num_classes: int) -> tuple[str, ...]:
    """Names saying each class's stripe orientation in degrees."""
    return tuple(f"stripes {180 * c / num_classes:g}deg" for c in range(num_classes))
