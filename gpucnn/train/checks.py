"""The Trainer's checks of what it is given: the data splits, the model against the data, the
settings that depend on both, and on resume whether the checkpoint's model and data split are
this run's.  ``gpucnn train`` calls the same functions under its flags' names (``label``), so
both refuse the same things in the same words."""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from .. import config
from ..data.augment import describe
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
        i = int(np.argmax(y < 0))
        raise ValueError(f"{yname}[{i}]={int(y[i])}: expected a class label >= 0")
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


# What the Trainer calls on its model (gpucnn.models.Classifier has them all).
MODEL_METHODS = ("loss", "weight_decay", "predict", "parameters", "state_dict", "to")


def check_model(model) -> None:
    """A network that is not a classifier (a bare Sequential) would fail at the first step."""
    missing = [m for m in MODEL_METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(f"model: expected a classifier such as gpucnn.models.Classifier(net), "
                        f"got a {type(model).__name__} without {', '.join(missing)}()")


def check_outputs(model, data, X, y_train, y_val) -> int:
    """A model built for other inputs, or with fewer outputs than the data has classes (its
    labels, or its ``meta.num_classes``), fails only in the first training step (after epoch 0
    was measured and saved): check its input shape, then score one sample now, dropout off.
    Returns the number of classes."""
    meta = getattr(data, "meta", None) or (data.get("meta") if isinstance(data, dict) else None)
    name = getattr(meta, "name", "X_train")
    if callable(getattr(model, "check_input", None)):
        model.check_input(X.shape[1:], name)
    num_classes = max(int(y_train.max()) + 1, int(y_val.max()) + 1,
                      getattr(meta, "num_classes", 0))
    scores = model.loss(to_device(X[:1], model.device).astype(model.dtype, copy=False))
    outputs = scores.shape[-1] if getattr(scores, "ndim", 0) == 2 else None
    if outputs is None:
        return num_classes
    for label, y in (("y_train", y_train), ("y_val", y_val)):
        if int(y.max()) >= outputs:
            i = int(np.argmax(y >= outputs))
            raise ValueError(f"{label}[{i}]={int(y[i])}: expected a class label in [0, "
                             f"{outputs - 1}]: the model's last layer has {outputs} outputs")
    if outputs < num_classes:
        raise ValueError(f"model: its last layer has {outputs} outputs but {name} has "
                         f"{num_classes} classes: expected at least {num_classes}")
    return num_classes


def check_batch_size(label: str, batch_size: int, num_train: int) -> None:
    """A batch larger than the training set would make every batch the whole set, silently."""
    if batch_size > num_train:
        raise ValueError(f"{label}={batch_size}: expected at most the training-set size, "
                         f"{num_train} samples")


def check_augment_images(label: str, augment, sample_shape, data: str = "X_train") -> None:
    """Augmentations move pixels: they need image samples (C, H, W), not vectors."""
    if augment and len(sample_shape) != 3:
        raise ValueError(f"{label}={describe(augment)}: expected image data (N, C, H, W) to "
                         f"augment; {data} has samples of shape {tuple(sample_shape)}")


def check_early_stop(label: str, early_stop, epochs_label: str, epochs: int) -> None:
    """A patience of ``epochs`` or more could never stop the run early: the setting would be
    ignored."""
    if early_stop is not None and early_stop >= epochs:
        raise ValueError(f"{label}={early_stop}: expected fewer than {epochs_label}={epochs} "
                         f"(the run would end before it could stop early)")


def check_stopped_early(label: str, early_stop, history: dict, path: str) -> None:
    """Resuming with a patience (``early_stop``, the resumed run's) that the run has already
    spent since its best epoch would train nothing: early stopping ended it, or would at once."""
    done, best = max(len(history.get("val_acc", ())) - 1, 0), history.get("best_epoch", 0)
    if early_stop is not None and done - best >= early_stop:
        how = "stopped early" if history.get("stopped_epoch") is not None else "is"
        raise ValueError(f"{label}={early_stop}: {path} {how} at epoch {done}, its best being "
                         f"epoch {best}; expected {label} above {done - best} to train on")


def check_epochs_left(label: str, epochs: int, at_epoch: int, path: str) -> None:
    """Resuming a checkpoint already at ``epochs`` would train nothing and say nothing."""
    if epochs <= at_epoch:
        raise ValueError(f"{label}={epochs}: {path} is at epoch {at_epoch}; expected {label} "
                         f"above {at_epoch} to train on")


def optim_settings(optim_config: dict | None, given: dict) -> dict:
    """The optimizer's settings: ``optim_config`` and the :data:`gpucnn.config.OPTIMIZATION`
    settings ``given`` as keywords (``lr=``, the flags' names), not both for one setting; with
    neither, the schema's defaults.  Those the schema knows are checked as the flags are."""
    if optim_config is not None and not isinstance(optim_config, dict):
        raise TypeError(f"optim_config: expected a dict, got {type(optim_config).__name__}")
    if optim_config is None and not given:
        return config.optim_config(config.OPTIMIZATION.defaults())
    both = sorted(set(given) & set(optim_config or {}))
    if both:
        raise ValueError(f"{both[0]}: given both as a keyword and in optim_config; expected "
                         f"one of the two")
    merged = {**(optim_config or {}), **given}
    names = config.OPTIMIZATION.names()
    checked = config.OPTIMIZATION.check({k: v for k, v in merged.items() if k in names})
    merged.update(checked)  # an optional setting left None keeps the optimizer's own default
    return {k: v for k, v in merged.items() if not (v is None and k in names)}


@contextlib.contextmanager
def quiet_numerics():
    """NumPy's overflow and invalid-value warnings off: a diverging run is reported once, by
    the loss check (TrainingDiverged names the learning rate), not by warnings before it."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        yield


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
