"""The two gpucnn layers PyTorch has no single module for, as ``torch.nn`` modules; they import
torch, so only :mod:`.torch_modules` imports this module, when a conversion asks for it."""
from __future__ import annotations

import torch


class GlobalAvgPool2d(torch.nn.Module):
    """Mean over each channel's map: x (N, C, H, W) -> (N, C), as gpucnn's; the same as
    ``AdaptiveAvgPool2d(1)`` followed by ``Flatten()``."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Residual(torch.nn.Module):
    """out = body(x) + (projection(x) if there is a projection else x), as gpucnn's."""

    def __init__(self, body: torch.nn.Module, projection: torch.nn.Module | None = None):
        super().__init__()
        self.body, self.projection = body, projection

    def forward(self, x):
        return self.body(x) + (x if self.projection is None else self.projection(x))
