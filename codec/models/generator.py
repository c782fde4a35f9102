"""Generator G: warped feature volume (x occlusion) -> RGB frame.

The warped volume is flattened to 2D (C*D channels), masked by the occlusion map and refined
by residual blocks at the volume's resolution.  Two heads come out of it:

- a 2D flow for the keyframe *image*: a per-pixel choice among the depth layers of the dense
  3D flow (softmax over D) plus a small learned correction, so the full-resolution keyframe is
  warped with the same motion as the features;
- an upsampling path (pixel shuffle) to full resolution, which sees the warped keyframe and
  outputs colours and a blending weight: ``out = alpha * warped + (1 - alpha) * painted``.

Starting from the warped keyframe lets a small network trained on a CPU spend its capacity on
what warping cannot do: occluded regions, the mouth's inside, lighting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import ConvAct, ResBlock2d, UpShuffle

__all__ = ["Generator"]


class Generator(nn.Module):
    """Args:
    config: model sizes.
    guide_channels: extra (B, guide_channels, V, V) maps the inlet sees next to the volume
        (the mesh model's regions and visibility); 0 for the keypoint model.
    own_image_flow: choose the image's 2D flow among the volume flow's depth layers (the
        keypoint model); False: the caller gives it (the mesh model's geometry).
    """

    def __init__(self, config: ModelConfig, guide_channels: int = 0, own_image_flow: bool = True) -> None:
        super().__init__()
        self.config = config
        self.guide_channels = guide_channels
        self.own_image_flow = own_image_flow
        c0, c1, c2 = config.generator_channels
        volume_channels = config.volume_channels * config.volume_depth
        self.inlet = nn.Sequential(nn.Conv2d(volume_channels + guide_channels, c0, 1), nn.LeakyReLU(0.2),
                                   ConvAct(c0, c0))  # fmt: skip
        self.blocks = nn.Sequential(*(ResBlock2d(c0) for _ in range(config.generator_blocks)))
        if own_image_flow:
            self.depth_choice = nn.Conv2d(c0, config.volume_depth, 3, 1, 1)
            self.flow_correction = nn.Conv2d(c0, 2, 3, 1, 1)
            nn.init.zeros_(self.flow_correction.weight)
            nn.init.zeros_(self.flow_correction.bias)  # type: ignore[arg-type]
        ups: list[nn.Module] = []
        width, size = c0, config.volume_size
        for index in range(4):
            if size >= config.image_size:
                break
            out = c1 if index == 0 else c2
            ups.append(UpShuffle(width, out))
            width, size = out, size * 2
        if size != config.image_size:
            raise ValueError(f"volume_size {config.volume_size} does not reach image_size {config.image_size}")
        self.up = nn.Sequential(*ups)
        self.outlet = nn.Conv2d(width + 3, 4, 3, 1, 1)

    def forward(
        self,
        warped_volume: torch.Tensor,
        occlusion: torch.Tensor,
        flow: torch.Tensor,
        source_image: torch.Tensor,
        guide: torch.Tensor | None = None,
        image_flow: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            warped_volume: (B, C, D, V, V); occlusion: (B, 1, V, V) in [0, 1];
            flow: (B, D, V, V, 3) the dense flow (grid coordinates into the source);
            source_image: (B, 3, S, S) the keyframe in [0, 1];
            guide: (B, guide_channels, V, V) float32, with ``guide_channels``;
            image_flow: (B, V, V, 2) grid coordinates into the source, without ``own_image_flow``.

        Returns:
            ``image`` (B, 3, S, S) in [0, 1], ``warped_image`` (B, 3, S, S), ``alpha`` (B, 1, S, S),
            ``flow_2d`` (B, S, S, 2).
        """
        b, c, d, v, _ = warped_volume.shape
        features = warped_volume.reshape(b, c * d, v, v) * occlusion
        if self.guide_channels:
            if guide is None or guide.shape[1] != self.guide_channels:
                raise ValueError(f"this generator needs a guide of {self.guide_channels} channels")
            features = torch.cat([features, guide], dim=1)
        x = self.blocks(self.inlet(features))
        if self.own_image_flow:
            choice = torch.softmax(self.depth_choice(x), dim=1)  # (B, D, V, V)
            flow_2d = (choice.unsqueeze(-1) * flow[..., :2]).sum(dim=1)  # (B, V, V, 2)
            flow_2d = flow_2d + 0.1 * torch.tanh(self.flow_correction(x)).permute(0, 2, 3, 1)
        elif image_flow is None:
            raise ValueError("this generator needs the image flow")
        else:
            flow_2d = image_flow
        size = source_image.shape[-1]
        flow_full = flow_2d  # already at the picture's resolution (a mesh model's detail), else upsampled
        if flow_2d.shape[1:3] != (size, size):
            flow_full = F.interpolate(flow_2d.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                                      align_corners=False).permute(0, 2, 3, 1)  # fmt: skip
        warped_image = F.grid_sample(source_image, flow_full, mode="bilinear", padding_mode="border",
                                     align_corners=False)  # fmt: skip
        features = self.up(x)
        out = self.outlet(torch.cat([features, warped_image * 2 - 1], dim=1))
        painted = torch.sigmoid(out[:, :3])
        alpha = torch.sigmoid(out[:, 3:4] + 2.0)  # starts close to the warped keyframe
        image = alpha * warped_image + (1 - alpha) * painted
        return {"image": image, "warped_image": warped_image, "alpha": alpha, "flow_2d": flow_full}
