"""The batch iterator that feeds the Trainer, and fixed random subsets.

The sample order of epoch ``e`` is a pure function of ``(seed, e)``, and the augmentation of
batch ``k`` of that epoch a pure function of ``(seed, e, k)`` (its generator is seeded from them,
see :mod:`gpucnn.data.augment`), so the iterator's whole state is ``(epoch, position)``: a
Trainer that saves :meth:`BatchIterator.state` and restores it with
:meth:`BatchIterator.set_state` resumes bit-identically.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_int
from ..device import resolve_device, to_device
from .augment import make_augment

SHUFFLE_STREAM, AUGMENT_STREAM, SUBSET_STREAM = 0x5F1, 0xA06, 0x5B5


def _check_pair(x, y):
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}: expected equal counts")


class BatchIterator:
    """Mini-batches ``(x (B, C, H, W), y (B,))`` of ``(x, y)`` on ``device``.

    Iterating yields the rest of the current epoch, then moves to the next; ``next_batch()``
    returns one batch and rolls over epochs by itself (for training counted in iterations).
    ``shuffle`` reorders every epoch from ``seed``.  ``augment``, a function ``(x, rng) -> x``
    (:mod:`gpucnn.data.augment`), changes each batch on its device, drawing from a generator
    seeded by ``(seed, epoch, batch)``; ``crop_pad`` > 0 (random crops after zero padding) and
    ``flip`` (mirror half the images) are the built-ins' shorthand.  On CUDA the next batch is
    copied to the GPU on a side stream while the current one is in use (see
    :meth:`next_batch`).  ``shard``, if given, maps every host batch ``(x, y)`` to the part this
    process trains on (data parallelism: the order and augmentation stay those of the global
    batch, so the augmentation then runs on the host before the shard is taken, and only the
    shard is moved to the device).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, device: str = "cpu",
                 crop_pad: int = 0, flip: bool = False, augment=None, shard=None):
        _check_pair(x, y)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        crop_pad = check_int("crop_pad", crop_pad, 0)
        shorthand = make_augment(["crop"] * bool(crop_pad) + ["flip"] * bool(flip), crop_pad)
        if shorthand is not None and augment is not None:
            raise ValueError("augment: give it, or crop_pad/flip, not both")
        self.augment = augment if augment is not None else shorthand
        if self.augment is not None and not callable(self.augment):
            raise TypeError(f"augment={self.augment!r}: expected a function (x, rng) -> x")
        if self.augment is not None and np.ndim(x) != 4:
            raise ValueError(f"augmentation needs images (N, C, H, W); x has shape {np.shape(x)}")
        if drop_last and batch_size > len(x):
            raise ValueError(f"batch_size={batch_size} with drop_last=True leaves no batch of "
                             f"the {len(x)} samples: expected batch_size <= {len(x)}")
        if len(x) == 0:
            raise ValueError("x is empty: expected at least one sample")
        self.x, self.y = x, y
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.device = resolve_device(device)
        if shard is not None and not callable(shard):
            raise TypeError(f"shard={shard!r}: expected a function (x, y) -> (x, y) or None")
        self.shard = shard
        self.epoch = self.position = 0
        self._order_cache: tuple[int, np.ndarray] | None = None
        self._uploader = None
        self._prefetched = None  # CUDA: ((seed, epoch, position), upload in flight)

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in the order they are served."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            n = len(self.x)
            idx = (np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(n)
                   if self.shuffle else np.arange(n))
            self._order_cache = (epoch, idx)
        return self._order_cache[1]

    def host_batch(self, epoch: int, k: int, augment: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``k`` of ``epoch`` as NumPy arrays (augmented if asked and ``augment``; this
        process's shard of it when a ``shard`` was given)."""
        idx = self.order(epoch)[k * self.batch_size:(k + 1) * self.batch_size]
        xb, yb = self.x[idx], self.y[idx]
        if augment:
            xb = self._augmented(xb, epoch, k)
        return (xb, yb) if self.shard is None else self.shard(xb, yb)

    def _augmented(self, xb, epoch: int, k: int):
        """Batch ``k`` of ``epoch``, ``xb``, augmented on its device (unchanged without
        augmentation)."""
        if self.augment is None:
            return xb
        return self.augment(xb, np.random.default_rng([self.seed, AUGMENT_STREAM, epoch, k]))

    def _advance(self) -> None:
        self.position += 1
        if self.position == len(self):
            self.epoch, self.position = self.epoch + 1, 0

    def next_batch(self):
        """The next batch on the device; moves on (to the next epoch after the last batch).

        On CUDA the batch after it starts uploading on a side stream before this one is
        returned, so a loop that calls ``next_batch()`` every step (the Trainer) finds each
        batch on the device or on its way.  The upload in flight is only a cache of
        ``(seed, epoch, position)``: :meth:`state` and :meth:`set_state` ignore it.
        """
        if self.device == "cpu":
            xb, yb = self.host_batch(self.epoch, self.position)
            self._advance()
            return to_device(xb, self.device), to_device(yb, self.device)
        if self._uploader is None:
            from ._prefetch import CudaUploader

            self._uploader = CudaUploader()
        up = self._uploader
        on_host = self.shard is not None  # the global batch's augmentation, before the shard
        epoch, k = self.epoch, self.position
        handle = self._take_prefetched()
        if handle is None:
            handle = up.upload(*self.host_batch(epoch, k, augment=on_host))
        self._advance()
        self._prefetched = (self._key(), up.upload(*self.host_batch(self.epoch, self.position,
                                                                    augment=on_host)))
        xb, yb = up.ready(handle)
        return (xb if on_host else self._augmented(xb, epoch, k)), yb

    def next_host_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch as NumPy arrays, moving on as :meth:`next_batch` does, for a consumer
        that copies it into device buffers of its own (a CUDA graph reads fixed ones).  An
        upload in flight from ``next_batch`` is given up."""
        handle = self._take_prefetched()
        if handle is not None:
            self._uploader.discard(handle)
        xb, yb = self.host_batch(self.epoch, self.position)
        self._advance()
        return xb, yb

    def _key(self) -> tuple[int, int, int]:
        return self.seed, self.epoch, self.position

    def _take_prefetched(self):
        """The upload of the batch at the current state, if one is in flight; a stale one (after
        set_state moved elsewhere) is given up so its device memory is released safely."""
        if self._prefetched is None:
            return None
        key, handle = self._prefetched
        self._prefetched = None
        if key == self._key():
            return handle
        self._uploader.discard(handle)
        return None

    def __iter__(self):
        # A loop that stops early leaves at most the following batch in flight, still owned
        # here (next_batch or the next loop takes it up; the uploader discards it when the
        # iterator goes away), so no device memory is dropped while a copy writes it.
        for _ in range(len(self) - self.position):
            yield self.next_batch()

    def state(self) -> dict:
        """Everything needed to resume: ``{"seed", "epoch", "position"}``."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def set_state(self, state: dict) -> None:
        """Resume from :meth:`state`; the next batch is the one that would have come next."""
        seed = check_int("state['seed']", state.get("seed"), 0)
        epoch = check_int("state['epoch']", state.get("epoch"), 0)
        position = check_int("state['position']", state.get("position"), 0)
        if position >= len(self):
            raise ValueError(f"state['position']={position}: expected < {len(self)} batches "
                             f"per epoch")
        self.seed, self.epoch, self.position = seed, epoch, position
        self._order_cache = None


def random_subset(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``n`` samples (no repeats, original order), chosen by ``seed``.

    For instance accuracy on 1000 training samples after each epoch.
    """
    _check_pair(x, y)
    n = check_int("n", n, 1)
    if n > len(x):
        raise ValueError(f"n={n}: expected at most the {len(x)} samples available")
    idx = np.sort(np.random.default_rng([check_int("seed", seed, 0), SUBSET_STREAM])
                  .choice(len(x), n, replace=False))
    return x[idx], y[idx]
