"""``gpucnn receptive-field``: the receptive-field table of a stack of conv and pool layers."""
from __future__ import annotations

from ..receptive import format_table, receptive_fields


def parse_layer(text: str) -> dict:
    """'conv:7:1:3' or 'pool:2:2' (type:kernel[:stride[:padding]]) -> a layer spec dict."""
    parts = text.split(":")
    kinds = {"conv": "conv2d", "pool": "maxpool2d"}
    if parts[0] not in kinds or not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"layer {text!r}: expected conv:K[:S[:P]] or pool:K[:S]")
    spec = {"type": kinds[parts[0]], "kernel_size": int(parts[1])}
    for key, value in zip(("stride", "padding"), parts[2:]):
        spec[key] = int(value)
    zero = [k for k in ("kernel_size", "stride") if spec.get(k) == 0]
    if zero:  # a 0 kernel gives a meaningless table, a 0 stride a division by zero
        raise ValueError(f"layer {text!r}: {zero[0].split('_')[0]} 0: expected kernel and "
                         f"stride >= 1")
    return spec


def run_receptive_field(args) -> int:
    layers = [parse_layer(t) for t in args.layers] or [
        {"type": "conv2d", "kernel_size": 7, "padding": 3}, {"type": "maxpool2d", "kernel_size": 2}]
    print(format_table(receptive_fields(layers, args.input_size), args.input_size))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("receptive-field", help="per-layer receptive field, jump and output size",
                       description="Receptive-field arithmetic of a stack of conv/pool layers "
                                   "(default: the ThreeLayerConvNet's 7x7 conv and 2x2 pool).")
    p.add_argument("layers", nargs="*", metavar="LAYER",
                   help="conv:K[:S[:P]] or pool:K[:S], e.g. conv:3:1:1 pool:2 conv:3:2")
    p.add_argument("--input-size", type=int, default=32, help="input height = width (default 32)")
    p.set_defaults(func=run_receptive_field)
