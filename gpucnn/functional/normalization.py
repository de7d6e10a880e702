"""Batch normalisation over (N, D) features and per channel of (N, C, H, W): the argument checks
and the (out, cache) interface; the arithmetic is the device primitive ``batchnorm_forward`` /
``batchnorm_backward`` (its NumPy and CuPy array code in :mod:`gpucnn.batchnorm`, native C
kernels on the CPU when built).

As ``torch.nn.functional.batch_norm``: in training, ``x`` is normalised with the batch mean and
the *biased* batch variance, and the running statistics given are updated **in place** (so a
module's buffers stay the same arrays, on their device):

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)

where ``m`` is the number of values per channel (N, or N*H*W for the spatial form) and the
running variance takes the *unbiased* batch variance, as PyTorch does.  In evaluation the
running statistics normalise and are left alone.  ``running_mean``/``running_var`` may be None in
training (batch statistics only, nothing tracked).  ``relu=True`` returns relu of the result
(what ``relu_forward`` would give, one pass less on the CPU), and the backward takes the
gradient of that.
"""
from __future__ import annotations

from .. import primitives
from ..checks import check_real
from ._checks import check_array, check_dout, check_same_device


def check_eps(eps) -> float:
    return check_real("eps", eps, 0, low_open=True)


def check_momentum(momentum) -> float:
    """PyTorch's meaning: running = (1 - momentum) * running + momentum * batch statistic."""
    return check_real("momentum", momentum, 0, 1, high_open=False)


def _bn_forward(x, gamma, beta, running_mean, running_var, train, momentum, eps, relu, ndim):
    """Shared by the (N, D) and (N, C, H, W) forms: statistics over every axis but 1."""
    xp = check_array("x", x, ndim=ndim, batch=True)
    C = x.shape[1]
    per_channel = {"gamma": gamma, "beta": beta, "running_mean": running_mean,
                   "running_var": running_var}
    for name, a in per_channel.items():
        if a is None and name.startswith("running") and train:
            continue
        if a is None:
            raise ValueError(f"{name}=None: expected a ({C},) array"
                             + (" (evaluation normalises with the running statistics)"
                                if name.startswith("running") else ""))
        check_array(name, a, ndim=1)
        if a.shape != (C,):
            raise ValueError(f"{name}.shape={tuple(a.shape)}: expected ({C},), one per channel of "
                             f"x.shape={tuple(x.shape)}")
        if a.dtype != x.dtype:
            raise TypeError(f"{name}.dtype={a.dtype}: expected x.dtype={x.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var: expected both arrays or both None")
    check_same_device(x=x, **per_channel)
    eps, momentum = check_eps(eps), check_momentum(momentum)
    if train and x.size <= C:  # the variance of one value is 0 and its unbiased estimate undefined
        raise ValueError(f"x.shape={tuple(x.shape)}: expected more than 1 value per channel "
                         f"when training")
    out, saved = primitives.for_array_module(xp).batchnorm_forward(
        x, gamma, beta, running_mean, running_var, bool(train), momentum, eps, bool(relu))
    return out, (saved, x.shape, gamma)


def _bn_backward(dout, cache, need_dx, ndim):
    saved, shape, gamma = cache
    check_array("dout", dout, ndim=ndim)
    check_dout(dout, shape, gamma)
    return primitives.of(dout).batchnorm_backward(dout, saved, bool(need_dx))


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train, momentum=0.1, eps=1e-5,
                      relu=False):
    """x (N, D), gamma, beta, running_mean, running_var (D,) -> out (N, D).

    out = gamma * (x - mean) / sqrt(var + eps) + beta per feature; batch statistics in training
    (updating the running ones in place, see the module docstring), running ones in evaluation.
    """
    return _bn_forward(x, gamma, beta, running_mean, running_var, train, momentum, eps, relu, 2)


def batchnorm_backward(dout, cache, need_dx=True):
    """dout (N, D) -> dx (N, D) or None, dgamma (D,), dbeta (D,).

    Training, the closed form through the batch statistics (m = N):
    dx = (1/m) * gamma * inv_std * (m*dout - sum(dout) - xhat*sum(dout*xhat)),
    dgamma = sum(dout*xhat), dbeta = sum(dout) (sums over the batch).
    Evaluation: dx = gamma * inv_std * dout.
    """
    return _bn_backward(dout, cache, need_dx, 2)


def spatial_batchnorm_forward(x, gamma, beta, running_mean, running_var, train, momentum=0.1,
                              eps=1e-5, relu=False):
    """x (N, C, H, W), per-channel arrays (C,) -> out (N, C, H, W).

    Batch norm per channel with statistics over N, H and W (m = N*H*W values per channel).
    """
    return _bn_forward(x, gamma, beta, running_mean, running_var, train, momentum, eps, relu, 4)


def spatial_batchnorm_backward(dout, cache, need_dx=True):
    """dout (N, C, H, W) -> dx (N, C, H, W) or None, dgamma (C,), dbeta (C,); the closed form of
    :func:`batchnorm_backward` with sums over N, H, W and m = N*H*W."""
    return _bn_backward(dout, cache, need_dx, 4)
