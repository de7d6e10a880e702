"""Containers: ``Sequential`` (layers in order, with the fusions that remove whole passes) and
``Residual`` (a body plus a shortcut).

In a Sequential, a ReLU directly followed by a MaxPool2d always runs as one op
(F.relu_maxpool2d_*): pooling first is exact because ReLU is monotone, and it reads and writes
1/kernel_size^2 as much.  A Conv2d or Linear with a bias right before such a ReLU joins the
step: where the device fuses it (:data:`gpucnn.primitives.FUSIONS`, CUDA), the layer leaves its
bias out and the ReLU (or the fused ReLU + MaxPool2d) adds it in the same pass, one pass over
the layer's output less and the same values; elsewhere (the CPU, whose native conv adds its
bias in its own pass) each layer runs as it is.  A ReLU after a Conv2d, BatchNorm1d/2d or a
Residual (and before no MaxPool2d) is done by that layer (``forward(x, relu=True)``): the CPU's
native conv clamps its outputs as it stores them, its batch norm applies the ReLU in its output
pass and recomputes its mask in the backward, a residual sum and its ReLU are one pass
(``F.add_relu_forward``); on CUDA a conv's bias and ReLU are one launch and the other ops run
one after the other.  In eval mode a Conv2d and the BatchNorm2d after it (and a ReLU after
that, before no pool) are one convolution with the batch norm folded into its weights
(``F.conv2d_bn_eval_forward``); the backward still gives every layer's gradients.
"""
from __future__ import annotations

from .. import functional as F
from .. import primitives
from .activation import ReLU
from .conv import Conv2d
from .linear import Linear
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import MaxPool2d


def _relu_taker(layer) -> bool:
    """The layer can end in a ReLU itself (``forward(x, relu=True)``)."""
    return type(layer) in (Conv2d, BatchNorm1d, BatchNorm2d, Residual)


def _folds(layers, i) -> bool:
    """layers[i] is a Conv2d and layers[i + 1] a BatchNorm2d of its channels: one step in eval."""
    return (type(layers[i]) is Conv2d and i + 1 < len(layers)
            and type(layers[i + 1]) is BatchNorm2d
            and layers[i + 1].num_features == layers[i].out_channels)


def _plan(layers, fold_bn=False) -> list[tuple[int, int]]:
    """(first, last) layer index of each step: [Conv2d|Linear] ReLU [MaxPool2d] runs as one, and
    so do Conv2d, BatchNorm1d/2d or Residual and a ReLU after it (a ReLU before a MaxPool2d
    goes with the pool instead: pooling first reads less; a Conv2d then leaves its bias to the
    pool's read where the device fuses that).  ``fold_bn`` (eval mode): a Conv2d and the
    BatchNorm2d after it run as one, with the ReLU after them as above."""
    steps, i = [], 0
    while i < len(layers):
        folded = fold_bn and _folds(layers, i)
        j = i + 2 if folded else i + 1 if type(layers[i]) in (Conv2d, Linear) or _relu_taker(layers[i]) else i
        if j < len(layers) and type(layers[j]) is ReLU:
            pool = j + 1 < len(layers) and type(layers[j + 1]) is MaxPool2d
            if pool and (folded or _relu_taker(layers[i]) and type(layers[i]) is not Conv2d):
                steps.append((i, j - 1))
            else:
                steps.append((i, j + 1 if pool else j))
        else:
            steps.append((i, j - 1 if folded else i))
        i = steps[-1][1] + 1
    return steps


def _covered(layers, steps) -> set[int]:
    """Indices of the layers whose work another layer of their step does (forward and backward):
    ReLUs done by the MaxPool2d after one or by the Conv2d, BatchNorm or Residual before one,
    and BatchNorm2d layers folded into the Conv2d before them."""
    return {j for first, last in steps for j in range(first, last + 1)
            if type(layers[j]) is BatchNorm2d and j > first
            or type(layers[j]) is ReLU and (j < last or (j > first and _relu_taker(layers[first])))}


