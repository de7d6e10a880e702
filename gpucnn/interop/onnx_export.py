"""A gpucnn model as an ONNX graph, written with the ``onnx`` package's helper API (no PyTorch).

The graph is the model's evaluation forward: batch norm with its running statistics, dropout
as Identity.  Its input is ``"input"`` (N, *input_shape) and its output ``"scores"``
(N, *output shape), N free; each weight is an initializer named as in ``model.state_dict()``
(``net.0.weight``) and each node after the layer it comes from (``net.3.body.0``).

Opset 15 (:data:`OPSET`), the lowest in which every operator emitted here (Conv, MaxPool,
AveragePool, GlobalAveragePool, BatchNormalization, Relu, LeakyRelu, Sigmoid, Tanh, Identity,
Flatten, Gemm, Add) has, for float32/float64 inference, the semantics of its newest version:
BatchNormalization-15 states its inference mode (``training_mode=0``) where versions 9 to 13
implied it from the number of outputs (onnx's own reference evaluator misreads that and mixes
in batch statistics); later versions of the others only add types (bfloat16, integers, float8)
or attributes gpucnn never sets (AveragePool's dilations, 19).  Lower is older and loads in
more runtimes: opset 15 is ONNX 1.10 (IR version 8), run by onnxruntime 1.9 (2021) and later.

A float64 model gives a float64 graph.  ONNX attributes are float32, so its LeakyRelu slope and
batch norm epsilon are rounded to float32 (0.2 becomes 0.2 * (1 + 1.5e-8)); and onnxruntime's
CPU provider has no float64 Conv, AveragePool, GlobalAveragePool or LeakyRelu (1.32): export a
float32 copy to run there.
"""
from __future__ import annotations

import json

import numpy as np

from .. import __version__, nn
from ..device import to_numpy
from ..models import Classifier
from ..shapes import out_size
from .optional import require

OPSET = 15
INPUT, OUTPUT = "input", "scores"
_ACTIVATIONS = {nn.ReLU: "Relu", nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh"}


def to_onnx(model: nn.Module, input_shape=None):
    """``model`` (a :class:`~gpucnn.models.Classifier` or any :class:`gpucnn.nn.Module`) as an
    ``onnx.ModelProto``; save it with ``onnx.save(proto, "model.onnx")``.

    ``input_shape``: one sample's shape, (C, H, W) or (D,); by default the ``input_dim`` the
    model was built for (models from specs record it).  A layer ONNX export does not know, or
    one that does not fit its input's shape, is a ValueError naming the layer.
    """
    onnx = require("onnx")
    shape = _input_shape(model, input_shape)
    graph = _Graph(onnx, _dtype(model))
    out, out_shape = graph.emit(model, INPUT, shape, "")
    if out == INPUT:  # a model of identities: the graph still needs a node to output from
        out = graph.node("Identity", [out], "output")
    graph.rename(out, OUTPUT)
    helper = onnx.helper
    value = helper.make_tensor_value_info
    proto = helper.make_model(
        helper.make_graph(graph.nodes, "gpucnn", [value(INPUT, graph.elem, ["N", *shape])],
                          [value(OUTPUT, graph.elem, ["N", *out_shape])], graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gpucnn",
        producer_version=__version__,
        ir_version=helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)]))
    config = model.config() if isinstance(model, Classifier) else None
    if config is not None:
        helper.set_model_props(proto, {"gpucnn.model": json.dumps(config)})
    onnx.checker.check_model(proto, full_check=True)  # shapes inferred and checked too
    return proto


def _input_shape(model, input_shape):
    if input_shape is None:
        config = model.config() if isinstance(model, Classifier) else None
        if config is None:
            raise ValueError("input_shape=None: expected one sample's shape, (C, H, W) or (D,); "
                             "this model records none (it was not built from a spec)")
        input_shape = config["input_dim"]
    dims = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(dims) not in (1, 3) or not all(isinstance(d, (int, np.integer)) and d >= 1
                                          for d in dims):
        raise ValueError(f"input_shape={input_shape!r}: expected (C, H, W) or (D,) of positive "
                         f"ints")
    return tuple(int(d) for d in dims)


def _dtype(model) -> np.dtype:
    dtypes = {np.dtype(p.dtype) for _, p in model.named_parameters()}
    if len(dtypes) > 1:
        raise ValueError(f"model: parameters of several dtypes {sorted(d.name for d in dtypes)}: "
                         f"expected one (float32 or float64)")
    return dtypes.pop() if dtypes else np.dtype(np.float32)


def _cannot(path, m, why):
    return ValueError(f"{path or 'model'}={type(m).__name__}: cannot be exported to ONNX: {why}")


