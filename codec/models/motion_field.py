"""Motion field estimator M: source and driving keypoints -> one dense 3D warp field.

Each keypoint k brings a first-order motion (face-vid2vid): a driving-space point p maps to
``J (p - x_d,k) + x_s,k`` in the source, where ``J = (s_s / s_d) R_s R_d^T`` undoes the driving
head pose and applies the source's; the background maps to itself.  A small network looks at
keypoint heatmaps and at the source image moved by each of these K + 1 motions, and predicts
soft masks that choose, for every voxel, which motion applies (mask depth is coarser than the
volume's and is upsampled), plus a 2D occlusion map.

Coordinates: keypoints are in crop units (x, y in [-1, 1] across the crop, z on x's scale);
the volume's grid runs over [-1, 1] on each axis, with z = depth / ``z_range``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import ConvAct

__all__ = ["MotionFieldEstimator", "combine_motions", "identity_grid", "keypoint_heatmaps", "sparse_motions"]


def identity_grid(depth: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(depth, height, width, 3) voxel centres (x, y, z) in [-1, 1] (align_corners=False)."""

    def axis(n: int) -> torch.Tensor:
        return (torch.arange(n, dtype=torch.float32, device=device) * 2 + 1) / n - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def sparse_motions(
    grid: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, jacobian: torch.Tensor, z_range: float
) -> torch.Tensor:
    """The K + 1 candidate backward motions at every voxel.

    Args:
        grid: (D, H, W, 3) driving-space voxel centres in grid coordinates.
        kp_source, kp_driving: (B, K, 3) keypoints in crop units.
        jacobian: (B, 3, 3) ``(s_s / s_d) R_s R_d^T``.
        z_range: crop units of depth per unit of grid z.

    Returns:
        (B, K + 1, D, H, W, 3) source positions in grid coordinates; index 0 is the background
        (identity).
    """
    scale = grid.new_tensor([1.0, 1.0, z_range])
    points = (grid * scale).unsqueeze(0).unsqueeze(0)  # (1, 1, D, H, W, 3) crop units
    relative = points - kp_driving[:, :, None, None, None, :]  # (B, K, D, H, W, 3)
    moved = torch.einsum("bij,bkdhwj->bkdhwi", jacobian, relative) + kp_source[:, :, None, None, None, :]
    moved = moved / scale
    background = grid.unsqueeze(0).unsqueeze(0).expand(kp_source.shape[0], 1, *grid.shape)
    return torch.cat([background, moved], dim=1)


def combine_motions(
    grid: torch.Tensor,
    masks: torch.Tensor,
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
    jacobian: torch.Tensor,
    z_range: float,
) -> torch.Tensor:
    """``sum_k masks_k * motion_k`` without building the K + 1 motions.

    All keypoint motions share the Jacobian, so the sum is
    ``m_0 p + J ((1 - m_0) p - sum_k m_k x_d,k) + sum_k m_k x_s,k``.

    Args:
        grid: (D, H, W, 3) voxel centres; masks: (B, K + 1, D, H, W), summing to 1 over K + 1.

    Returns:
        (B, D, H, W, 3) grid coordinates into the source.
    """
    scale = grid.new_tensor([1.0, 1.0, z_range])
    points = (grid * scale).unsqueeze(0)  # (1, D, H, W, 3) crop units
    background = masks[:, 0].unsqueeze(-1)  # (B, D, H, W, 1)
    weighted_driving = torch.einsum("bkdhw,bkj->bdhwj", masks[:, 1:], kp_driving)
    weighted_source = torch.einsum("bkdhw,bkj->bdhwj", masks[:, 1:], kp_source)
    relative = (1 - background) * points - weighted_driving
    moved = torch.einsum("bij,bdhwj->bdhwi", jacobian, relative) + weighted_source
    return (background * points + moved) / scale


