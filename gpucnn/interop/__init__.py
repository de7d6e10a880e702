"""Exchange with other tools: a model as an ONNX graph (:mod:`.onnx_export`), as a PyTorch
module and back (:mod:`.torch_modules`), arrays from any DLPack producer without a copy
(:mod:`.dlpack`).  The optional packages (onnx, torch) are imported when a function needs them,
never by ``import gpucnn`` or ``import gpucnn.interop``.
"""
from .dlpack import from_dlpack
from .onnx_export import OPSET, to_onnx
from .torch_modules import from_torch, to_torch

__all__ = ["OPSET", "from_dlpack", "from_torch", "to_onnx", "to_torch"]
