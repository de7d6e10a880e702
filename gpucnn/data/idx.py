"""MNIST and Fashion-MNIST: IDX files (gzipped or not) from a local folder.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then
each dimension as a big-endian uint32, then the values row-major.  Images are idx3 (N, rows,
cols), labels idx1 (N,).
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from .sources import Source, missing_files_error, search_dirs, verify_md5

PARTS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_CLASSES = 10


def parse_idx(data: bytes, where: str, ndim: int) -> np.ndarray:
    """The uint8 array in IDX bytes ``data``; ValueError naming ``where`` on a failed check."""
    if len(data) < 4:
        raise ValueError(f"{where}: truncated: {len(data)} bytes, shorter than the IDX header")
    zero, dtype_code, got_ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08 or got_ndim != ndim:
        raise ValueError(f"{where}: wrong magic number 0x{data[:4].hex()}: expected "
                         f"0x000008{ndim:02x} (unsigned bytes, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where}: truncated: the header needs {header} bytes, file has "
                         f"{len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        what = "truncated" if len(data) - header < size else "trailing bytes"
        raise ValueError(f"{where}: {what}: header says {dims} = {size} values, file has "
                         f"{len(data) - header}")
    return np.frombuffer(data, np.uint8, size, header).reshape(dims)


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Read an IDX file, gunzipping it when its name ends in .gz."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise ValueError(f"{path}: truncated: the gzip stream ends early") from None
        except (OSError, zlib.error) as e:
            raise ValueError(f"{path}: not a valid gzip file: {e}") from None
    return parse_idx(raw, path, ndim)


def locate(name: str, data_dir) -> dict[str, str]:
    """Map each IDX base name to the file found for it (``.gz`` preferred); all or an error."""
    dirs = search_dirs(name, data_dir)
    bases = [b for pair in PARTS.values() for b in pair]
    found = {}
    for base in bases:
        for folder in dirs:
            hits = [os.path.join(folder, base + ext) for ext in (".gz", "")]
            hit = next((p for p in hits if os.path.isfile(p)), None)
            if hit:
                found[base] = hit
                break
    if len(found) < len(bases):
        missing = [b + ".gz" for b in bases if b not in found]
        raise missing_files_error(name, missing, dirs)
    return found


def read_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, rows, cols) uint8, labels (N,) int64) with counts and labels checked."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{images_path}: image count {len(images)} does not match the label "
                         f"count {len(labels)} of {labels_path}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {int(labels.max())} outside the class range "
                         f"0..{NUM_CLASSES - 1}")
    return images[:, None], labels


def load_idx_dataset(name: str, source: Source, data_dir=None):
    """Train and test (uint8 images (N, 1, H, W), int64 labels) plus the files they came from."""
    found = locate(name, data_dir)
    for path in found.values():
        verify_md5(path, source.md5_of(os.path.basename(path)))
    out = {part: read_split(found[img], found[lab]) for part, (img, lab) in PARTS.items()}
    return out["train"], out["test"], sorted(found.values())
