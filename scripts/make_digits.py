"""Re-create gpucnn/data/digits.npz from scikit-learn's copy of the UCI handwritten digits.

The UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak, 1998;
CC BY 4.0) is carried inside scikit-learn's wheel as sklearn/datasets/data/digits.csv.gz:
1797 rows of 64 pixel counts (0..16, an 8x8 image row by row) followed by the label.  This
script reads that file out of a wheel without installing scikit-learn and writes the arrays
gpucnn ships, then prints the checksum to paste into gpucnn/data/digits.py.

    pip download --no-deps scikit-learn -d /tmp/skl
    python scripts/make_digits.py /tmp/skl/scikit_learn-*.whl
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpucnn.data.digits import DIGITS_PATH, content_sha256  # noqa: E402

MEMBER = "sklearn/datasets/data/digits.csv.gz"


def read_wheel(wheel: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) uint8 in 0..16, labels (1797,) uint8 in 0..9) from the wheel."""
    with zipfile.ZipFile(wheel) as z:
        text = gzip.decompress(z.read(MEMBER)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise ValueError(f"{MEMBER}: expected 1797 rows of 65 values, got shape {table.shape}")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{MEMBER}: pixel or label outside 0..16 / 0..9")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="a scikit-learn .whl file")
    parser.add_argument("--output", default=DIGITS_PATH, help="where to write (default: %(default)s)")
    args = parser.parse_args()
    images, labels = read_wheel(args.wheel)
    np.savez_compressed(args.output, images=images, labels=labels)
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")
    print(f"DIGITS_SHA256 = \"{content_sha256(images, labels)}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
