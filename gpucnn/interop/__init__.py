"""Exchange with other tools: a model as an ONNX graph (:mod:`.onnx_export`).  The optional
packages (onnx) are imported when a function needs them, never by ``import gpucnn`` or
``import gpucnn.interop``.
"""
from .onnx_export import OPSET, to_onnx

__all__ = ["OPSET", "to_onnx"]
