"""Nets from *specs*: a list of layer dicts such as ``{"type": "conv2d", "out_channels": 16,
"kernel_size": 3, "padding": 1}`` (in a file, ``[[layers]]`` TOML tables), each checked, its
input size inferred from the layer before.  A bad spec is one ValueError naming the layer
(``layers[2] (conv2d): ...``), with a hint when a key exists under another name.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import nn
from .checks import did_you_mean
from .rng import Generator
from .shapes import out_size
from .toml import read_toml

LAYER_TYPES = {
    "conv2d": (nn.Conv2d, ("out_channels", "kernel_size"),
               {"stride": 1, "padding": 0, "weight_scale": None}),
    "linear": (nn.Linear, ("out_features",), {"weight_scale": None}),
    "maxpool2d": (nn.MaxPool2d, ("kernel_size",), {"stride": None}),
    "relu": (nn.ReLU, (), {}),
    "sigmoid": (nn.Sigmoid, (), {}),
    "dropout": (nn.Dropout, ("p",), {}),
    "flatten": (nn.Flatten, (), {}),
}
SPEC_SYNONYMS = {
    "filters": "out_channels", "num_filters": "out_channels", "channels": "out_channels",
    "kernel": "kernel_size", "size": "kernel_size", "filter_size": "kernel_size",
    "pad": "padding", "units": "out_features", "hidden": "out_features",
    "hidden_dim": "out_features", "num_classes": "out_features", "features": "out_features",
    "rate": "p", "dropout": "p", "drop": "p", "slope": "negative_slope", "alpha": "negative_slope",
    "in_channels": "inferred from the layer before: leave it out",
    "in_features": "inferred from the layer before: leave it out",
    "num_features": "inferred from the layer before: leave it out",
}


def build_net(layers, input_dim, dtype=np.float32, seed=None) -> tuple[nn.Sequential, dict]:
    """The Sequential of :func:`build_model` and the config that rebuilds it."""
    input_dim = _check_input_dim(input_dim)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype={dtype}: expected float32 or float64")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers={layers!r}: expected a non-empty list of layer dicts")
    base = Generator(seed)
    shape = input_dim
    modules = []
    for i, spec in enumerate(layers):
        module, shape = _build_layer(i, spec, shape, dtype, base)
        modules.append(module)
    if len(shape) != 1:
        raise ValueError(f"layers: the last layer outputs shape {shape}; expected class scores "
                         f"(num_classes,) — end with a linear layer")
    config = {"layers": [dict(s) for s in layers], "input_dim": list(input_dim),
              "dtype": dtype.name, "seed": base.seed}
    return nn.Sequential(*modules), config


def _check_input_dim(input_dim):
    dims = tuple(input_dim) if isinstance(input_dim, (tuple, list)) else (input_dim,)
    if len(dims) not in (1, 3) or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                          and d >= 1 for d in dims):
        raise ValueError(f"input_dim={input_dim!r}: expected (C, H, W) or (D,) of positive ints")
    return tuple(int(d) for d in dims)


def _build_layer(i, spec, shape, dtype, base):
    """(module, output shape) for layer ``i`` of a spec given its input shape (without N)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"layers[{i}]={spec!r}: expected a dict with a 'type' key")
    kind = spec["type"]
    if kind not in LAYER_TYPES:
        raise ValueError(f"layers[{i}].type={kind!r}: expected one of {', '.join(LAYER_TYPES)}")
    cls, required, optional = LAYER_TYPES[kind]
    args = {k: v for k, v in spec.items() if k != "type"}
    missing = [k for k in required if k not in args]
    expected = list(required) + list(optional)
    unknown = [f"{k!r}{did_you_mean(k, expected, SPEC_SYNONYMS)}"
               for k in sorted(set(args) - set(expected), key=str)]
    if missing or unknown:
        raise ValueError(f"layers[{i}] ({kind}): missing {missing or 'none'}, unknown keys "
                         f"{', '.join(unknown) or 'none'}; expected {expected}")
    args = {**optional, **args}
    try:
        if kind == "conv2d":
            if len(shape) != 3:
                raise ValueError(f"needs a (C, H, W) input, got {shape}")
            m = nn.Conv2d(shape[0], args["out_channels"], args["kernel_size"], args["stride"],
                          args["padding"], weight_scale=args["weight_scale"], dtype=dtype,
                          rng=base.host)
            (kh, kw), s, p = m.kernel_size, m.stride, m.padding
            out = (m.out_channels, out_size(shape[1], kh, s, p), out_size(shape[2], kw, s, p))
        elif kind == "linear":
            m = nn.Linear(int(np.prod(shape)), args["out_features"],
                          weight_scale=args["weight_scale"], dtype=dtype, rng=base.host)
            out = (m.out_features,)
        elif kind == "maxpool2d":
            if len(shape) != 3:
                raise ValueError(f"needs a (C, H, W) input, got {shape}")
            m = nn.MaxPool2d(args["kernel_size"], args["stride"])
            k, s = m.kernel_size, m.stride
            out = (shape[0], out_size(shape[1], k, s), out_size(shape[2], k, s))
        elif kind == "dropout":
            m, out = nn.Dropout(args["p"], rng=base.spawn(i + 1)), shape
        elif kind == "flatten":
            m, out = nn.Flatten(), (int(np.prod(shape)),)
        elif kind in DEEPER_TYPES:
            m, out = _build_deeper(i, kind, args, shape, dtype, base)
        else:
            m, out = cls(), shape
    except (ValueError, TypeError) as e:
        raise ValueError(f"layers[{i}] ({kind}): {e}") from None
    except MemoryError as e:  # numpy's message names the size and shape; this names the layer
        raise MemoryError(f"layers[{i}] ({kind}) does not fit in memory: {e}") from None
    if min(out) < 1:
        raise ValueError(f"layers[{i}] ({kind}): input shape {shape} gives an empty output {out}")
    return m, out


