"""The benchmarked networks and their shapes: net (a), the ThreeLayerConvNet on 3x32x32, and net
(b), an MNIST-sized one; gpucnn's training step and per-op callables at their shapes."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..device import xp_for
from ..rng import Generator

LR = 1e-3
REG = 1e-3


@dataclass(frozen=True)
class NetSpec:
    """conv(filters, ksize, pad) - relu - 2x2 pool - affine(hidden) - relu - affine(10)."""

    channels: int
    size: int
    filters: int
    ksize: int
    pad: int
    hidden: int
    classes: int = 10

    def with_size(self, size: int) -> "NetSpec":
        return NetSpec(self.channels, size, self.filters, self.ksize, self.pad, self.hidden, self.classes)

    @property
    def pooled(self) -> int:
        return (self.size + 2 * self.pad - self.ksize + 1) // 2


NETS = {"a": NetSpec(3, 32, 32, 7, 3, 500), "b": NetSpec(1, 28, 16, 5, 2, 100)}
DEFAULT_CONFIGS = "a50,a128,b64"


@dataclass(frozen=True)
class Config:
    """One benchmark shape: network ``net`` (a key of NETS) at ``batch`` images of ``spec.size``."""

    net: str
    batch: int
    spec: NetSpec

    @property
    def name(self) -> str:
        base = f"({self.net}) b{self.batch}"
        return base if self.spec.size == NETS[self.net].size else f"{base} {self.spec.size}px"



def parse_config(text: str) -> Config:
    """'a50' -> net (a) at batch 50; 'b2x12' -> net (b) at batch 2 on 12x12 images."""
    m = re.fullmatch(r"([ab])(\d+)(?:x(\d+))?", text.strip())
    if not m or int(m.group(2)) < 1 or (m.group(3) and int(m.group(3)) < 4):
        raise ValueError(f"--configs item {text!r}: expected <net><batch>[x<size>] with net in "
                         f"{sorted(NETS)}, batch >= 1 and size >= 4, e.g. a50 or b2x12")
    spec = NETS[m.group(1)]
    if m.group(3):
        spec = spec.with_size(int(m.group(3)))
    return Config(m.group(1), int(m.group(2)), spec)



def layer_spec(spec: NetSpec) -> list[dict]:
    """The gpucnn layer list of a NetSpec (He-scaled init, no dropout)."""
    return [
        {"type": "conv2d", "out_channels": spec.filters, "kernel_size": spec.ksize, "padding": spec.pad},
        {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
        {"type": "linear", "out_features": spec.hidden}, {"type": "relu"},
        {"type": "linear", "out_features": spec.classes},
    ]



def make_data(cfg: Config, dtype, seed=0):
    """Random images X (N, C, S, S) and labels y (N,) on the host."""
    rng = np.random.default_rng(seed)
    s = cfg.spec
    X = rng.standard_normal((cfg.batch, s.channels, s.size, s.size)).astype(dtype)
    y = rng.integers(0, s.classes, cfg.batch)
    return X, y



def gpucnn_model(cfg: Config, dtype, device: str):
    """The gpucnn net of ``cfg`` (seed 0) on ``device``; PyTorch's twin starts from its weights."""
    from ..models import build_model

    return build_model(layer_spec(cfg.spec), (cfg.spec.channels, cfg.spec.size, cfg.spec.size),
                       reg=REG, dtype=dtype, seed=0).to(device)


def gpucnn_step(cfg: Config, dtype, device: str):
    """(step, model): ``step()`` runs one training step of gpucnn and returns the loss."""
    from ..optim import SGD

    xp = xp_for(device)
    model = gpucnn_model(cfg, dtype, device)
    opt = SGD(model.parameters(), lr=LR)
    X, y = (xp.asarray(a) for a in make_data(cfg, dtype))

    def step():  # as the Trainer's: L2's gradient folded into the update
        return model.train_step(X, y, opt)

    return step, model



def op_shapes(cfg: Config) -> dict:
    s, n = cfg.spec, cfg.batch
    conv_out = s.size + 2 * s.pad - s.ksize + 1
    return {"x": (n, s.channels, s.size, s.size), "w": (s.filters, s.channels, s.ksize, s.ksize),
            "act": (n, s.filters, conv_out, conv_out), "pooled": (n, s.filters, s.pooled, s.pooled),
            "fc_in": (n, s.filters * s.pooled * s.pooled), "fc_w": (s.filters * s.pooled * s.pooled, s.hidden),
            "scores": (n, s.classes)}



def gpucnn_ops(cfg: Config, dtype, device: str) -> dict:
    """{op name: (forward, backward)} callables at the shapes of ``cfg``'s layers.

    Each backward reuses one forward's cache; softmax-CE computes its gradient in the forward
    call, so its backward is a no-op.
    """
    xp, sh, s = xp_for(device), op_shapes(cfg), cfg.spec
    rng = np.random.default_rng(1)

    def arr(shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    x, w, b, act, pooled = arr(sh["x"]), arr(sh["w"]), arr((s.filters,)), arr(sh["act"]), arr(sh["pooled"])
    fc_x, fc_w, fc_b, scores = arr(sh["fc_in"]), arr(sh["fc_w"]), arr((s.hidden,)), arr(sh["scores"])
    y = xp.asarray(rng.integers(0, s.classes, cfg.batch))
    gen = Generator(0)
    d_act, d_pool, d_fc = arr(sh["act"]), arr(sh["pooled"]), arr((cfg.batch, s.hidden))
    conv_cache = F.conv2d_forward(x, w, b, 1, s.pad)[1]
    pool_cache = F.maxpool2d_forward(act, 2)[1]
    relu_cache = F.relu_forward(act)[1]
    drop_cache = F.dropout_forward(pooled, 0.5, True, gen)[1]
    fc_cache = F.linear_forward(fc_x, fc_w, fc_b)[1]
    return {
        "conv": (lambda: F.conv2d_forward(x, w, b, 1, s.pad),
                 lambda: F.conv2d_backward(d_act, conv_cache, need_dx=False)),
        "conv (with dx)": (lambda: F.conv2d_forward(x, w, b, 1, s.pad),
                           lambda: F.conv2d_backward(d_act, conv_cache, need_dx=True)),
        "max-pool 2x2": (lambda: F.maxpool2d_forward(act, 2), lambda: F.maxpool2d_backward(d_pool, pool_cache)),
        "relu": (lambda: F.relu_forward(act), lambda: F.relu_backward(d_act, relu_cache)),
        "dropout p=0.5": (lambda: F.dropout_forward(pooled, 0.5, True, gen),
                          lambda: F.dropout_backward(d_pool, drop_cache)),
        "linear": (lambda: F.linear_forward(fc_x, fc_w, fc_b), lambda: F.linear_backward(d_fc, fc_cache)),
        "softmax-CE": (lambda: F.softmax_cross_entropy(scores, y), lambda: None),
    }
