"""The embedded default dataset: UCI optical-recognition handwritten digits.

1797 greyscale 8x8 images, each pixel a count 0..16 of "on" pixels in a 4x4 block of a 32x32
bitmap, 10 classes (the digits 0-9).  Source: E. Alpaydin and C. Kaynak, "Optical Recognition of
Handwritten Digits", UCI Machine Learning Repository (1998), doi:10.24432/C50P49, licensed
CC BY 4.0; this is the UCI test set as scikit-learn distributes it (see scripts/make_digits.py,
which re-creates the file).  It ships inside the package so training runs with no download.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")
# SHA-256 of the uint8 pixel bytes followed by the uint8 label bytes (independent of how the
# .npz is compressed, so re-running the conversion reproduces it).
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
MAX_VALUE = 16
CITATION = ("UCI ML optical-recognition handwritten digits (test set, 1797 images), "
            "E. Alpaydin and C. Kaynak, 1998, doi:10.24432/C50P49, CC BY 4.0")


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def load_digits(path: str = DIGITS_PATH) -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 1, 8, 8) uint8 in 0..16, labels (1797,) int64 in 0..9), checksum-verified."""
    try:
        with np.load(path) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: the embedded digits file is unreadable ({e}); "
                         f"reinstall gpucnn or re-create it with scripts/make_digits.py") from None
    actual = content_sha256(images, labels)
    if actual != DIGITS_SHA256:
        raise ValueError(f"{path}: checksum mismatch: SHA-256 of its contents is {actual}, "
                         f"expected {DIGITS_SHA256}; reinstall gpucnn or re-create it with "
                         f"scripts/make_digits.py")
    return images[:, None], labels.astype(np.int64)
