"""Checkpoints and saved weights: what they hold, written as atomic, pickle-free ``.npz`` files.

A file holds named arrays plus one JSON document (key ``"meta.json"``, a 0-d unicode array), so
it loads with ``np.load(path, allow_pickle=False)`` and nothing in it can run code.  Writes are
atomic (:func:`gpucnn.files.atomic_write`): a crash or Ctrl-C mid-write leaves the previous file
intact, and the next write sweeps the temporary file a killed process left.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from ..files import atomic_write, check_file, remove_stale_temps
from ..nn import Module

META_KEY = "meta.json"
CHECKPOINT_NAME = "checkpoint.npz"
# 2: the model's random streams by name (Module.extra_state); 1 listed dropout layers in order.
CHECKPOINT_VERSION = 2


def save_npz(path: str, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` (name -> NumPy array) and the JSON-able ``meta`` to ``path`` atomically,
    first removing temporary files that a killed writer of ``path`` left behind."""
    if META_KEY in arrays:
        raise ValueError(f"arrays: the name {META_KEY!r} is reserved for the JSON document")
    remove_stale_temps(path)
    with atomic_write(path) as fh:
        np.savez(fh, allow_pickle=False, **arrays, **{META_KEY: np.array(json.dumps(meta))})


def load_npz(path: str, kind: str) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a file written by :func:`save_npz` whose ``meta["format"] == kind``.

    Anything else (missing, truncated, not an npz, another kind) raises an error naming ``path``.
    """
    if os.path.isdir(path):
        raise ValueError(f"{path}: expected a gpucnn {kind} file, found a folder")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such {kind} file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # else numpy guesses a pickle and advises allow_pickle
        raise ValueError(f"{path}: not a gpucnn {kind} file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except KeyError:
        raise ValueError(f"{path}: not a gpucnn {kind}: it has no {META_KEY!r} entry") from None
    except ValueError as e:
        if "allow_pickle" in str(e):  # an object array: never ours, and never to be unpickled
            raise ValueError(f"{path}: not a gpucnn {kind} file (it holds pickled "
                             f"objects)") from None
        raise ValueError(f"{path}: not a readable gpucnn {kind} (corrupt or truncated: "
                         f"{type(e).__name__}: {e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable gpucnn {kind} (corrupt or truncated: "
                         f"{type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: format {found!r}: expected a gpucnn {kind!r} file")
    return arrays, meta


def read_meta(path: str) -> dict | None:
    """The JSON document of a file :func:`save_npz` wrote, without reading its arrays; None
    when ``path`` is not such a file (missing, another kind of file, corrupt)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f[META_KEY]))
    except Exception:  # noqa: BLE001 - any unreadable file is "not one of ours"
        return None
    return meta if isinstance(meta, dict) else None


def checkpoint_file(path: str) -> str:
    """``path``, or the checkpoint in it when it is a run's folder."""
    return os.path.join(path, CHECKPOINT_NAME) if os.path.isdir(path) else path


def prefixed(arrays: dict, prefix: str) -> dict:
    """The arrays whose name starts with ``prefix + "/"``, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def save_checkpoint(path: str, *, model, optimizer, batches, history, position: dict,
                    lr_schedule: dict, config: dict, world_size: int) -> None:
    """Everything a run needs to go on bit-identically: parameters and buffers
    (``param/<name>``), the best epoch's (``best/<name>``), the optimizer's buffers
    (``optim/<buffer>/<name>``); in the JSON document the model's random streams
    (``extra_state``), the optimizer's scalars, the batch order, the ``position`` in training
    (epoch, iteration, epoch_elapsed), the learning-rate schedule's state, the history, the
    settings and the world size."""
    opt = optimizer.state_dict()
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"best/{k}": v for k, v in history.best_params.items()})
    for buffer, named in opt.pop("buffers").items():
        arrays.update({f"optim/{buffer}/{k}": v for k, v in named.items()})
    meta = {"format": "checkpoint", "version": CHECKPOINT_VERSION, **position,
            "optimizer": opt, "batches": batches.state(), "extra_state": model.extra_state(),
            "lr_schedule": lr_schedule,
            "history": history.to_dict(), "config": config, "world_size": world_size}
    save_npz(path, arrays, meta)


def load_checkpoint(path: str) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a checkpoint of this version; an older one is a one-line error."""
    arrays, meta = load_npz(path, "checkpoint")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {meta.get('version')!r}: expected "
                         f"version {CHECKPOINT_VERSION} (written by another gpucnn release; "
                         f"train again or resume it with the release that wrote it)")
    return arrays, meta


