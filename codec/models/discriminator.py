"""Multi-scale patch discriminator (training only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["MultiScaleDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Strided 4x4 convolutions with spectral norm; one real/fake score per patch."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers = []
        cin = 3
        for cout in channels:
            layers.append(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.score = spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """image (B, 3, H, W) in [0, 1] -> (features of each layer, (B, 1, h, w) scores)."""
        features = []
        x = image * 2 - 1
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return features, self.score(x)


class MultiScaleDiscriminator(nn.Module):
    """The same patch discriminator design at full and half resolution."""

    def __init__(self, scales: int = 2, channels: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PatchDiscriminator(channels) for _ in range(scales))

    def forward(self, image: torch.Tensor) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            scaled = image if index == 0 else F.avg_pool2d(image, 2**index)
            outputs.append(discriminator(scaled))
        return outputs
