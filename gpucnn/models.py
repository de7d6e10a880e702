"""Classifiers: a network that ends in class scores, with the softmax loss and L2 on its weights.

A model is a :class:`Classifier` around any :class:`gpucnn.nn.Module` (usually a ``Sequential``).
``model.loss(X)`` returns test-time class scores; ``model.loss(X, y)`` returns ``(loss, grads)``
with ``loss = softmax cross-entropy + 0.5 * reg * sum(W**2)`` over weights (never biases) and
``grads`` keyed like ``model.parameters()`` — the CS231n model interface.

Models are built from a *spec*, a list of layer dicts such as ``{"type": "conv2d",
"out_channels": 16, "kernel_size": 3, "padding": 1}``; input channels and features are inferred
from ``input_dim``.  A model built from a spec can describe itself (``config()``) and be rebuilt
from that description (``model_from_config``), which is how checkpoints and saved weights record
their architecture.  :class:`ThreeLayerConvNet` is the source documents' network built this way.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from . import nn
from .checks import check_int, check_real
from .device import to_device, to_numpy
from .optim import clip_grad_norm_
from .rng import Generator
from .shapes import out_size
from .toml import read_toml

# type -> (module class, required keys, optional keys with defaults)
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
ACTIVATIONS = ("relu", "sigmoid")


class Classifier(nn.Module):
    """``net`` maps X (N, *input_dim) to scores (N, num_classes); ``reg`` is the L2 strength.

    Parameters are named ``"net.<layer index>.<name>"``.
    """

    def __init__(self, net: nn.Module, reg: float = 0.0):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net: expected a gpucnn.nn.Module, got {type(net).__name__}")
        self.net = net
        self.reg = check_real("reg", reg, 0)
        self._config = None  # set by build_model: what model_from_config needs to rebuild this

    def children(self):
        return [("net", self.net)]

    def forward(self, X):
        return self.net.forward(X)

    def loss(self, X, y=None, *, l2_in_grads: bool = True, label_smoothing: float = 0.0):
        """X (N, *input_dim).  y None: test-time scores (N, K), dropout off whatever the mode.
        y (N,) ints: ``(loss, grads)`` for one training step in the current mode.

        The loss includes L2's 0.5 * reg * sum(W**2); ``l2_in_grads=False`` leaves its gradient
        reg * W out of the weight gradients, for an optimizer to fold into its update:
        ``opt.step(grads, weight_decay=model.weight_decay())`` (the Trainer does this).
        ``label_smoothing`` is :func:`gpucnn.functional.softmax_cross_entropy`'s."""
        if y is None:
            was_training = self.training
            self.eval()
            try:
                return self.net.forward(X)
            finally:
                self.train(was_training)
        scores = self.net.forward(X)
        data_loss, dscores = F.softmax_cross_entropy(scores, y, label_smoothing)
        self.net.backward(dscores, need_dx=False)
        grads = {f"net.{k}": v for k, v in self.net.gradients().items()}
        if not self.reg:  # skip a full pass per weight per step
            return data_loss, grads
        params = self.parameters()
        weights = _weight_names(params)
        if not l2_in_grads:
            return F.l2_loss([params[k] for k in weights], self.reg, plus=data_loss), grads
        reg_loss, _ = F.l2_penalty([params[k] for k in weights], self.reg,
                                   add_to=[grads[k] for k in weights])
        return data_loss + reg_loss, grads

    def weight_names(self) -> list[str]:
        """The parameters L2 applies to: conv and linear weights, not biases."""
        return _weight_names(self.parameters())

    def weight_decay(self) -> dict:
        """{name: reg} for the weights L2 applies to (empty when reg is 0): the
        ``weight_decay`` of ``Optimizer.step`` after ``loss(X, y, l2_in_grads=False)``."""
        return dict.fromkeys(self.weight_names(), self.reg) if self.reg else {}

    def train_step(self, X, y, optimizer, *, label_smoothing: float = 0.0,
                   clip_grad_norm: float | None = None):
        """One training step on a batch: the loss and its gradients (``label_smoothing`` as in
        :meth:`loss`), the gradients clipped to a global norm of ``clip_grad_norm`` if given,
        then ``optimizer``'s update with L2's gradient folded into it (as the Trainer does,
        less its gradient all-reduce before the clipping); returns the loss."""
        loss, grads = self.loss(X, y, l2_in_grads=False, label_smoothing=label_smoothing)
        if clip_grad_norm is not None:
            clip_grad_norm_(grads, clip_grad_norm)
        optimizer.step(grads, weight_decay=self.weight_decay())
        return loss

    def predict(self, X, batch_size: int = 1000) -> np.ndarray:
        """Predicted labels (N,) as NumPy; X is scored ``batch_size`` rows at a time on the
        model's device, so a large X never has to fit there at once."""
        batch_size = check_int("batch_size", batch_size, 1)
        out = np.empty(len(X), dtype=np.int64)
        for i in range(0, len(X), batch_size):
            xb = to_device(X[i:i + batch_size], self.device).astype(self.dtype, copy=False)
            out[i:i + batch_size] = to_numpy(self.loss(xb).argmax(axis=1))
        return out

    @property
    def dtype(self):
        return next(iter(self.parameters().values())).dtype

    def config(self) -> dict | None:
        """A JSON-able description that :func:`model_from_config` rebuilds; None when this model
        was not built from a spec."""
        return None if self._config is None else dict(self._config, reg=self.reg)

    def __repr__(self):
        return f"{type(self).__name__}(reg={self.reg}, net={self.net!r})"