class Sequential(Module):
    """Layers applied in order; parameters are named ``"<index>.<name>"`` as in PyTorch."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layer {i}: expected a gpucnn.nn.Module, got {type(layer).__name__}")
        self.layers = list(layers)
        # (steps, covered) in training and in eval mode; backward takes what forward ran
        self._plans = {mode: (steps, _covered(self.layers, steps)) for mode, steps in
                       ((True, _plan(self.layers)), (False, _plan(self.layers, fold_bn=True)))}
        self._steps, self._covered = self._plans[True]

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def forward(self, x):
        self._steps, self._covered = self._plans[bool(self.training)]
        for first, last in self._steps:
            x = self._forward_step(first, last, x)
        return x

    def _forward_step(self, first, last, x):
        layers = self.layers[first:last + 1]
        if len(layers) == 1:
            return layers[0].forward(x)
        if type(layers[1]) is BatchNorm2d:  # eval mode: folded into the Conv2d before it
            return layers[0].forward(x, relu=len(layers) == 3, bn=layers[1])
        if _relu_taker(layers[0]) and len(layers) == 2:  # no pool in the step
            return layers[0].forward(x, relu=True)
        bias = None
        if type(layers[0]) is not ReLU:  # a Conv2d or Linear before the ReLU
            head, layers = layers[0], layers[1:]
            pooled = len(layers) == 2
            fused = head.bias is not None and primitives.fusion(
                primitives.of(x), "bias_relu_maxpool_forward" if pooled else "bias_relu_forward")
            x = head.forward(x, add_bias=not fused)
            bias = head.bias if fused else None
        if len(layers) == 2:
            return layers[1].forward(x, after_relu=True, bias=bias)
        return layers[0].forward(x, bias=bias)

    def backward(self, dout, need_dx=True):
        """Back-propagate through every layer; ``need_dx=False`` lets the first layer skip its
        input gradient (the data's gradient is rarely wanted)."""
        for i in reversed(range(len(self.layers))):
            if i not in self._covered:
                dout = self.layers[i].backward(dout, need_dx=need_dx or i > 0)
        return dout

    def __repr__(self):
        inner = "".join(f"\n  ({i}): " + repr(layer).replace("\n", "\n  ")  # nested blocks indent
                        for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


class Residual(Module):
    """out = body(x) + shortcut(x): the shortcut is ``projection(x)`` when a projection is given
    (typically a 1x1 ``Conv2d``, strided when the body downsamples), else ``x`` itself.

    ``body`` is any module (usually a ``Sequential``) whose output has the shortcut's shape.
    Backward sums both paths' input gradients.  Parameters are named ``body.<...>`` and
    ``projection.<...>``.
    """

    def __init__(self, body: Module, projection: Module | None = None):
        super().__init__()
        for name, m in (("body", body), ("projection", projection)):
            if not (isinstance(m, Module) or (name == "projection" and m is None)):
                raise TypeError(f"{name}={type(m).__name__}: expected a gpucnn.nn.Module"
                                + (" or None" if name == "projection" else ""))
        self.body, self.projection = body, projection

    def children(self):
        own = [("body", self.body)]
        return own + [("projection", self.projection)] if self.projection is not None else own

    def forward(self, x, relu=False):
        """``relu``: relu(body(x) + shortcut) in one pass (nn.Sequential fuses a ReLU after
        this block); the backward then takes the gradient of that."""
        out = self.body.forward(x)
        shortcut = x if self.projection is None else self.projection.forward(x)
        if out.shape != shortcut.shape:
            raise ValueError(f"body(x).shape={tuple(out.shape)}: expected the shortcut's "
                             f"{tuple(shortcut.shape)}; give a projection (e.g. a 1x1 Conv2d) "
                             f"that maps x to the body's shape")
        if not relu:
            self._cache = None
            return out + shortcut
        out, self._cache = F.add_relu_forward(out, shortcut)
        return out

    def backward(self, dout, need_dx=True):
        relu_out = self._take_cache()
        if relu_out is not None:
            dout = F.relu_backward(dout, relu_out)
        dx = self.body.backward(dout, need_dx=need_dx)
        dshort = dout if self.projection is None else self.projection.backward(dout, need_dx)
        return dx + dshort if need_dx else None

    def __repr__(self):
        body = repr(self.body).replace("\n", "\n  ")
        proj = "" if self.projection is None else f"\n  projection={self.projection!r}"
        return f"Residual(\n  body={body}{proj}\n)"