def keypoint_heatmaps(size: int, kp_source: torch.Tensor, kp_driving: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, K + 1, size, size) Gaussian heatmaps of driving minus source keypoints in the image
    plane (channel 0, the background, is zero)."""
    axis = (torch.arange(size, dtype=torch.float32, device=kp_source.device) * 2 + 1) / size - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    plane = torch.stack([x, y], dim=-1)  # (size, size, 2)

    def gaussian(kp: torch.Tensor) -> torch.Tensor:
        distance2 = ((plane[None, None] - kp[:, :, None, None, :2]) ** 2).sum(-1)
        return torch.exp(-distance2 / (2 * sigma**2))

    heat = gaussian(kp_driving) - gaussian(kp_source)
    return torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)


class MotionFieldEstimator(nn.Module):
    """Predicts the motion masks and the occlusion map; combines the motions into one field.

    Args:
        config: model sizes.
        num_keypoints: K.
    """

    def __init__(self, config: ModelConfig, num_keypoints: int = 20) -> None:
        super().__init__()
        self.config = config
        self.num_keypoints = num_keypoints
        motions = num_keypoints + 1
        width = config.motion_channels
        self.inlet = ConvAct(4 * motions, width)
        self.down = nn.Sequential(ConvAct(width, 2 * width, 3, 2), ConvAct(2 * width, 2 * width))
        self.outlet = ConvAct(3 * width, width)
        self.masks = nn.Conv2d(width, motions * config.mask_depth, 1)
        self.occlusion = nn.Conv2d(width, 1, 1)
        self.register_buffer("grid", identity_grid(config.volume_depth, config.volume_size, config.volume_size),
                             persistent=False)  # fmt: skip
        plane = identity_grid(1, config.motion_size, config.motion_size)
        plane[..., 2] = 0.0
        self.register_buffer("plane", plane, persistent=False)
        self.grid: torch.Tensor
        self.plane: torch.Tensor

    def forward(
        self, source_small: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, jacobian: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """See :meth:`_forward`."""
        return self._forward(source_small, kp_source, kp_driving, jacobian)

    def _forward(
        self, source_small: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, jacobian: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            source_small: (B, 3, M, M) the source image at the motion grid's size, in [0, 1].
            kp_source, kp_driving: (B, K, 3) crop units; jacobian: (B, 3, 3).

        Returns:
            ``flow``: (B, D, V, V, 3) sampling grid into the source volume;
            ``masks``: (B, K + 1, D, V, V); ``occlusion``: (B, 1, V, V) in [0, 1].
        """
        cfg = self.config
        b, m = source_small.shape[0], cfg.motion_size
        # the source image moved by each motion, on the image plane (z = 0) at the motion grid's size
        plane = sparse_motions(self.plane, kp_source, kp_driving, jacobian, cfg.z_range)[:, :, 0, :, :, :2]
        repeated = source_small.unsqueeze(1).expand(-1, plane.shape[1], -1, -1, -1).flatten(0, 1)
        deformed = F.grid_sample(repeated, plane.flatten(0, 1), mode="bilinear", padding_mode="zeros",
                                 align_corners=False).view(b, -1, m, m)  # fmt: skip
        heat = keypoint_heatmaps(m, kp_source, kp_driving, cfg.heatmap_sigma)
        x = self.inlet(torch.cat([heat, deformed], dim=1))
        low = self.down(x)
        x = self.outlet(torch.cat([x, F.interpolate(low, scale_factor=2.0, mode="nearest")], dim=1))
        logits = self.masks(x).view(b, -1, cfg.mask_depth, m, m)
        logits = F.interpolate(logits, size=(cfg.volume_depth, cfg.volume_size, cfg.volume_size), mode="trilinear",
                               align_corners=False)  # fmt: skip
        masks = torch.softmax(logits, dim=1)
        flow = combine_motions(self.grid, masks, kp_source, kp_driving, jacobian, cfg.z_range)
        occlusion = torch.sigmoid(F.interpolate(self.occlusion(x), size=(cfg.volume_size, cfg.volume_size),
                                                mode="bilinear", align_corners=False))  # fmt: skip
        return {"flow": flow, "masks": masks, "occlusion": occlusion}
