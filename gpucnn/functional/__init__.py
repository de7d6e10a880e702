"""The math: forward and backward of every layer, written once against ``xp`` (numpy or cupy).

Each forward returns ``(out, cache)`` and each backward takes ``(dout, cache)``, as in CS231n's
``layers.py``.  Shapes are NCHW.  Conventions (binding, from the source documents in
``shared/seeds``): convolution is cross-correlation; dropout's ``p`` is the probability of
*dropping*, with inverted 1/(1-p) scaling; max-pool ties send the gradient to the first maximum
in row-major window order; L2 is ``0.5 * reg * sum(W**2)`` on weights only.

There are no device branches here: what differs per device is a primitive of
:mod:`gpucnn.primitives` (``P = primitives.of(x)``), the rest is array code NumPy and CuPy both
run.  Devices: float arrays given to one op must live on one device (else a ValueError says to
move them with ``.to()``); integer class labels may live on the host and are moved to the
scores' device.  Losses are float64 scalars on the device (``float(loss)`` reads one).

One module per concept: ``conv``, ``conv_bn`` (a conv and an evaluation batch norm folded),
``pooling``, ``activation``, ``normalization``, ``dropout``, ``linear``, ``loss``; the argument
checks they share are in ``_checks``.  Every op is here as
``gpucnn.functional.<op>`` (``import gpucnn.functional as F``).
"""
from .activation import (add_relu_forward, leaky_relu_backward, leaky_relu_forward,
                         relu_backward, relu_forward, sigmoid_backward, sigmoid_forward,
                         tanh_backward, tanh_forward)
from .conv import conv2d_backward, conv2d_forward, conv2d_relu_backward, conv2d_relu_forward
from .conv_bn import conv2d_bn_eval_backward, conv2d_bn_eval_forward
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .loss import l2_loss, l2_penalty, mse_loss, softmax_cross_entropy
from .normalization import (batchnorm_backward, batchnorm_forward, spatial_batchnorm_backward,
                            spatial_batchnorm_forward)
from .pooling import (avgpool2d_backward, avgpool2d_forward, global_avgpool2d_backward,
                      global_avgpool2d_forward, maxpool2d_backward, maxpool2d_forward,
                      relu_maxpool2d_backward, relu_maxpool2d_forward)

__all__ = [
    "conv2d_forward", "conv2d_backward", "conv2d_relu_forward", "conv2d_relu_backward",
    "conv2d_bn_eval_forward", "conv2d_bn_eval_backward",
    "maxpool2d_forward", "maxpool2d_backward", "relu_maxpool2d_forward", "relu_maxpool2d_backward",
    "avgpool2d_forward", "avgpool2d_backward", "global_avgpool2d_forward",
    "global_avgpool2d_backward",
    "relu_forward", "relu_backward", "add_relu_forward", "sigmoid_forward", "sigmoid_backward",
    "leaky_relu_forward", "leaky_relu_backward", "tanh_forward", "tanh_backward",
    "batchnorm_forward", "batchnorm_backward", "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "dropout_forward", "dropout_backward",
    "linear_forward", "linear_backward",
    "softmax_cross_entropy", "mse_loss", "l2_loss", "l2_penalty",
]