def read_spec(path: str, label: str = "path") -> list[dict]:
    """The layer list of a TOML file written as ``[[layers]]`` tables, and nothing else: a
    setting such as ``epochs`` there would be ignored, so it is refused.  ``label`` names the
    file's argument in errors (``--model``)."""
    doc = read_toml(path, label)
    if not isinstance(doc.get("layers"), list):
        raise ValueError(f"{label} {path}: expected [[layers]] tables, found keys {sorted(doc)}")
    others = sorted(k for k in doc if k != "layers")
    if others:
        raise ValueError(f"{label} {path}: unknown top-level key {others[0]!r}: a model file "
                         f"holds only [[layers]] tables (training settings go on the command "
                         f"line or in a --config file)")
    return doc["layers"]


# --- layers for deeper nets: batch norm, average pooling, more activations, residual blocks ---

DEEPER_TYPES = {
    "batchnorm1d": (nn.BatchNorm1d, (), {"eps": 1e-5, "momentum": 0.1}),
    "batchnorm2d": (nn.BatchNorm2d, (), {"eps": 1e-5, "momentum": 0.1}),
    "avgpool2d": (nn.AvgPool2d, ("kernel_size",), {"stride": None}),
    "global_avgpool2d": (nn.GlobalAvgPool2d, (), {}),
    "leaky_relu": (nn.LeakyReLU, (), {"negative_slope": 0.01}),
    "tanh": (nn.Tanh, (), {}),
    # layers: the body's layer dicts; projection "auto": identity when the body keeps the shape,
    # else a 1x1 convolution (strided to the body's output size; a linear map for 1-D shapes);
    # "none": the body must keep the shape.
    "residual": (nn.Residual, ("layers",), {"projection": "auto"}),
}
LAYER_TYPES.update(DEEPER_TYPES)


def _needs_image(shape):
    if len(shape) != 3:
        raise ValueError(f"needs a (C, H, W) input, got {shape}")


def _build_deeper(i, kind, args, shape, dtype, base):
    """(module, output shape) of the DEEPER_TYPES layer ``i``; arguments already completed."""
    if kind == "batchnorm1d":
        if len(shape) != 1:
            raise ValueError(f"needs a (D,) input, got {shape}; use batchnorm2d on images")
        return nn.BatchNorm1d(shape[0], args["eps"], args["momentum"], dtype=dtype), shape
    if kind == "batchnorm2d":
        _needs_image(shape)
        return nn.BatchNorm2d(shape[0], args["eps"], args["momentum"], dtype=dtype), shape
    if kind == "avgpool2d":
        _needs_image(shape)
        m = nn.AvgPool2d(args["kernel_size"], args["stride"])
        k, s = m.kernel_size, m.stride
        return m, (shape[0], out_size(shape[1], k, s), out_size(shape[2], k, s))
    if kind == "global_avgpool2d":
        _needs_image(shape)
        return nn.GlobalAvgPool2d(), (shape[0],)
    if kind == "leaky_relu":
        return nn.LeakyReLU(args["negative_slope"]), shape
    if kind == "tanh":
        return nn.Tanh(), shape
    return _build_residual(i, args, shape, dtype, base)


def _build_residual(i, args, shape, dtype, base):
    layers, projection = args["layers"], args["projection"]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers={layers!r}: expected a non-empty list of layer dicts")
    if projection not in ("auto", "none"):
        raise ValueError(f"projection={projection!r}: expected 'auto' or 'none'")
    modules, out = [], shape
    for j, spec in enumerate(layers):  # errors read "layers[i] (residual): layers[j] (...): ..."
        m, out = _build_layer(j, spec, out, dtype, base)
        modules.append(m)
    body = nn.Sequential(*modules)
    # _build_layer gave body dropout layers the streams of top-level indices; renumber them
    # past every top-level stream (< 2**16), unique per residual layer i.
    dropouts = [m for m in body.modules() if isinstance(m, nn.Dropout)]
    for k, m in enumerate(dropouts):
        m.rng = base.spawn(((i + 1) << 16) + k + 1)
    if out == shape:
        return nn.Residual(body), out
    mismatch = f"the body maps {shape} to {out}"
    if projection == "none":
        raise ValueError(f"projection='none': expected a body that keeps the shape; {mismatch}")
    if len(shape) == len(out) == 1:
        return nn.Residual(body, nn.Linear(shape[0], out[0], dtype=dtype, rng=base.host)), out
    stride = _projection_stride(shape, out)
    if stride is None:
        raise ValueError(f"projection='auto': {mismatch}, which no strided 1x1 convolution of the "
                         f"input gives; expected a body that keeps or strides the spatial size")
    conv = nn.Conv2d(shape[0], out[0], 1, stride, dtype=dtype, rng=base.host)
    return nn.Residual(body, conv), out


def _projection_stride(shape, out):
    """The stride of a 1x1 convolution taking (C, H, W) to out's spatial size, or None."""
    if len(shape) != 3 or len(out) != 3:
        return None
    for s in range(1, max(shape[1], shape[2]) + 1):
        if out_size(shape[1], 1, s) == out[1] and out_size(shape[2], 1, s) == out[2]:
            return s
    return None
