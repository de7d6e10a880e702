"""First-order update rules that change parameter arrays in place, on NumPy or CuPy.

``params`` is ``model.parameters()``: the live arrays, so ``step(grads)`` updates the model.
Each rule keeps its per-parameter buffers (velocity, moments) on the parameters' device.
``lr_decay`` multiplies ``lr`` at every ``end_epoch()``.  ``state_dict()`` holds host NumPy
copies of everything needed to continue bit-identically.

The rules are CS231n's ``optim.py`` (the velocity of momentum includes the learning rate, as
there) and torch's AdamW; names and defaults follow ``torch.optim``.  :func:`clip_grad_norm_`
rescales gradients before a step, as ``torch.nn.utils.clip_grad_norm_``.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import primitives
from .checks import check_real
from .device import DeviceScalar, get_array_module, to_numpy
from .functional.loss import l2_loss


class Optimizer:
    """Base class: ``step(grads)`` applies ``_update`` to every parameter.

    Subclasses list their per-parameter buffers in ``buffers`` and define ``_update``.
    """

    buffers: tuple[str, ...] = ()

    def __init__(self, params: dict, lr: float, lr_decay: float = 1.0):
        if not isinstance(params, dict) or not params:
            raise ValueError("params: expected a non-empty dict {name: array}, e.g. model.parameters()")
        self.params = params
        self.lr = check_real("lr", lr, 0.0)
        self.lr_decay = check_real("lr_decay", lr_decay, 0.0, 1.0, low_open=True, high_open=False)
        self.t = 0  # steps taken
        self.state = {b: {k: get_array_module(p).zeros_like(p) for k, p in params.items()}
                      for b in self.buffers}

    def step(self, grads: dict, weight_decay: dict | None = None) -> None:
        """Update every parameter in place from ``grads`` (same names as ``params``).

        ``weight_decay`` {name: coefficient} adds coefficient * p to those parameters'
        gradients inside the update: ``model.loss(X, y, l2_in_grads=False)`` leaves L2's
        gradient out for this, and ``model.weight_decay()`` names it (SGD then reads and writes
        each weight once, where adding it to the gradient first took two more passes).
        """
        if grads.keys() != self.params.keys():
            missing, extra = sorted(self.params.keys() - grads.keys()), sorted(grads.keys() - self.params.keys())
            raise ValueError(f"grads: missing {missing or 'none'}, unexpected {extra or 'none'}; "
                             f"expected the optimizer's parameter names")
        decay = weight_decay or {}
        unknown = sorted(decay.keys() - self.params.keys())
        if unknown:
            raise ValueError(f"weight_decay: unknown parameters {unknown}; expected some of "
                             f"the optimizer's parameter names")
        decay = {k: check_real(f"weight_decay[{k!r}]", c, 0.0) for k, c in decay.items()}
        self.t += 1
        self._update_all(grads, decay)

    def _update_all(self, grads: dict, decay: dict) -> None:
        for name, p in self.params.items():
            self._update(name, p, grads[name], decay.get(name, 0.0))

    def end_epoch(self) -> None:
        """Decay the learning rate; call once at the end of every epoch."""
        self.lr *= self.lr_decay

    def state_dict(self) -> dict:
        """{"lr", "t", "buffers": {buffer: {param name: NumPy array}}} (copies)."""
        return {"lr": self.lr, "t": self.t,
                "buffers": {b: {k: np.array(to_numpy(v)) for k, v in d.items()}
                            for b, d in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; buffers are copied into this optimizer's arrays."""
        buffers = state.get("buffers", {})
        if set(buffers) != set(self.buffers):
            raise ValueError(f"optimizer state has buffers {sorted(buffers)}: expected "
                             f"{sorted(self.buffers)} for {type(self).__name__}")
        for b, arrays in buffers.items():
            own = self.state[b]
            if set(arrays) != set(own):
                raise ValueError(f"optimizer state {b!r} has parameters {sorted(arrays)}: "
                                 f"expected {sorted(own)}")
            for k, v in arrays.items():
                if tuple(v.shape) != tuple(own[k].shape):
                    raise ValueError(f"optimizer state {b}[{k!r}].shape={tuple(v.shape)}: "
                                     f"expected {tuple(own[k].shape)}")
                own[k][...] = get_array_module(own[k]).asarray(v, dtype=own[k].dtype)
        self.lr, self.t = float(state["lr"]), int(state["t"])


