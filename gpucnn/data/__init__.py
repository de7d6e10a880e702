"""Datasets and the batch iterator.

``load(name)`` gives a :class:`Dataset` (train / validation / test arrays, float32 (N, C, H, W)
and int64 labels, plus :class:`Meta`).  "digits" ships inside the package; "synthetic" is
generated; "mnist", "fashion-mnist" and "cifar10" are read from a local folder that
``gpucnn data download NAME`` fills; a path loads one's own data (:mod:`.own`).  Training
batches are augmented by the functions of :mod:`.augment`.
"""
from .augment import AUGMENTATIONS, Compose, RandomCrop, RandomHorizontalFlip
from .batches import BatchIterator, random_subset
from .dataset import DATASETS, Dataset, Meta, load
from .download import download
from .sources import SOURCES, Source, data_root
from .synthetic import synthetic_images

__all__ = ["AUGMENTATIONS", "BatchIterator", "Compose", "DATASETS", "Dataset", "Meta",
           "RandomCrop", "RandomHorizontalFlip", "SOURCES", "Source", "data_root", "download",
           "load", "random_subset", "synthetic_images"]
