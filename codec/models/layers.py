"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvAct", "ResBlock2d", "UpShuffle"]


class ConvAct(nn.Sequential):
    """3x3 (or k x k) convolution followed by LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2), nn.LeakyReLU(0.2, inplace=True))


class ResBlock2d(nn.Module):
    """x + conv(act(conv(act(x)))), channels unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class UpShuffle(nn.Sequential):
    """x2 upsampling: a 3x3 convolution to 4x the output channels, then pixel shuffle."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True))
