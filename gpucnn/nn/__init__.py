"""Layers as modules: parameters, their gradients, train/eval mode and device placement over
:mod:`gpucnn.functional`, laid out as ``torch/nn/modules/``: ``module`` (the base class),
``init``, ``conv``, ``linear``, ``pooling``, ``activation``, ``normalization``, ``dropout``,
``flatten`` and ``container`` (Sequential, Residual).

Names and argument order follow ``torch.nn`` (``Conv2d(in_channels, out_channels, kernel_size,
stride, padding)``).  Differences a PyTorch user should know: ``backward(dout)`` is explicit (no
autograd) and *sets* ``grads`` rather than accumulating; ``Linear.weight`` is (in_features,
out_features), the layout ``F.linear_forward`` multiplies by.
"""
from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .container import Residual, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["Module", "Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "BatchNorm1d", "BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout",
           "Flatten", "Sequential", "Residual"]
