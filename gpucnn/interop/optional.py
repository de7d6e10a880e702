"""The optional packages interop uses (onnx, torch), imported when asked for, so ``import gpucnn``
and ``import gpucnn.interop`` never load them; a missing one is a one-line error saying how to
install it."""
from __future__ import annotations

import importlib

HOW = {
    "onnx": "pip install 'gpucnn[onnx]'",
    "onnxruntime": "pip install onnxruntime",
    "torch": "install PyTorch as https://pytorch.org/get-started/locally/ shows",
}


def require(name: str):
    """The module ``name`` (a key of HOW), or RuntimeError naming how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RuntimeError(f"{name} is not installed ({e}); {HOW[name]}") from None
