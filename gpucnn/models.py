"""Classifiers: a network that ends in class scores, with the softmax loss and L2 on its weights.

A model is a :class:`Classifier` around any :class:`gpucnn.nn.Module` (usually a ``Sequential``).
``model.loss(X)`` returns test-time class scores; ``model.loss(X, y)`` returns ``(loss, grads)``
with ``loss = softmax cross-entropy + 0.5 * reg * sum(W**2)`` over weights (never biases) and
``grads`` keyed like ``model.parameters()`` — the CS231n model interface.

Models are built from a *spec* (:mod:`gpucnn.specs`), a list of layer dicts such as
``{"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}``; input channels and
features are inferred from ``input_dim``.  A model built from a spec can describe itself
(``config()``) and be rebuilt from that description (``model_from_config``), which is how
checkpoints and saved weights record their architecture.  :class:`ThreeLayerConvNet` is the
source documents' network built this way.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from . import nn
from .checks import check_int, check_real
from .device import to_device, to_numpy
from .optim import clip_grad_norm_
from .specs import build_net, read_spec  # noqa: F401 (read_spec: importable here, as before specs.py)

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
        self.check_input(np.shape(X)[1:])
        out = np.empty(len(X), dtype=np.int64)
        for i in range(0, len(X), batch_size):
            xb = to_device(X[i:i + batch_size], self.device).astype(self.dtype, copy=False)
            out[i:i + batch_size] = to_numpy(self.loss(xb).argmax(axis=1))
        return out

    @property
    def input_dim(self) -> tuple | None:
        """The sample shape, (C, H, W) or (D,), this model was built for; None when it was not
        built from a spec."""
        return None if self._config is None else tuple(self._config["input_dim"])

    def check_input(self, sample_shape, data: str = "X", trained_on: str | None = None) -> None:
        """A ValueError in the user's terms when samples of ``sample_shape`` (``data`` names
        them; ``trained_on`` the model's data, if known) are not what this model takes, rather
        than a layer's shape error (a (D,) model takes any sample of D values)."""
        want, got = self.input_dim, tuple(sample_shape)
        if want is None or got == want or (len(want) == 1 and int(np.prod(got)) == want[0]):
            return
        of = f", trained on {trained_on}" if trained_on else ""
        raise ValueError(f"the model takes {_dims(want)} inputs{of}, but {data} is "
                         f"{_dims(got)}: expected data of {_dims(want)} samples, or a model "
                         f"built for {_dims(got)}")

    @property
    def dtype(self):
        return next(iter(self.parameters().values())).dtype

    def config(self) -> dict | None:
        """A JSON-able description that :func:`model_from_config` rebuilds; None when this model
        was not built from a spec."""
        return None if self._config is None else dict(self._config, reg=self.reg)

    def __repr__(self):
        return f"{type(self).__name__}(reg={self.reg}, net={self.net!r})"


def _dims(shape) -> str:
    return "x".join(map(str, shape))


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
    ``filters`` and ``hidden`` are the names of ``gpucnn train``'s flags and settings; CS231n's
    ``num_filters`` and ``hidden_dim`` (default 32 and 100) name the same two, one or the other.
    Parameters: ``net.0.*`` (conv), ``net.4.*`` (hidden affine), ``net.7.*`` (output affine).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=None, filter_size=7, hidden_dim=None,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dropout=0.0, dtype=np.float32,
                 seed=None, activation="relu", *, filters=None, hidden=None):
        num_filters = _one_of("filters", filters, "num_filters", num_filters, 32)
        hidden_dim = _one_of("hidden", hidden, "hidden_dim", hidden_dim, 100)
        spec = three_layer_spec(num_filters, filter_size, hidden_dim, num_classes, weight_scale,
                                dropout, activation)
        net, config = build_net(spec, input_dim, dtype, seed)
        super().__init__(net, reg)
        self._config = config


def _one_of(name, value, old_name, old_value, default):
    """A setting given under its name or its CS231n name, not both."""
    if value is not None and old_value is not None:
        raise ValueError(f"{name}={value!r} and {old_name}={old_value!r}: the same setting "
                         f"twice; expected one of the two")
    return value if value is not None else old_value if old_value is not None else default


def model_from_config(config: dict) -> Classifier:
    """Rebuild a model from ``Classifier.config()`` (weights freshly initialised; load them after)."""
    try:
        return build_model(config["layers"], config["input_dim"], reg=config.get("reg", 0.0),
                           dtype=config.get("dtype", "float32"), seed=config.get("seed"))
    except (KeyError, TypeError) as e:
        raise ValueError(f"model config {config!r}: expected 'layers' and 'input_dim' ({e})") from None
