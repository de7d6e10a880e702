"""CIFAR-10 from its python pickle batches: an extracted folder or the original ``.tar.gz``.

Each batch is a pickled dict with ``b"data"`` (N, 3072) uint8 (1024 red, 1024 green, 1024 blue
values, each 32x32 row-major) and ``b"labels"`` (N ints in 0..9); ``batches.meta`` holds
``b"label_names"``.  The archive is read as a stream, one member at a time, and never extracted.
Unpickling goes through an unpickler that only builds NumPy arrays, so a foreign pickle cannot
run code.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from .sources import Source, missing_files_error, search_dirs, verify_md5

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = "test_batch"
META = "batches.meta"
MEMBERS = TRAIN + (TEST, META)
NUM_CLASSES = 10
SHAPE = (3, 32, 32)

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: not a CIFAR-10 pickle batch ({type(e).__name__}: {e}); "
                         f"truncated or a different file") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a CIFAR-10 pickle batch: holds a {type(obj).__name__}, "
                         f"expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one pickled batch's bytes."""
    d = _unpickle(data, where)
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{where}: not a CIFAR-10 batch: keys {sorted(d)}, expected 'data' "
                         f"and 'labels'")
    images, labels = np.asarray(d["data"]), np.asarray(d["labels"], dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != int(np.prod(SHAPE)):
        raise ValueError(f"{where}: 'data' is {images.dtype} {images.shape}, expected uint8 "
                         f"(N, {int(np.prod(SHAPE))})")
    if len(images) != len(labels):
        raise ValueError(f"{where}: image count {len(images)} does not match the label count "
                         f"{len(labels)}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = int(labels.min() if labels.min() < 0 else labels.max())
        raise ValueError(f"{where}: label {bad} outside the class range 0..{NUM_CLASSES - 1}")
    return images.reshape((-1,) + SHAPE), labels


def parse_meta(data: bytes, where: str) -> tuple[str, ...]:
    names = _unpickle(data, where).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise ValueError(f"{where}: 'label_names' should list {NUM_CLASSES} class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def locate(name: str, data_dir) -> str:
    """The folder holding the batch files, or the archive, first found in the search dirs."""
    dirs = search_dirs(name, data_dir)
    for folder in dirs:
        for candidate in (os.path.join(folder, FOLDER), folder):
            if all(os.path.isfile(os.path.join(candidate, m)) for m in MEMBERS):
                return candidate
        if os.path.isfile(os.path.join(folder, ARCHIVE)):
            return os.path.join(folder, ARCHIVE)
    raise missing_files_error(name, [ARCHIVE + f" (or a folder {FOLDER}/ with "
                                     f"{', '.join(MEMBERS)})"], dirs)


def _read_folder(folder: str, source: Source):
    for member in MEMBERS:
        path = os.path.join(folder, member)
        verify_md5(path, source.md5_of(member))
        with open(path, "rb") as fh:
            yield member, fh.read(), path


def _read_archive(path: str, source: Source):
    verify_md5(path, source.md5_of(ARCHIVE))
    seen = set()
    try:
        with tarfile.open(path, "r|gz") as tar:
            for info in tar:
                member = os.path.basename(info.name)
                if info.isfile() and member in MEMBERS and member not in seen:
                    seen.add(member)
                    yield member, tar.extractfile(info).read(), f"{path}:{info.name}"
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{path}: truncated or damaged archive ({type(e).__name__}: {e})") \
            from None
    missing = [m for m in MEMBERS if m not in seen]
    if missing:
        raise ValueError(f"{path}: the archive lacks {', '.join(missing)}")


def load_cifar10(name: str, source: Source, data_dir=None):
    """The training batches, the test batch and the class names, read from disk.

    Returns ``(train, test, class_names, path)``: ``train`` is a list of five
    ``(images (N, 3, 32, 32) uint8, labels (N,) int64)`` pairs, kept apart so a caller can
    convert and free them one at a time; ``test`` is one such pair.
    """
    path = locate(name, data_dir)
    reader = _read_archive(path, source) if path.endswith(".gz") else _read_folder(path, source)
    batches, class_names = {}, None
    for member, data, where in reader:
        if member == META:
            class_names = parse_meta(data, where)
        else:
            batches[member] = parse_batch(data, where)
        del data
    return [batches[m] for m in TRAIN], batches[TEST], class_names, path
