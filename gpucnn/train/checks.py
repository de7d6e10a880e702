"""The Trainer's checks of what it is given: the data splits, the model's output size, and on
resume whether the checkpoint's model and data split are this run's."""
from __future__ import annotations

import hashlib

import numpy as np

from ..device import to_device

# Model settings that only shape the initial parameters, which a resume replaces.
INIT_ONLY = ("weight_scale", "seed")


def check_split(xname, x, yname, y):
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.dtype.kind not in "fiu":
        raise ValueError(f"{xname}: expected a numeric NumPy array (N, ...), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{yname}: expected a 1-D integer NumPy array of labels, got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}")
    if len(x) != len(y):
        raise ValueError(f"{xname} has {len(x)} samples but {yname} has {len(y)}: expected "
                         f"one label per sample")
    if len(x) == 0:
        raise ValueError(f"{xname} is empty: expected at least one sample")
    if y.min() < 0:  # the largest label is held against the model's outputs (check_outputs);
        # both once, on the host: on CUDA the loss kernel only marks a bad label with NaN
        raise ValueError(f"{yname} holds the label {int(y.min())}: expected class labels >= 0")
    if x.dtype.kind == "f":
        flat = x.reshape(len(x), -1)
        bad = np.concatenate([~np.isfinite(flat[i:i + 4096]).all(axis=1)   # blocks: bounded memory
                              for i in range(0, len(x), 4096)])
        if bad.any():
            raise ValueError(f"{xname} holds NaN or infinite values in {int(bad.sum())} samples "
                             f"(first: index {int(np.argmax(bad))}): expected finite data")


def unpack_data(data):
    """A ``gpucnn.data.Dataset`` or a dict with X_train, y_train, X_val, y_val."""
    if hasattr(data, "x_train"):
        return data.x_train, data.y_train, data.x_val, data.y_val
    keys = ("X_train", "y_train", "X_val", "y_val")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise ValueError(f"data: expected a gpucnn.data.Dataset or a dict with keys {keys}")
    return tuple(data[k] for k in keys)


def data_checksum(X_train, y_train, X_val, y_val) -> str:
    """A fingerprint of the split: every label, and every 64th sample's data (cheap on large
    sets, yet another split or shuffle changes it)."""
    h = hashlib.sha256()
    for a in (y_train, y_val, X_train[::64], X_val[::64]):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def check_outputs(model, X, num_classes: int) -> None:
    """A model with fewer outputs than the data has classes fails only in the first training
    step (after epoch 0 was measured and saved): score one sample now, dropout off."""
    if not callable(getattr(model, "loss", None)):
        return
    scores = model.loss(to_device(X[:1], model.device).astype(model.dtype, copy=False))
    outputs = scores.shape[-1] if getattr(scores, "ndim", 0) == 2 else None
    if outputs is not None and outputs < num_classes:
        raise ValueError(f"model: its last layer has {outputs} outputs but the data has "
                         f"{num_classes} classes: expected at least {num_classes}")


def recorded_diff(saved: dict, mine: dict, key: str) -> list[str]:
    """``[what differs]`` between the checkpoint's ``key`` and this run's, when the checkpoint
    records it (older ones do not): another model or another data split would mix two runs'
    histories."""
    a, b = _without_init(saved.get(key)), _without_init(mine.get(key))
    if a is None or b is None or a == b:
        return []
    return [f"{key} differs: {_differ(a, b)}"]


def _without_init(value):
    if isinstance(value, dict):
        return {k: _without_init(v) for k, v in value.items() if k not in INIT_ONLY}
    if isinstance(value, list):
        return [_without_init(v) for v in value]
    return value


def _differ(saved, mine) -> str:
    """The first difference of two JSON values, as 'where: checkpoint's vs this run's'."""
    if isinstance(saved, dict) and isinstance(mine, dict):
        for k in sorted(set(saved) | set(mine), key=str):
            if saved.get(k) != mine.get(k):
                return f"{k}: " + _differ(saved.get(k), mine.get(k))
    if isinstance(saved, list) and isinstance(mine, list) and len(saved) == len(mine):
        for i, (a, b) in enumerate(zip(saved, mine)):
            if a != b:
                return f"[{i}] " + _differ(a, b)
    return f"{saved!r} in the checkpoint, {mine!r} here"
