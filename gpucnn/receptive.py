"""Receptive-field arithmetic (the source document on receptive fields, seeds/004), and an empirical check by back-propagation.

For layers l = 1..L with kernel k_l, stride s_l and padding p_l, along one axis:

    jump       j_l = j_{l-1} * s_l                       (input pixels between adjacent outputs)
    field      r_l = r_{l-1} + (k_l - 1) * j_{l-1}       (r_0 = 1, j_0 = 1)
    start      u_l = u_{l-1} + ((k_l - 1) / 2 - p_l) * j_{l-1}
                                                         (input coordinate of the centre of the
                                                          first output's field; u_0 = 0)

which unrolls to the source document's closed form r_L = sum_l (k_l - 1) prod_{i<l} s_i + 1, the same as its
recursion r_{i-1} = s_i r_i + (k_i - s_i) run from the top.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import nn
from .shapes import out_size, same_padding
from .specs import LAYER_TYPES


@dataclass(frozen=True)
class LayerField:
    """One layer's geometry along one axis (rows; columns are the same for square layers)."""

    name: str
    kernel: int
    stride: int
    padding: int
    output_size: int
    jump: int
    field: int
    start: float


def _layer_class(layer) -> type:
    """The module class of a layer or of a layer spec dict (its ``type`` from
    :data:`gpucnn.specs.LAYER_TYPES`, the one layer vocabulary)."""
    if not isinstance(layer, dict):
        return type(layer)
    kind = layer.get("type")
    if kind not in LAYER_TYPES:
        raise ValueError(f"layer spec {layer!r}: expected type one of {', '.join(LAYER_TYPES)}")
    return LAYER_TYPES[kind][0]


def _mixes_all_positions(layer) -> bool:
    """Flatten, Linear and global average pooling see the whole input: spatial receptive fields
    end there."""
    return issubclass(_layer_class(layer), (nn.Flatten, nn.Linear, nn.GlobalAvgPool2d))


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_POINTWISE = (nn.ReLU, nn.Sigmoid, nn.Dropout, nn.BatchNorm2d, nn.LeakyReLU, nn.Tanh)


def _spec_of(layer) -> tuple[str, int, int, int] | None:
    """(name, kernel, stride, padding) of a spatial layer; None for pointwise layers."""
    cls = _layer_class(layer)
    if isinstance(layer, dict) and cls in (nn.Conv2d, *_POOLS):
        k = int(layer["kernel_size"])
        stride = int(layer.get("stride") or (k if cls in _POOLS else 1))
        return layer["type"], k, stride, int(same_padding(layer.get("padding", 0), k, stride))
    if cls is nn.Conv2d:
        if layer.kernel_size[0] != layer.kernel_size[1]:
            raise ValueError(f"{layer!r}: receptive fields are computed for square kernels")
        return "conv2d", layer.kernel_size[0], layer.stride, layer.padding
    if cls in _POOLS:
        return cls.__name__.lower(), layer.kernel_size, layer.stride, 0
    if cls in _POINTWISE:
        return None
    raise TypeError(f"layer {layer!r}: no receptive-field rule for {cls.__name__}")


def spatial_layers(model) -> list:
    """The leading spatial part of a model: its layers up to the first Flatten/Linear."""
    if isinstance(model, (list, tuple)):
        layers = list(model)
    else:
        seq = model if isinstance(model, nn.Sequential) else getattr(model, "net", None)
        if not isinstance(seq, nn.Sequential):
            raise TypeError(f"model={type(model).__name__}: expected an nn.Sequential, a model with a "
                            f"Sequential .net, or a list of layer spec dicts")
        layers = seq.layers
    out = []
    for layer in layers:
        if _mixes_all_positions(layer):
            break
        out.append(layer)
    return out


def receptive_fields(model, input_size: int) -> list[LayerField]:
    """Per spatial layer: kernel, stride, padding, output size, jump, field size, start offset."""
    if not isinstance(input_size, (int, np.integer)) or input_size < 1:
        raise ValueError(f"input_size={input_size!r}: expected a positive int (square inputs)")
    size, jump, field, start = int(input_size), 1, 1, 0.0
    rows = []
    for layer in spatial_layers(model):
        spec = _spec_of(layer)
        if spec is None:
            continue
        name, k, s, p = spec
        if k > size + 2 * p:
            raise ValueError(f"layer {name} kernel {k} exceeds its padded input {size + 2 * p}")
        size = out_size(size, k, s, p)
        field += (k - 1) * jump
        start += ((k - 1) / 2 - p) * jump
        jump *= s
        rows.append(LayerField(name, k, s, p, size, jump, field, start))
    return rows


def closed_form_field(kernels, strides) -> int:
    """The source document's closed form: r_0 = sum_l (k_l - 1) prod_{i<l} s_i + 1."""
    total, prod = 1, 1
    for k, s in zip(kernels, strides):
        total += (k - 1) * prod
        prod *= s
    return total


def empirical_field(net: nn.Sequential, input_size: int, channels: int, trials: int = 16,
                    seed: int = 0) -> tuple[int, int]:
    """Back-propagate a one-hot gradient from the centre output unit of ``net`` (spatial layers
    only) and measure the support of the input gradient: returns (first row, size) of the rows
    that receive gradient, the union over ``trials`` random inputs (one input can hide part of the
    field behind a ReLU at zero or a max-pool's routing)."""
    rng = np.random.default_rng(seed)
    net.eval()
    touched = np.zeros(input_size, dtype=bool)
    for _ in range(trials):
        x = rng.standard_normal((1, channels, input_size, input_size))
        x = x.astype(net.parameters()[next(iter(net.parameters()))].dtype)
        out = net.forward(x)
        dout = np.zeros(out.shape, dtype=out.dtype)
        dout[0, :, out.shape[2] // 2, out.shape[3] // 2] = 1
        dx = net.backward(dout)
        touched |= (dx != 0).any(axis=(0, 1, 3))
    rows = np.flatnonzero(touched)
    if rows.size == 0:
        raise RuntimeError("no input received gradient: is the network all zeros?")
    return int(rows[0]), int(rows[-1] - rows[0] + 1)


def format_table(rows: list[LayerField], input_size: int) -> str:
    head = f"{'layer':<10} {'kernel':>6} {'stride':>6} {'pad':>4} {'out':>5} {'jump':>5} {'field':>6} {'start':>7}"
    lines = [f"input {input_size}x{input_size}", head]
    for i, r in enumerate(rows, 1):
        lines.append(f"{f'{i} {r.name}':<10} {r.kernel:>6} {r.stride:>6} {r.padding:>4} "
                     f"{r.output_size:>5} {r.jump:>5} {r.field:>6} {r.start:>7.1f}")
    return "\n".join(lines)
