"""``gpucnn export``: a trained model as a file other tools run (ONNX; :mod:`gpucnn.interop`)."""
from __future__ import annotations

import os

from ..files import atomic_write, remove_stale_temps
from ..interop import OPSET, to_onnx
from ..interop.optional import require
from .outputs import check_file
from .evaluate import load_saved_model

FORMATS = ("onnx",)


def default_output(source: str, fmt: str) -> str:
    """Beside what is exported: ``RUN/model.onnx`` for a run folder, ``weights.onnx`` for
    ``weights.npz``."""
    if os.path.isdir(source):
        return os.path.join(source, f"model.{fmt}")
    return f"{os.path.splitext(source)[0]}.{fmt}"


def run_export(args) -> int:
    output = args.output or default_output(args.source, args.format)
    check_file("--output", output, overwrite=args.overwrite)  # before anything is loaded
    require("onnx")  # a missing extra is named before the work, not after it
    model, _, source = load_saved_model(args.source)
    proto = to_onnx(model)
    remove_stale_temps(output)
    with atomic_write(output) as fh:
        fh.write(proto.SerializeToString())
    (x,), (y,) = proto.graph.input, proto.graph.output
    print(f"{output}: ONNX opset {OPSET}, input '{x.name}' {_shape(x)} -> output '{y.name}' "
          f"{_shape(y)}, {model.dtype}; from {source}")
    return 0


def _shape(value_info) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in value_info.type.tensor_type.shape.dim]
    return f"({', '.join(dims)})"


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="write a trained model as an ONNX file",
                       description="Write the model of a run (its folder, weights.npz, best.npz "
                                   "or checkpoint.npz) as an ONNX graph of its evaluation forward, "
                                   f"opset {OPSET} (needs the onnx extra: pip install "
                                   "'gpucnn[onnx]').")
    p.add_argument("source", metavar="RUN_OR_WEIGHTS",
                   help="a run folder written by 'gpucnn train', or its weights.npz, best.npz or "
                        "checkpoint.npz")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default onnx)")
    p.add_argument("--output", metavar="FILE",
                   help="where to write (default: RUN/model.onnx for a folder, else the weights "
                        "file's name with .onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists "
                                                            "(refused otherwise)")
    p.set_defaults(func=run_export)
