"""``load(name)``: a dataset as train / validation / test arrays plus its metadata."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ..checks import check_int, check_real
from . import cifar, idx
from .batches import BatchIterator, random_subset
from .own import read_own
from .digits import CITATION as DIGITS_CITATION, MAX_VALUE as DIGITS_MAX, load_digits
from .preprocess import (channel_stats, gather_scaled, normalize_,
                         stratified_split)
from .sources import Source, get_source
from .synthetic import class_names as synthetic_class_names, synthetic_images

DATASETS = ("digits", "synthetic", "mnist", "fashion-mnist", "cifar10")
NORMALIZE = ("none", "mean", "standardize")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Meta:
    """What a model and an evaluation need to know about a loaded dataset.

    ``mean`` / ``std`` are per channel, in the [0, 1] pixel scale, computed on the training
    split only; ``std`` is None unless standardised.  Apply them to new images with
    :meth:`normalize` so evaluation sees what training saw.
    """

    name: str
    class_names: tuple[str, ...]
    shape: tuple[int, int, int]           # (C, H, W) of one image
    mean: tuple[float, ...]
    std: tuple[float, ...] | None
    source: str                           # citation, or the files read
    seed: int
    sizes: tuple[int, int, int]           # (train, validation, test) sample counts

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """A normalised float32 copy of images ``x`` (N, C, H, W) already scaled to [0, 1]."""
        return normalize_(np.array(x, np.float32), self.mean, self.std)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Dataset:
    """Float32 images (N, C, H, W), normalised as ``meta`` says, and int64 labels per split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: Meta

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"which={which!r}: expected 'train', 'val' or 'test'")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")

    def batches(self, batch_size: int, split: str = "train", **kwargs) -> BatchIterator:
        """A :class:`BatchIterator` over one split; ``kwargs`` go to it (seed, device, ...)."""
        return BatchIterator(*self.split(split), batch_size, **kwargs)

    def subset(self, n: int, split: str = "train", seed: int = 0):
        """A fixed random ``(x, y)`` of ``n`` samples of a split (e.g. 1000 training samples)."""
        return random_subset(*self.split(split), n, seed)


def _split_own(path, val_fraction, test_fraction, seed):
    """The train, validation and test ``(x float32, y)`` of one's own data (:mod:`.own`) and its
    class names: the splits the source lacks are held out of its training split, stratified."""
    splits, classes, scale = read_own(path)
    missing = [s for s in ("val", "test") if s not in splits]
    fractions = {"val": val_fraction, "test": test_fraction}
    if sum(fractions[s] for s in missing) >= 1:
        raise ValueError(f"val_fraction={val_fraction} + test_fraction={test_fraction}: "
                         f"expected a sum below 1, leaving training data")
    images, labels = splits.pop("train")
    parts = stratified_split(labels, tuple(fractions[s] for s in missing), seed)
    index_sets = dict(zip(["train", *missing], parts))
    out = dict(zip(index_sets, gather_scaled([(images, labels)], list(index_sets.values()),
                                             scale)))
    for split, (x, y) in splits.items():
        (out[split],) = gather_scaled([(x, y)], [np.arange(len(y))], scale)
    return out["train"], out["val"], out["test"], classes


