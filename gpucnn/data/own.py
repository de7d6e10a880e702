"""One's own data: an ``.npz`` file of arrays, or a folder with one subfolder of images per class.

An ``.npz`` file holds ``x_train`` and ``y_train``, and may hold ``x_val``/``y_val``,
``x_test``/``y_test`` and ``class_names`` (``X_train`` is read as ``x_train``).  Images are
(N, C, H, W), or (N, H, W) for one channel, or (N, H, W, C) with C of 1, 3 or 4 where axis 1 is
longer than 4 (Keras' layout, transposed); uint8 pixels are scaled to [0, 1], floats are taken
as they are.  Labels are integers 0..K-1, every class present in the training split.

A folder holds a subfolder per class (sorted by name: the first is class 0, as torchvision's
ImageFolder), each with image files of one size (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM/PGM, read
with Pillow, the ``images`` extra), greyscale or colour (one channel if every image is
greyscale, else three).

Anything else is one line naming the file and what was expected.  :func:`gpucnn.data.load`
splits off what the source does not hold (validation, test) and normalises.
"""
from __future__ import annotations

import os

import numpy as np

NPZ_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "class_names")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def read_own(path: str) -> tuple[dict, tuple[str, ...], float]:
    """``(splits, class_names, scale)``: splits maps "train" and whichever of "val", "test" the
    source holds to ``(images (N, C, H, W), labels int64 (N,))``; ``scale`` takes the images'
    values to [0, 1] (1/255 for 8-bit pixels)."""
    if os.path.isdir(path):
        images, labels, classes = read_image_folder(path)
        return {"train": (images, labels)}, classes, 1 / 255
    return read_npz(path)


def read_npz(path: str) -> tuple[dict, tuple[str, ...], float]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {}
            for key in f.files:
                name = key[:1].lower() + key[1:]
                if name in arrays:
                    raise ValueError(f"{path}: holds both {name!r} and {key!r}: expected one")
                arrays[name] = f[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"{path}: holds pickled objects: expected plain arrays "
                             f"(x_train, y_train, ...)") from None
        raise ValueError(f"{path}: {e}") from None
    except OSError as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if unknown or missing:
        raise ValueError(f"{path}: {'missing ' + ', '.join(missing) if missing else ''}"
                         f"{'; ' if unknown and missing else ''}"
                         f"{'unexpected ' + ', '.join(unknown) if unknown else ''}: expected "
                         f"x_train, y_train and optionally x_val, y_val, x_test, y_test, "
                         f"class_names")
    splits, dtype = {}, None
    for split in ("train", "val", "test"):
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if (x is None) != (y is None):
            raise ValueError(f"{path}: holds {'x' if y is None else 'y'}_{split} without "
                             f"{'y' if y is None else 'x'}_{split}: expected both or neither")
        if x is None:
            continue
        x = _images(path, f"x_{split}", x)
        _labels(path, f"y_{split}", y, len(x))
        if dtype is None:
            dtype, shape = x.dtype, x.shape[1:]
        elif x.shape[1:] != shape or (x.dtype == np.uint8) != (dtype == np.uint8):
            raise ValueError(f"{path}: x_{split} holds {x.dtype} images of shape {x.shape[1:]}, "
                             f"x_train {dtype} of {shape}: expected the same")
        splits[split] = (x, y.astype(np.int64))
    classes = _classes(path, splits, arrays.get("class_names"))
    return splits, classes, 1 / 255 if dtype == np.uint8 else 1.0


def _images(path, key, x) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] > 4:
        x = x.transpose(0, 3, 1, 2)  # (N, H, W, C), as Keras keeps images
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"{path}: {key} has shape {x.shape}: expected images (N, C, H, W), "
                         f"(N, H, W) or (N, H, W, C), N >= 1")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise ValueError(f"{path}: {key} holds {x.dtype}: expected uint8 pixels (0..255) or "
                         f"floats")
    return x


