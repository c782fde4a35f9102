"""Training losses that need no downloaded network: L1, MS-SSIM, hinge GAN, feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.ssim import ms_ssim

__all__ = ["discriminator_hinge", "feature_matching", "generator_hinge", "reconstruction_losses", "region_l1"]


def reconstruction_losses(output: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 and 1 - MS-SSIM of the output, and L1 of the warped keyframe (guides the flow)."""
    image = output["image"]
    return {
        "l1": F.l1_loss(image, target),
        "msssim": 1 - ms_ssim(image, target, floor=1e-4).mean(),
        "warp_l1": F.l1_loss(output["warped_image"], target),
    }


def region_l1(image: torch.Tensor, target: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the pixels of some regions (zero when a batch has none).

    Args:
        image, target: (B, 3, S, S) in [0, 1]; regions: (B, R, V, V) masks in {0, 1} at any
            resolution V (nearest-upsampled to S; their union counts).
    """
    mask = F.interpolate(regions.amax(dim=1, keepdim=True), size=image.shape[-2:], mode="nearest")
    return ((image - target).abs() * mask).sum() / (3 * mask.sum()).clamp(min=1.0)


def discriminator_hinge(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    return sum(
        (
            F.relu(1 - r_score).mean() + F.relu(1 + f_score).mean()
            for (_, r_score), (_, f_score) in zip(real, fake, strict=True)
        ),
        torch.zeros((), device=real[0][1].device),
    )


def generator_hinge(fake: list[tuple[list[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    return sum((-score.mean() for _, score in fake), torch.zeros((), device=fake[0][1].device))


def feature_matching(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    total = torch.zeros((), device=fake[0][1].device)
    for (real_features, _), (fake_features, _) in zip(real, fake, strict=True):
        for r, f in zip(real_features, fake_features, strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total
