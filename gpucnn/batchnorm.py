"""Batch norm's arithmetic as array code over ``xp`` (NumPy or CuPy): the NumPy reference of
:mod:`gpucnn.cpu` (which its native kernels are tested against) and the CUDA implementation of
:mod:`gpucnn.cuda`.  Arguments are checked by :mod:`gpucnn.functional.normalization`.

x is (N, C) or (N, C, H, W); statistics over every axis but 1, m = x.size // C values per
channel.  Training normalises with the batch mean and biased variance and updates the running
statistics given **in place**, as ``torch.nn.functional.batch_norm``:
running_mean = (1 - momentum) * running_mean + momentum * mean, running_var likewise with the
*unbiased* variance var * m / (m - 1); evaluation normalises with the running statistics.
``relu``: the output is relu(batch norm), as ``relu_forward`` gives it (np.maximum, NaN kept).
"""
from __future__ import annotations


def forward(xp, x, gamma, beta, running_mean, running_var, train, momentum, eps, relu):
    """-> (out, saved): out of x's shape; ``saved`` what :func:`backward` needs."""
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, C) + (1,) * (x.ndim - 2)  # per-channel arrays broadcast against x
    if train:
        m = x.size // C
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += (momentum * m / (m - 1)) * var
    else:
        mean, var = running_mean, running_var
    inv_std = 1 / xp.sqrt(var + eps)
    xhat = (x - mean.reshape(view)) * inv_std.reshape(view)
    out = gamma.reshape(view) * xhat + beta.reshape(view)
    if relu:
        out = xp.maximum(out, 0)
    return out, (xhat, gamma, inv_std, bool(train), out if relu else None)


def backward(dout, saved, need_dx):
    """dout of the forward output's shape -> (dx or None, dgamma (C,), dbeta (C,)).

    Training, the closed form through the batch statistics:
    dx = (1/m) * gamma * inv_std * (m*dout - sum(dout) - xhat*sum(dout*xhat)),
    dgamma = sum(dout*xhat), dbeta = sum(dout) (sums over every axis but 1).
    Evaluation: dx = gamma * inv_std * dout.  After a ReLU, dout * (out > 0) takes dout's place.
    """
    xhat, gamma, inv_std, train, relu_out = saved
    if relu_out is not None:
        dout = dout * (relu_out > 0)  # relu_backward's multiply: inf and NaN propagate
    axes = (0,) + tuple(range(2, xhat.ndim))
    view = (1, xhat.shape[1]) + (1,) * (xhat.ndim - 2)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    if not train:  # the running statistics are constants: a per-channel scaling
        return dout * (gamma * inv_std).reshape(view), dgamma, dbeta
    m = xhat.size // xhat.shape[1]
    dx = (gamma * inv_std / m).reshape(view) * (m * dout - dbeta.reshape(view)
                                                - xhat * dgamma.reshape(view))
    return dx, dgamma, dbeta