def restore_checkpoint(arrays: dict, meta: dict, *, model, optimizer, batches) -> None:
    """Load a checkpoint's state into ``model`` (parameters, buffers, random streams),
    ``optimizer`` and ``batches``."""
    model.load_state_dict(prefixed(arrays, "param"))
    model.load_extra_state(meta["extra_state"])
    buffers = {}
    for key, value in prefixed(arrays, "optim").items():
        buffer, name = key.split("/", 1)
        buffers.setdefault(buffer, {})[name] = value
    optimizer.load_state_dict({**meta["optimizer"], "buffers": buffers})
    batches.set_state(meta["batches"])


def save_weights(path: str, model, info: dict | None = None) -> None:
    """The parameters and buffers of ``model`` (any :class:`gpucnn.nn.Module`), its
    ``config()`` when it has one (a model built from a spec: :func:`load_weights` rebuilds it)
    and ``info``, a JSON-able dict (e.g. the dataset), written atomically to ``path``."""
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a gpucnn.nn.Module, got {type(model).__name__}")
    check_file("path", path)
    config = model.config() if callable(getattr(model, "config", None)) else None
    write_weights(path, model.state_dict(), config, info)


def write_weights(path: str, state: dict, config: dict | None, info: dict | None) -> None:
    """A weights file of ``state`` (name -> array), the model ``config`` and ``info``."""
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info: expected a dict, got {type(info).__name__}")
    try:
        json.dumps(info)
    except (TypeError, ValueError) as e:
        raise TypeError(f"info: expected JSON-able values (numbers, strings, lists, dicts): "
                        f"{e}") from None
    arrays = {f"param/{k}": v for k, v in state.items()}
    save_npz(path, arrays, {"format": "weights", "version": 1, "model": config,
                            "info": info or {}})


def load_parameters(model, path: str, label: str = "path") -> None:
    """Load the parameters of a weights file (or a checkpoint) into ``model``: the inputs the
    file's model took (when it records them) must be the model's (``model.check_input``), and
    every name and shape must match, else one ValueError line ``label=path: ...`` names the
    mismatch."""
    try:
        arrays, meta = load_npz(path, "weights")
        config, info = meta.get("model"), meta.get("info")
    except ValueError as e:
        if "format 'checkpoint'" not in str(e):
            raise ValueError(f"{label}={path}: {e}") from None
        arrays, meta = load_npz(path, "checkpoint")
        config, info = (meta.get("config") or {}).get("model"), (meta.get("config") or {}).get(
            "run_info")
    taken = (config or {}).get("input_dim") if isinstance(config, dict) else None
    try:
        if taken is not None and callable(getattr(model, "check_input", None)):
            data = (info or {}).get("dataset") if isinstance(info, dict) else None
            model.check_input(taken, "the model of these weights" + (f" (trained on {data})"
                                                                     if data else ""))
        model.load_state_dict(prefixed(arrays, "param"))
    except ValueError as e:
        raise ValueError(f"{label}={path}: does not fit the model: {e}") from None


def load_weights(path: str, model=None):
    """``(model, info)`` from :func:`save_weights`: the model rebuilt from its config and its
    parameters loaded, or, given ``model`` (needed when the file holds no config: a model not
    built from a spec), loaded into that one."""
    from ..models import model_from_config

    if model is not None and not isinstance(model, Module):
        raise TypeError(f"model: expected a gpucnn.nn.Module or None, got "
                        f"{type(model).__name__}")
    arrays, meta = load_npz(path, "weights")
    if model is None and not meta.get("model"):
        raise ValueError(f"{path}: holds no model config (the model was not built from a spec); "
                         f"build the model yourself and give it: load_weights(path, model)")
    model = model if model is not None else model_from_config(meta["model"])
    try:
        model.load_state_dict(prefixed(arrays, "param"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model, meta.get("info", {})