class _Graph:
    """The nodes and initializers so far; ``emit`` adds a module's and returns its output."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, dtype
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes, self.initializers, self.names = [], [], set()

    def node(self, op, inputs, path, **attrs) -> str:
        """Add one node; its output (and name) is ``path``, made unique; returns the output."""
        name, k = path, 1
        while name in self.names or name == INPUT:
            name, k = f"{path}:{k}", k + 1
        self.names.add(name)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def weight(self, path, attr, array) -> str:
        name = f"{path}.{attr}" if path else attr
        value = np.ascontiguousarray(to_numpy(array), dtype=self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def rename(self, old, new):
        for node in self.nodes:
            node.output[:] = [new if o == old else o for o in node.output]

    def emit(self, m, x, shape, path):
        """``(output name, output shape)`` of module ``m`` at ``path`` on input ``x`` of one
        sample's ``shape``."""
        kind = type(m)
        if isinstance(m, Classifier):
            return self.emit(m.net, x, shape, _join(path, "net"))
        if kind is nn.Sequential:
            for name, child in m.children():
                x, shape = self.emit(child, x, shape, _join(path, name))
            return x, shape
        if kind is nn.Residual:
            return self._residual(m, x, shape, path)
        if kind in _ACTIVATIONS:
            return self.node(_ACTIVATIONS[kind], [x], path), shape
        if kind is nn.LeakyReLU:
            return self.node("LeakyRelu", [x], path, alpha=m.negative_slope), shape
        if kind is nn.Dropout:
            return self.node("Identity", [x], path), shape
        if kind is nn.Flatten:
            return self.node("Flatten", [x], path, axis=1), (int(np.prod(shape)),)
        if kind is nn.Linear:
            return self._linear(m, x, shape, path)
        if kind is nn.BatchNorm1d or kind is nn.BatchNorm2d:
            return self._batchnorm(m, x, shape, path)
        if kind in (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.GlobalAvgPool2d):
            if len(shape) != 3:
                raise _cannot(path, m, f"its input has shape {shape}: expected (C, H, W)")
            if kind is nn.GlobalAvgPool2d:
                pooled = self.node("GlobalAveragePool", [x], path)
                return self.node("Flatten", [pooled], path, axis=1), (shape[0],)
            if kind is nn.Conv2d:
                return self._conv(m, x, shape, path)
            k, s = m.kernel_size, m.stride
            op = "MaxPool" if kind is nn.MaxPool2d else "AveragePool"
            out = (shape[0], out_size(shape[1], k, s), out_size(shape[2], k, s))
            if min(out) < 1:
                raise _cannot(path, m, f"input shape {shape} gives an empty output {out}")
            return self.node(op, [x], path, kernel_shape=[k, k], strides=[s, s]), out
        raise _cannot(path, m, "expected one of Conv2d, Linear, MaxPool2d, AvgPool2d, "
                               "GlobalAvgPool2d, BatchNorm1d, BatchNorm2d, ReLU, LeakyReLU, "
                               "Sigmoid, Tanh, Dropout, Flatten, Sequential, Residual")

    def _conv(self, m, x, shape, path):
        if shape[0] != m.in_channels:
            raise _cannot(path, m, f"its input has {shape[0]} channels: expected {m.in_channels}")
        (kh, kw), s, p = m.kernel_size, m.stride, m.padding
        out = (m.out_channels, out_size(shape[1], kh, s, p), out_size(shape[2], kw, s, p))
        if min(out) < 1:
            raise _cannot(path, m, f"input shape {shape} gives an empty output {out}")
        inputs = [x, self.weight(path, "weight", m.weight)]
        if m.bias is not None:
            inputs.append(self.weight(path, "bias", m.bias))
        y = self.node("Conv", inputs, path, kernel_shape=[kh, kw], strides=[s, s],
                      pads=[p, p, p, p])
        return y, out

    def _linear(self, m, x, shape, path):
        if int(np.prod(shape)) != m.in_features:
            raise _cannot(path, m, f"its input has shape {shape}: expected {m.in_features} "
                                   f"features")
        if len(shape) != 1:  # gpucnn's Linear flattens (N, ...) to (N, in_features)
            x = self.node("Flatten", [x], path, axis=1)
        inputs = [x, self.weight(path, "weight", m.weight)]  # (in, out): Gemm's B as it is
        if m.bias is not None:
            inputs.append(self.weight(path, "bias", m.bias))
        return self.node("Gemm", inputs, path), (m.out_features,)

    def _batchnorm(self, m, x, shape, path):
        rank = 1 if type(m) is nn.BatchNorm1d else 3
        if len(shape) != rank or shape[0] != m.num_features:
            want = "(D,)" if rank == 1 else "(C, H, W)"
            raise _cannot(path, m, f"its input has shape {shape}: expected {want} with "
                                   f"{m.num_features} features")
        inputs = [x] + [self.weight(path, a, getattr(m, a))
                        for a in ("gamma", "beta", "running_mean", "running_var")]
        return self.node("BatchNormalization", inputs, path, epsilon=m.eps), shape

    def _residual(self, m, x, shape, path):
        out, out_shape = self.emit(m.body, x, shape, _join(path, "body"))
        short, short_shape = x, shape
        if m.projection is not None:
            short, short_shape = self.emit(m.projection, x, shape, _join(path, "projection"))
        if out_shape != short_shape:
            raise _cannot(path, m, f"its body gives shape {out_shape}, its shortcut "
                                   f"{short_shape}: expected the same")
        return self.node("Add", [out, short], path), out_shape


def _join(path, name):
    return f"{path}.{name}" if path else name