def _weight_names(params: dict) -> list[str]:
    return [k for k in params if k.endswith(".weight")]


def build_model(layers, input_dim, *, reg: float = 0.0, dtype=np.float32,
                seed: int | None = None) -> Classifier:
    """A :class:`Classifier` from a list of layer dicts (see ``LAYER_TYPES``).

    ``input_dim`` is (C, H, W) or (D,).  Weights are drawn from ``Generator(seed).host`` in layer
    order; dropout layer ``i`` draws its masks from ``Generator(seed).spawn(i + 1)``, so a seeded
    model is deterministic.  A bad spec raises ValueError naming the layer.
    """
    net, config = build_net(layers, input_dim, dtype, seed)
    model = Classifier(net, reg)
    model._config = config
    return model


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
    unknown = sorted(set(args) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError(f"layers[{i}] ({kind}): missing {missing or 'none'}, unknown keys "
                         f"{unknown or 'none'}; expected {list(required) + list(optional)}")
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
    if min(out) < 1:
        raise ValueError(f"layers[{i}] ({kind}): input shape {shape} gives an empty output {out}")
    return m, out


def three_layer_spec(num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                     weight_scale=1e-3, dropout=0.0, activation="relu") -> list[dict]:
    """conv ('same', stride 1) - act - 2x2 max pool - dropout - affine - act - dropout - affine."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
    if not isinstance(filter_size, numbers.Integral) or filter_size < 1 or filter_size % 2 == 0:
        raise ValueError(f"filter_size={filter_size!r}: expected an odd positive int ('same' padding)")
    act = {"type": activation}
    return [
        {"type": "conv2d", "out_channels": num_filters, "kernel_size": filter_size,
         "padding": (filter_size - 1) // 2, "weight_scale": weight_scale},
        act, {"type": "maxpool2d", "kernel_size": 2}, {"type": "dropout", "p": dropout},
        {"type": "linear", "out_features": hidden_dim, "weight_scale": weight_scale},
        act, {"type": "dropout", "p": dropout},
        {"type": "linear", "out_features": num_classes, "weight_scale": weight_scale},
    ]


class ThreeLayerConvNet(Classifier):
    """conv - relu - 2x2 max pool - dropout - affine - relu - dropout - affine - softmax.

    The convolution keeps the spatial size (stride 1, padding (filter_size - 1) // 2), so
    filter_size must be odd.  Weights ~ N(0, weight_scale^2), biases 0.  ``dropout`` is the drop
    probability of both dropout layers (as in the design study, seeds/002);
    ``activation="sigmoid"`` gives the sigmoid net of seeds/001.
    Parameters: ``net.0.*`` (conv), ``net.4.*`` (hidden affine), ``net.7.*`` (output affine).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dropout=0.0, dtype=np.float32,
                 seed=None, activation="relu"):
        spec = three_layer_spec(num_filters, filter_size, hidden_dim, num_classes, weight_scale,
                                dropout, activation)
        net, config = build_net(spec, input_dim, dtype, seed)
        super().__init__(net, reg)
        self._config = config


def model_from_config(config: dict) -> Classifier:
    """Rebuild a model from ``Classifier.config()`` (weights freshly initialised; load them after)."""
    try:
        return build_model(config["layers"], config["input_dim"], reg=config.get("reg", 0.0),
                           dtype=config.get("dtype", "float32"), seed=config.get("seed"))
    except (KeyError, TypeError) as e:
        raise ValueError(f"model config {config!r}: expected 'layers' and 'input_dim' ({e})") from None


def read_spec(path: str) -> list[dict]:
    """The layer list of a TOML file written as ``[[layers]]`` tables."""
    doc = read_toml(path, "model spec")
    if not isinstance(doc.get("layers"), list):
        raise ValueError(f"{path}: expected [[layers]] tables, found keys {sorted(doc)}")
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
