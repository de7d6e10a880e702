"""Atomic, pickle-free ``.npz`` files for checkpoints and saved weights.

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

from .files import atomic_write, remove_stale_temps

META_KEY = "meta.json"


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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except KeyError:
        raise ValueError(f"{path}: not a gpucnn {kind}: it has no {META_KEY!r} entry") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable gpucnn {kind} (corrupt or truncated: "
                         f"{type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: format {found!r}: expected a gpucnn {kind!r} file")
    return arrays, meta


def prefixed(arrays: dict, prefix: str) -> dict:
    """The arrays whose name starts with ``prefix + "/"``, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def save_weights(path: str, model, info: dict | None = None) -> None:
    """The model's parameters, its ``config()`` (to rebuild it) and ``info`` (e.g. the dataset)."""
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    save_npz(path, arrays, {"format": "weights", "version": 1, "model": model.config(),
                            "info": info or {}})


def load_weights(path: str):
    """``(model, info)`` from :func:`save_weights`: the model rebuilt and its parameters loaded."""
    from .models import model_from_config

    arrays, meta = load_npz(path, "weights")
    if not meta.get("model"):
        raise ValueError(f"{path}: holds no model config (the model was not built from a spec); "
                         f"rebuild it yourself and load {path}'s 'param/*' arrays")
    model = model_from_config(meta["model"])
    try:
        model.load_state_dict(prefixed(arrays, "param"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model, meta.get("info", {})
