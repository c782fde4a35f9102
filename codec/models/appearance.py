"""Appearance encoder F: keyframe image -> 3D feature volume (computed once per keyframe)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from .config import ModelConfig
from .layers import ConvAct, ResBlock2d

__all__ = ["AppearanceEncoder"]


class AppearanceEncoder(nn.Module):
    """Strided 2D convolutions down to the volume's resolution, then a lift of the channels
    into (C, D): the feature volume face-vid2vid warps in 3D.

    Args:
        config: model sizes.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.encoder_channels
        stages: list[nn.Module] = [ConvAct(3, widths[0])]
        size = config.image_size
        for cin, cout in itertools.pairwise(widths):
            stride = 2 if size > config.volume_size else 1
            size //= stride
            stages.append(ConvAct(cin, cout, 3, stride))
        while size > config.volume_size:
            stages.append(ConvAct(widths[-1], widths[-1], 3, 2))
            size //= 2
        if size != config.volume_size:
            raise ValueError(
                f"image_size {config.image_size} does not reach volume_size {config.volume_size} by halving"
            )
        stages.append(ResBlock2d(widths[-1]))
        self.trunk = nn.Sequential(*stages)
        self.lift = nn.Conv2d(widths[-1], config.volume_channels * config.volume_depth, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, S, S) float32 in [0, 1] -> volume (B, C, D, V, V) float32."""
        features = self.lift(self.trunk(image * 2 - 1))
        b, _, h, w = features.shape
        return features.view(b, self.config.volume_channels, self.config.volume_depth, h, w)
