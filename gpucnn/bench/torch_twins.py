"""The same networks and ops in PyTorch, set up like gpucnn's, for side-by-side timings."""
from __future__ import annotations

import numpy as np

from .nets import LR, REG, Config, gpucnn_model, make_data, op_shapes


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



def torch_step(cfg: Config, dtype, device: str, model=None):
    """``step()`` for the same network in PyTorch: cross-entropy, weight decay ``REG`` on weights
    only (the same gradient as gpucnn's 0.5 * reg * sum(W**2)), plain SGD.  The net is
    :func:`gpucnn.interop.to_torch` of ``model`` (gpucnn's, so both start from the same
    weights), or of a fresh gpucnn net of ``cfg`` when None (the memory probe: gpucnn's copy is
    freed before the steps)."""
    import torch

    from ..interop import to_torch

    net = to_torch(gpucnn_model(cfg, dtype, device) if model is None else model).train()
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": REG}, {"params": biases}], lr=LR)
    X, y = make_data(cfg, dtype)
    X, y = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss

    return step



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
