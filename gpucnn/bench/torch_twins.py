"""The same networks and ops in PyTorch, set up like gpucnn's, for side-by-side timings."""
from __future__ import annotations

import functools

import numpy as np

from .. import nn
from ..device import to_numpy
from ..models import build_model
from .nets import LR, REG, Config, layer_spec, make_data, op_shapes


def import_torch(device: str, threads: int):
    """PyTorch set up like gpucnn (threads; cudnn.benchmark on CUDA), or None if not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch


@functools.lru_cache(maxsize=None)
def _residual_class():
    import torch

    class Residual(torch.nn.Module):
        """body(x) + (projection(x) or x), as gpucnn.nn.Residual."""

        def __init__(self, body, projection):
            super().__init__()
            self.body, self.projection = body, projection

        def forward(self, x):
            return self.body(x) + (x if self.projection is None else self.projection(x))

    return Residual


def _copy(dst, a) -> None:
    dst.data.copy_(_torch().from_numpy(np.ascontiguousarray(to_numpy(a))))


def _torch():
    import torch

    return torch


def _convert(m, dtype):
    """The torch module equal to gpucnn module m, with copies of its parameters (torch dtype)."""
    T, kind = _torch().nn, type(m)
    if kind is nn.Sequential:
        return T.Sequential(*(_convert(layer, dtype) for layer in m.layers))
    if kind is nn.Residual:
        proj = None if m.projection is None else _convert(m.projection, dtype)
        return _residual_class()(_convert(m.body, dtype), proj)
    if kind is nn.Conv2d:
        t = T.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                     bias=m.bias is not None, dtype=dtype)
        _copy(t.weight, m.weight)
    elif kind is nn.Linear:
        t = T.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dtype)
        _copy(t.weight, to_numpy(m.weight).T)  # gpucnn's is (in, out)
    elif kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        t = getattr(T, kind.__name__)(m.num_features, m.eps, m.momentum, dtype=dtype)
        for dst, src in ((t.weight, m.gamma), (t.bias, m.beta), (t.running_mean, m.running_mean),
                         (t.running_var, m.running_var)):
            _copy(dst, src)
        return t
    else:
        simple = {nn.ReLU: lambda: T.ReLU(inplace=True), nn.Sigmoid: T.Sigmoid, nn.Tanh: T.Tanh,
                  nn.Flatten: T.Flatten, nn.Dropout: lambda: T.Dropout(m.p),
                  nn.LeakyReLU: lambda: T.LeakyReLU(m.negative_slope, inplace=True),
                  nn.MaxPool2d: lambda: T.MaxPool2d(m.kernel_size, m.stride),
                  nn.AvgPool2d: lambda: T.AvgPool2d(m.kernel_size, m.stride),
                  nn.GlobalAvgPool2d: lambda: T.Sequential(T.AdaptiveAvgPool2d(1), T.Flatten())}
        return simple[kind]()
    if m.bias is not None:
        _copy(t.bias, m.bias)
    return t


def torch_twin(net, dtype, device: str = "cpu"):
    """The PyTorch module equal to gpucnn module ``net`` (a Sequential, Residual or layer),
    built from its modules with copies of its parameters and running statistics, so both start
    from the same weights.  ReLUs run in place, as in torchvision's ResNets."""
    torch = _torch()
    with torch.no_grad():
        return _convert(net, getattr(torch, np.dtype(dtype).name)).to(device)


def torch_train_step(net, X, y, lr: float = LR, reg: float = REG):
    """``step()``: one training step of torch module ``net`` on host arrays X, y:
    cross-entropy, weight decay ``reg`` on conv and linear weights only (the gradient of
    gpucnn's 0.5 * reg * sum(W**2)), plain SGD."""
    torch = _torch()
    device = next(net.parameters()).device
    decayed = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    ids = {id(p) for p in decayed}
    rest = [p for p in net.parameters() if id(p) not in ids]
    opt = torch.optim.SGD([{"params": decayed, "weight_decay": reg}, {"params": rest}], lr=lr)
    X, y = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_infer_step(net, X):
    """``step()``: class scores of torch module ``net`` for host array X, in eval mode without
    autograd (``torch.inference_mode``)."""
    torch = _torch()
    X = torch.from_numpy(X).to(next(net.parameters()).device)
    net.eval()

    def step():
        with torch.inference_mode():
            return net(X)

    return step


def torch_step(cfg: Config, dtype, device: str, init=None):
    """``step()`` for network (a) or (b) in PyTorch (:func:`torch_train_step`); ``init``: the
    gpucnn model to copy, so both start from the same weights (else a fresh one, seed 0)."""
    model = init if init is not None else build_model(
        layer_spec(cfg.spec), (cfg.spec.channels, cfg.spec.size, cfg.spec.size), reg=REG,
        dtype=dtype, seed=0)
    return torch_train_step(torch_twin(model.net, dtype, device), *make_data(cfg, dtype))


def torch_ops(cfg: Config, dtype, device: str) -> dict:
    """The same ops in PyTorch: forward with autograd recording, backward by autograd.grad on a
    retained graph (only the gradients gpucnn's backward computes)."""
    import torch
    import torch.nn.functional as TF

    sh, s = op_shapes(cfg), cfg.spec
    tdtype = getattr(torch, np.dtype(dtype).name)
    rng = np.random.default_rng(1)

    def arr(shape, grad=False):
        t = torch.from_numpy(rng.standard_normal(shape).astype(dtype)).to(device=device, dtype=tdtype)
        return t.requires_grad_(grad)

    x, xg = arr(sh["x"]), arr(sh["x"], True)
    w, b = arr(sh["w"], True), arr((s.filters,), True)
    act, pooled = arr(sh["act"], True), arr(sh["pooled"], True)
    fc_x, fc_w, fc_b = arr(sh["fc_in"], True), arr((s.hidden, sh["fc_w"][0]), True), arr((s.hidden,), True)
    scores = arr(sh["scores"], True)
    y = torch.from_numpy(rng.integers(0, s.classes, cfg.batch)).to(device)
    d_act, d_pool, d_fc = arr(sh["act"]), arr(sh["pooled"]), arr((cfg.batch, s.hidden))

    def op(forward, inputs, dout):
        out = forward()

        def backward():
            return torch.autograd.grad(out, inputs, dout, retain_graph=True)
        return forward, backward

    return {
        "conv": op(lambda: TF.conv2d(x, w, b, padding=s.pad), (w, b), d_act),
        "conv (with dx)": op(lambda: TF.conv2d(xg, w, b, padding=s.pad), (xg, w, b), d_act),
        "max-pool 2x2": op(lambda: TF.max_pool2d(act, 2), (act,), d_pool),
        "relu": op(lambda: TF.relu(act), (act,), d_act),
        "dropout p=0.5": op(lambda: TF.dropout(pooled, 0.5, training=True), (pooled,), d_pool),
        "linear": op(lambda: TF.linear(fc_x, fc_w, fc_b), (fc_x, fc_w, fc_b), d_fc),
        "softmax-CE": op(lambda: TF.cross_entropy(scores, y), (scores,), None),
    }
