"""A convolution followed by an evaluation-mode batch norm, folded into one convolution.

In evaluation batch norm is a fixed per-channel affine map, z = (y - mean) * scale + beta with
scale = gamma / sqrt(running_var + eps), so conv then batch norm is one convolution with
weights w * scale and bias (b - mean) * scale + beta: the batch norm's pass over the conv's
output goes away.  (PyTorch offers the same as torch.ao's fuse_conv_bn_eval, for inference.)  The
result equals the two ops within rounding: the folded weights are rounded once more.
"""
from __future__ import annotations

from ._checks import check_array
from .conv import conv2d_backward, conv2d_forward, conv2d_relu_backward, conv2d_relu_forward
from .normalization import check_eps


def conv2d_bn_eval_forward(x, w, b, gamma, beta, running_mean, running_var, eps=1e-5, stride=1,
                           pad=0, relu=False):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) or None; gamma, beta, running_mean,
    running_var (F,) -> out (N, F, OH, OW): spatial_batchnorm_forward(conv2d_forward(x, w, b))
    in evaluation (relu of it with ``relu``), as one convolution."""
    xp = check_array("x", x, ndim=4, batch=True)
    F = w.shape[0]
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        check_array(name, a, ndim=1)
        if a.shape != (F,) or a.dtype != w.dtype:
            raise ValueError(f"{name}.shape={tuple(a.shape)} ({a.dtype}): expected ({F},) "
                             f"{w.dtype}, one per filter of w.shape={tuple(w.shape)}")
    inv_std = 1 / xp.sqrt(running_var + check_eps(eps))
    scale = gamma * inv_std
    shift = -running_mean if b is None else b - running_mean
    folded_w = w * scale.reshape(-1, 1, 1, 1)
    folded_b = shift * scale + beta
    forward = conv2d_relu_forward if relu else conv2d_forward
    out, cache = forward(x, folded_w, folded_b, stride, pad)
    return out, (cache, bool(relu), w, b is not None, shift, scale, inv_std)


def conv2d_bn_eval_backward(dout, cache, need_dx=True):
    """dout (N, F, OH, OW) -> (dx (N, C, H, W) or None, dw, db (F,) or None, dgamma, dbeta) of
    :func:`conv2d_bn_eval_forward`: the folded conv's gradients G (weights) and g (bias) by
    the chain rule, dw = G * scale, db = g * scale, dbeta = g and
    dgamma = inv_std * (sum over C, KH, KW of G * w + g * (b - mean))."""
    conv_cache, relu, w, has_bias, shift, scale, inv_std = cache
    backward = conv2d_relu_backward if relu else conv2d_backward
    dx, dfw, dfb = backward(dout, conv_cache, need_dx)
    dw = dfw * scale.reshape(-1, 1, 1, 1)
    dgamma = inv_std * ((dfw * w).sum(axis=(1, 2, 3)) + dfb * shift)
    return dx, dw, dfb * scale if has_bias else None, dgamma, dfb
