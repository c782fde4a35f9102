"""Training losses that need no downloaded network: L1, MS-SSIM, hinge GAN, feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.ssim import ms_ssim

__all__ = ["discriminator_hinge", "feature_matching", "generator_hinge", "reconstruction_losses"]


def reconstruction_losses(output: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 and 1 - MS-SSIM of the output, and L1 of the warped keyframe (guides the flow)."""
    image = output["image"]
    return {
        "l1": F.l1_loss(image, target),
        "msssim": 1 - ms_ssim(image, target, floor=1e-4).mean(),
        "warp_l1": F.l1_loss(output["warped_image"], target),
    }


def discriminator_hinge(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    return sum(
        (
            F.relu(1 - r_score).mean() + F.relu(1 + f_score).mean()
            for (_, r_score), (_, f_score) in zip(real, fake, strict=True)
        ),
        torch.zeros(()),
    )


def generator_hinge(fake: list[tuple[list[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    return sum((-score.mean() for _, score in fake), torch.zeros(()))


def feature_matching(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    total = torch.zeros(())
    for (real_features, _), (fake_features, _) in zip(real, fake, strict=True):
        for r, f in zip(real_features, fake_features, strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total