def load(name: str = "digits", *, data_dir=None, seed: int = 0, val_fraction: float = 0.1,
         test_fraction: float = 0.2, normalize: str = "mean", source: Source | None = None,
         **synthetic) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) as a :class:`Dataset`.

    Pixels are scaled to [0, 1], then per-channel statistics of the training split are
    subtracted (``normalize="mean"``), also divided out (``"standardize"``), or not
    (``"none"``).  ``val_fraction`` of the training data, stratified by class and chosen by
    ``seed``, becomes the validation split; "digits" and "synthetic" have no official test set
    and hold out ``test_fraction`` of the data the same way.  MNIST, Fashion-MNIST and CIFAR-10
    are read from ``data_dir`` (see :mod:`gpucnn.data.sources`); ``source`` replaces their
    registered checksums.  ``synthetic`` takes :func:`synthetic_images`'s keyword arguments,
    ``n`` (default 2000) among them.  ``name`` may also be the path of one's own data, an
    ``.npz`` file or a folder of class folders (:mod:`gpucnn.data.own`): the validation and
    test splits it lacks are held out of its training split as for the digits.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    own = isinstance(name, str) and name.lower() not in DATASETS and os.path.exists(name)
    if not own and (not isinstance(name, str) or name.lower() not in DATASETS):
        raise ValueError(f"name={name!r}: unknown dataset; expected one of {', '.join(DATASETS)} "
                         f"or the path of an .npz file or of a folder of class folders")
    name = name if own else name.lower()
    if synthetic and name != "synthetic":
        raise ValueError(f"{', '.join(sorted(synthetic))}: options of the synthetic dataset, "
                         f"not of {name!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r}: expected one of {', '.join(NORMALIZE)}")
    check_int("seed", seed, 0)
    val_fraction = check_real("val_fraction", val_fraction, 0, 1, low_open=True)
    test_fraction = check_real("test_fraction", test_fraction, 0, 1, low_open=True)

    if own:
        (xtr, ytr), (xva, yva), (xte, yte), classes = _split_own(name, val_fraction,
                                                                 test_fraction, seed)
        origin = os.path.abspath(name)
    elif name in ("digits", "synthetic"):
        if val_fraction + test_fraction >= 1:
            raise ValueError(f"val_fraction={val_fraction} + test_fraction={test_fraction}: "
                             f"expected a sum below 1, leaving training data")
        if name == "digits":
            images, labels = load_digits()
            scale, classes, origin = 1 / DIGITS_MAX, DIGIT_CLASSES, DIGITS_CITATION
        else:
            options = {"n": 2000, "seed": seed, **synthetic}
            images, labels = synthetic_images(**options)
            scale, origin = 1.0, f"synthetic stripes {options}"
            classes = synthetic_class_names(options.get("num_classes", 10))
        train_ix, val_ix, test_ix = stratified_split(labels, (val_fraction, test_fraction), seed)
        chunks = [(images, labels)]
        del images, labels
        (xtr, ytr), (xva, yva), (xte, yte) = gather_scaled(chunks, [train_ix, val_ix, test_ix],
                                                           scale)
    else:
        src = get_source(name, source)
        if name == "cifar10":
            train_chunks, test, class_names, path = cifar.load_cifar10(name, src, data_dir)
            classes, origin = class_names, path
        else:
            train, test, paths = idx.load_idx_dataset(name, src, data_dir)
            train_chunks = [train]
            classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
            origin = ", ".join(paths)
        labels = np.concatenate([c[1] for c in train_chunks])
        train_ix, val_ix = stratified_split(labels, (val_fraction,), seed)
        (xtr, ytr), (xva, yva) = gather_scaled(train_chunks, [train_ix, val_ix], 1 / 255)
        test_chunks = [test]
        del test
        ((xte, yte),) = gather_scaled(test_chunks, [np.arange(len(test_chunks[0][1]))], 1 / 255)

    for split, x in (("validation", xva), ("training", xtr)):
        if len(x) == 0:
            raise ValueError(f"val_fraction={val_fraction}: leaves no {split} samples")
    mean, std = (channel_stats(xtr, normalize == "standardize") if normalize != "none"
                 else (np.zeros(xtr.shape[1]), None))
    if normalize != "none":
        for x in (xtr, xva, xte):
            normalize_(x, mean, std)
    meta = Meta(name, tuple(classes), tuple(xtr.shape[1:]), tuple(float(m) for m in mean),
                None if std is None else tuple(float(s) for s in std), origin, int(seed),
                (len(xtr), len(xva), len(xte)))
    return Dataset(xtr, ytr, xva, yva, xte, yte, meta)