def _labels(path, key, y, n) -> None:
    if y.ndim == 2 and y.shape[0] == n:
        raise ValueError(f"{path}: {key} has shape {y.shape}: expected one class label per "
                         f"sample, ({n},) (one-hot labels: take y.argmax(axis=1))")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key} holds {y.dtype} {y.shape}: expected integer class "
                         f"labels, one per image ({n},)")
    if len(y) != n:
        raise ValueError(f"{path}: {key} has {len(y)} labels for {n} images: expected one each")


def _classes(path, splits, names) -> tuple[str, ...]:
    """The class names; labels must be 0..K-1 with every class in the training split."""
    y = splits["train"][1]
    present = np.unique(y)
    k = int(present[-1]) + 1
    if present[0] < 0 or len(present) != k:
        absent = sorted(set(range(k)) - set(present.tolist()))[:5]
        raise ValueError(f"{path}: y_train holds labels {_span(present)}: expected 0..K-1 with "
                         f"every class present"
                         f"{f' (none of class {absent})' if absent and present[0] >= 0 else ''};"
                         f" renumber the classes")
    for split in ("val", "test"):
        if split in splits and len(splits[split][1]):
            lo, hi = int(splits[split][1].min()), int(splits[split][1].max())
            if lo < 0 or hi >= k:
                raise ValueError(f"{path}: y_{split} holds labels {lo}..{hi}: expected the "
                                 f"training classes 0..{k - 1}")
    if names is None:
        return tuple(str(i) for i in range(k))
    names = [str(n) for n in np.asarray(names).reshape(-1)]
    if len(names) != k:
        raise ValueError(f"{path}: class_names has {len(names)} names for {k} classes: expected "
                         f"one per class")
    return tuple(names)


def _span(labels) -> str:
    shown = ", ".join(str(int(v)) for v in labels[:6])
    return f"{{{shown}{', ...' if len(labels) > 6 else ''}}}"


def read_image_folder(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(images uint8 (N, C, H, W), labels int64 (N,), class names)`` of a class-folder tree."""
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError(f"{path}: reading a folder of images needs Pillow: pip install "
                           f"'gpucnn[images]'") from None
    classes = sorted(e for e in os.listdir(path)
                     if not e.startswith(".") and os.path.isdir(os.path.join(path, e)))
    if len(classes) < 2:
        loose = [e for e in os.listdir(path) if e.lower().endswith(IMAGE_EXTENSIONS)]
        raise ValueError(f"{path}: {len(classes)} class folder{'s' * (len(classes) != 1)}"
                         f"{' (and images directly inside it)' if loose else ''}: expected one "
                         f"subfolder of images per class, at least 2")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _image_files(os.path.join(path, name))
        if not found:
            raise ValueError(f"{os.path.join(path, name)}: no images (expected files ending "
                             f"in {', '.join(IMAGE_EXTENSIONS)}): expected at least one per class")
        files += found
        labels += [label] * len(found)
    headers = []
    for f in files:  # sizes and modes from the headers first: a mismatch costs no decoding
        try:
            with Image.open(f) as im:
                headers.append((im.size, im.mode))
        except (OSError, ValueError) as e:
            raise ValueError(f"{f}: not a readable image ({e})") from None
        if headers[-1][0] != headers[0][0]:
            (w0, h0), (w, h) = headers[0][0], headers[-1][0]
            raise ValueError(f"{f}: {w}x{h} pixels, but {files[0]}: {w0}x{h0}: expected images "
                             f"of one size (resize them first)")
    grey = all(mode in GREY_MODES for _, mode in headers)
    (w, h), c = headers[0][0], 1 if grey else 3
    images = np.empty((len(files), c, h, w), np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            pixels = np.asarray(im.convert("L" if grey else "RGB"), np.uint8)
        images[i] = pixels[None] if grey else pixels.transpose(2, 0, 1)
    return images, np.asarray(labels, np.int64), tuple(classes)


def _image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (any depth), hidden ones left out, in sorted order."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return found