class SGD(Optimizer):
    """w -= lr * dw; with ``momentum`` mu: v = mu * v - lr * dw, w += v; ``nesterov`` uses the
    look-ahead form w += -mu * v_prev + (1 + mu) * v (CS231n)."""

    def __init__(self, params, lr=1e-2, momentum=0.0, nesterov=False, lr_decay=1.0):
        self.momentum = check_real("momentum", momentum, 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True: needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.buffers = ("velocity",) if self.momentum else ()
        super().__init__(params, lr, lr_decay)
        self._lr = None  # lr on the parameters' device, for the fused update (device_lr)

    def _update_all(self, grads, decay):
        names = list(self.params)
        fused = primitives.fusion(primitives.of(self.params[names[0]]), "sgd_update_all")
        if fused is None:  # the CPU: one native pass per parameter
            return super()._update_all(grads, decay)
        # one kernel for every parameter (the launches no longer grow with the layers)
        vel = self.state["velocity"] if self.momentum else None
        fused([self.params[k] for k in names], [grads[k] for k in names],
              None if vel is None else [vel[k] for k in names], self.device_lr(),
              self.momentum, self.nesterov, [decay.get(k, 0.0) for k in names])

    def device_lr(self):
        """lr as a (1,) array of the parameters' dtype on their device, uploaded only when lr
        changed since (what the fused CUDA update reads, so a replayed CUDA graph follows
        lr_decay)."""
        if self._lr is None:
            p = next(iter(self.params.values()))
            self._lr = DeviceScalar(get_array_module(p), p.dtype)
        return self._lr.sync(self.lr)

    def _update(self, name, p, g, decay):
        # a device primitive: one fused pass per parameter, natively on the CPU and by one
        # kernel on CUDA (csrc/updates.h, kernels/optim.cu)
        v = self.state["velocity"][name] if self.momentum else None
        primitives.of(p).sgd_update(p, g, v, self.lr, self.momentum, self.nesterov, decay)


class RMSprop(Optimizer):
    """cache = alpha * cache + (1 - alpha) * dw^2;  w -= lr * dw / (sqrt(cache) + eps)."""

    buffers = ("square_avg",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, lr_decay=1.0):
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps, 0.0, low_open=True)
        super().__init__(params, lr, lr_decay)

    def _update(self, name, p, g, decay):
        xp = get_array_module(p)
        g = g + decay * p if decay else g
        s = self.state["square_avg"][name]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= self.lr * g / (xp.sqrt(s) + self.eps)


class Adam(Optimizer):
    """m, v: running means of dw and dw^2 (betas); w -= lr * m_hat / (sqrt(v_hat) + eps) with the
    bias corrections m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)."""

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, lr_decay=1.0):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas={betas!r}: expected a pair (beta1, beta2) in [0, 1)")
        self.betas = tuple(check_real(f"betas[{i}]", b, 0.0, 1.0) for i, b in enumerate(betas))
        self.eps = check_real("eps", eps, 0.0, low_open=True)
        super().__init__(params, lr, lr_decay)

    def _update(self, name, p, g, decay):
        xp = get_array_module(p)
        g = g + decay * p if decay else g
        b1, b2 = self.betas
        m, v = self.state["exp_avg"][name], self.state["exp_avg_sq"][name]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1 ** self.t)
        v_hat = v / (1 - b2 ** self.t)
        p -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW, Loshchilov and Hutter): every
    parameter first shrinks, w *= 1 - lr * weight_decay, then takes Adam's step, whose
    gradient holds no decay term.  (``step``'s ``weight_decay``, the model's L2, is still added
    to the gradient, as for Adam.)"""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 lr_decay=1.0):
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        super().__init__(params, lr, betas, eps, lr_decay)

    def _update(self, name, p, g, decay):
        g = g + decay * p if decay else g  # L2's gradient from the weight before it shrinks
        if self.weight_decay:
            p *= 1 - self.lr * self.weight_decay
        super()._update(name, p, g, 0.0)


def clip_grad_norm_(grads: dict, max_norm: float):
    """Scale every gradient of ``grads`` in place by min(1, max_norm / (norm + 1e-6)), where
    norm is the L2 norm of all of them together (torch.nn.utils.clip_grad_norm_); returns
    norm, a float64 scalar on their device.  Nothing is read back to the host: on CUDA the
    scale stays on the device, so a step that clips costs no sync."""
    max_norm = check_real("max_norm", max_norm, 0.0, low_open=True)
    arrays = list(grads.values())
    xp = get_array_module(arrays[0])
    total = l2_loss(arrays, 2.0)  # 0.5 * 2 * sum(g**2): the sum of squares, fused on CUDA
    norm = xp.sqrt(xp.asarray(total, dtype=np.float64))
    scale = xp.minimum(max_norm / (norm + 1e-6), 1.0)
    for g in arrays:
        g *= scale.astype(g.dtype)
    return norm


# name -> (class, default settings)
OPTIMIZERS = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
}


def make_optimizer(name: str, params: dict, **settings) -> Optimizer:
    """``make_optimizer("adam", model.parameters(), lr=1e-3)``; names are the keys of OPTIMIZERS.

    Unknown names or settings and out-of-range values raise ValueError.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}: expected one of {', '.join(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[name.lower()]
    settings = {**defaults, **settings}
    allowed = [p for p in inspect.signature(cls).parameters if p != "params"]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"optimizer {name!r}: unknown settings {unknown}; expected some of {allowed}")
    return cls(params, **settings)
