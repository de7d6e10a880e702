"""Naive loop references for the deeper-net ops, written from the formulas (as reference.py).

Slow and obviously right: gpucnn.functional's batch norm, pooling and activations must equal
these.  Channel axis 1; batch norm statistics over every other axis.
"""
import math

import numpy as np


def _channel_positions(shape):
    """{c: [index tuples of x holding channel c]}, the values batch norm normalises together."""
    out = {c: [] for c in range(shape[1])}
    for idx in np.ndindex(*shape):
        out[idx[1]].append(idx)
    return out


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train, momentum, eps):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta per channel.  Training: mu and the biased
    var of the batch; running_mean/var <- (1 - momentum) * running + momentum * (mu, unbiased
    var).  Evaluation: the running statistics.  Returns (y, new running_mean, new running_var)."""
    out = np.zeros(x.shape)
    rm, rv = np.array(running_mean, dtype=float), np.array(running_var, dtype=float)
    for c, positions in _channel_positions(x.shape).items():
        values = [x[i] for i in positions]
        m = len(values)
        if train:
            mu = sum(values) / m
            sq = sum((v - mu) ** 2 for v in values)
            var = sq / m
            rm[c] = (1 - momentum) * rm[c] + momentum * mu
            rv[c] = (1 - momentum) * rv[c] + momentum * sq / (m - 1)
        else:
            mu, var = running_mean[c], running_var[c]
        for i in positions:
            out[i] = gamma[c] * (x[i] - mu) / math.sqrt(var + eps) + beta[c]
    return out, rm, rv


def batchnorm_backward_staged(x, gamma, dout, eps):
    """Training-mode gradients through the computational graph one stage at a time (mu, then
    var, then xhat), not the simplified closed form: dx, dgamma, dbeta."""
    dx = np.zeros(x.shape)
    C = x.shape[1]
    dgamma, dbeta = np.zeros(C), np.zeros(C)
    for c, positions in _channel_positions(x.shape).items():
        m = len(positions)
        mu = sum(x[i] for i in positions) / m
        var = sum((x[i] - mu) ** 2 for i in positions) / m
        inv_std = 1 / math.sqrt(var + eps)
        for i in positions:
            dgamma[c] += dout[i] * (x[i] - mu) * inv_std
            dbeta[c] += dout[i]
        dxhat = {i: dout[i] * gamma[c] for i in positions}
        dvar = sum(dxhat[i] * (x[i] - mu) for i in positions) * -0.5 * (var + eps) ** -1.5
        dmu = (sum(-dxhat[i] * inv_std for i in positions)
               + dvar * sum(-2 * (x[i] - mu) for i in positions) / m)
        for i in positions:
            dx[i] = dxhat[i] * inv_std + dvar * 2 * (x[i] - mu) / m + dmu / m
    return dx, dgamma, dbeta


def avgpool_forward_backward(x, dout, size, stride):
    """Mean of each size x size window; each window's dout / size**2 to every element in it."""
    N, C, H, W = x.shape
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.zeros((N, C, OH, OW))
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    total = 0.0
                    for a in range(size):
                        for b in range(size):
                            total += x[n, c, i * stride + a, j * stride + b]
                            dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j] / size ** 2
                    out[n, c, i, j] = total / size ** 2
    return out, dx


def global_avgpool_forward_backward(x, dout):
    N, C, H, W = x.shape
    out = np.zeros((N, C))
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            out[n, c] = sum(x[n, c, h, w] for h in range(H) for w in range(W)) / (H * W)
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = dout[n, c] / (H * W)
    return out, dx


def leaky_relu_forward_backward(x, dout, slope):
    """torch.nn.LeakyReLU: x if x > 0 else slope * x; gradient 1 if x > 0 else slope."""
    out, dx = np.zeros(x.shape), np.zeros(x.shape)
    for i in np.ndindex(*x.shape):
        out[i] = x[i] if x[i] > 0 else slope * x[i]
        dx[i] = dout[i] if x[i] > 0 else slope * dout[i]
    return out, dx
