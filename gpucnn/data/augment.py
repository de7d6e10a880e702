"""Augmentation of training batches: random crops after zero padding and horizontal flips (the
CIFAR-10 recipe), named as in torchvision.transforms.

An augmentation is any function ``(X, rng) -> X``: ``X`` a batch (N, C, H, W) on its device
(NumPy or CuPy), ``rng`` a NumPy ``Generator`` that :class:`gpucnn.data.BatchIterator` seeds from
``(seed, epoch, batch index)``, so a batch's augmentation is fixed by the seed and a resumed run
repeats it bit for bit.  The built-ins draw a few numbers per sample on the host, upload them in
one array and move the pixels on the batch's device: the same draws give the same images on the
CPU and on the GPU.  Zero padding of mean-subtracted data pads with the mean pixel value.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_int, check_real
from ..device import get_array_module

# The names of the built-ins (``--augment flip,crop``), applied in the order given.
AUGMENTATIONS = ("flip", "crop")


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``: X (N, C, H, W) -> same shape."""

    def __init__(self, p: float = 0.5):
        self.p = check_real("p", p, 0.0, 1.0, high_open=False)

    def __call__(self, X, rng: np.random.Generator):
        xp = get_array_module(X)
        flips = xp.asarray(rng.random(len(X)) < self.p)
        return xp.where(flips[:, None, None, None], X[..., ::-1], X)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Pad each image with ``padding`` zeros on every side, then crop it back to its size at an
    offset drawn uniformly per image: X (N, C, H, W) -> same shape."""

    def __init__(self, padding: int = 4):
        self.padding = check_int("padding", padding, 0)

    def __call__(self, X, rng: np.random.Generator):
        xp = get_array_module(X)
        n, c, h, w = X.shape
        p = self.padding
        offsets = xp.asarray(rng.integers(0, 2 * p + 1, (2, n)))  # rows, columns: one upload
        padded = xp.zeros((n, c, h + 2 * p, w + 2 * p), X.dtype)
        padded[:, :, p:p + h, p:p + w] = X
        rows = offsets[0][:, None] + xp.arange(h)
        cols = offsets[1][:, None] + xp.arange(w)
        return padded[xp.arange(n)[:, None, None, None], xp.arange(c)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


class Compose:
    """Apply ``augmentations`` in order, each drawing from the same generator."""

    def __init__(self, augmentations):
        self.augmentations = list(augmentations)
        for a in self.augmentations:
            if not callable(a):
                raise TypeError(f"augmentation {a!r}: expected a function (X, rng) -> X")

    def __call__(self, X, rng: np.random.Generator):
        for augment in self.augmentations:
            X = augment(X, rng)
        return X

    def __repr__(self):
        return f"Compose({self.augmentations!r})"


def make_augment(items, crop_pad: int = 4):
    """One function ``(X, rng) -> X`` from a list of built-in names (:data:`AUGMENTATIONS`;
    "crop" pads by ``crop_pad``) and functions, in order; None for an empty list."""
    steps = []
    for item in items:
        if callable(item):
            steps.append(item)
        elif item == "flip":
            steps.append(RandomHorizontalFlip())
        elif item == "crop":
            steps.append(RandomCrop(crop_pad))
        else:
            raise ValueError(f"augment={item!r}: expected one of {', '.join(AUGMENTATIONS)} or "
                             f"a function (X, rng) -> X")
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Compose(steps)


def describe(items) -> list[str]:
    """JSON-able names of an augment list: built-in names as they are, functions by module and
    name, other callables by their repr if their class has one (``RandomCrop(padding=2)``),
    else by their class's module and name."""
    def name(item):
        if isinstance(item, str):
            return item
        if hasattr(item, "__qualname__"):
            return f"{getattr(item, '__module__', '?')}.{item.__qualname__}"
        if type(item).__repr__ is not object.__repr__:
            return repr(item)
        return f"{type(item).__module__}.{type(item).__qualname__}"

    return [name(i) for i in items]
