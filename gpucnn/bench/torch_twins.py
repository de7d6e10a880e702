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


def torch_twin(net):
    """:func:`gpucnn.interop.to_torch` of gpucnn module ``net`` (the same weights, running
    statistics, dtype and device, as copies) with its ReLUs in place, as torchvision's ResNets
    run them."""
    import torch

    from ..interop import to_torch

    twin = to_torch(net)
    for m in twin.modules():
        if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)):
            m.inplace = True
    return twin


def torch_train_step(net, X, y, lr: float = LR, reg: float = REG):
    """``step()``: one training step of torch module ``net`` on host arrays X, y:
    cross-entropy, weight decay ``reg`` on conv and linear weights only (the gradient of
    gpucnn's 0.5 * reg * sum(W**2); batch norm's scale is not a weight there), plain SGD."""
    import torch

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
    import torch

    X = torch.from_numpy(X).to(next(net.parameters()).device)
    net.eval()

    def step():
        with torch.inference_mode():
            return net(X)

    return step


def torch_step(cfg: Config, dtype, device: str, model=None):
    """``step()`` for network ``cfg`` in PyTorch (:func:`torch_train_step`), twin of gpucnn's
    ``model`` (so both start from the same weights), or of a fresh gpucnn net of ``cfg`` on
    ``device`` when None (seed 0: gpucnn_step's weights; the memory probe frees gpucnn's copy
    before the steps)."""
    model = gpucnn_model(cfg, dtype, device) if model is None else model
    return torch_train_step(torch_twin(model.net), *make_data(cfg, dtype))


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
