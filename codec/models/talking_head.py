"""The whole receiver network: F (once per keyframe), then M + 3D warp + G per frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.warp import to_channels_last, warp_volume
from .appearance import AppearanceEncoder
from .config import ModelConfig
from .generator import Generator
from .motion_field import MotionFieldEstimator

__all__ = ["TalkingHeadModel", "keyframe_cache", "pose_jacobian"]


def pose_jacobian(
    rotation_source: torch.Tensor,
    rotation_driving: torch.Tensor,
    scale_source: torch.Tensor,
    scale_driving: torch.Tensor,
) -> torch.Tensor:
    """(B, 3, 3) ``(s_s / s_d) R_s R_d^T`` from (B, 3, 3) rotations and (B,) scales."""
    ratio = (scale_source / scale_driving).view(-1, 1, 1)
    return ratio * rotation_source @ rotation_driving.transpose(1, 2)


def keyframe_cache(volume: torch.Tensor, source_image: torch.Tensor, small_size: int) -> dict[str, torch.Tensor]:
    """What a receiver keeps for a keyframe's lifetime: the image (B, 3, S, S), F's volume
    (B, C, D, V, V), the image at ``small_size`` (``source_small``) and, for the CPU warp when not
    training, the volume's channels-last copy (``volume_rows``)."""
    cache = {
        "source_image": source_image,
        "volume": volume,
        "source_small": F.interpolate(source_image, size=(small_size, small_size), mode="area"),
    }
    if not torch.is_grad_enabled() and not volume.is_cuda:
        cache["volume_rows"] = to_channels_last(volume)
    return cache


class TalkingHeadModel(nn.Module):
    """face-vid2vid's receiver.

    ``forward`` takes and returns dicts (CompressAI style).  Inputs:

    - ``source_image``: (B, 3, S, S) float32 in [0, 1], the keyframe,
    - ``kp_source``, ``kp_driving``: (B, K, 3) float32 keypoints in crop units,
    - ``jacobian``: (B, 3, 3) float32, see :func:`pose_jacobian`,
    - optionally ``keyframe``: the dict :meth:`encode_keyframe` returned, to skip F.

    Outputs: ``image`` (B, 3, S, S) in [0, 1], ``warped_image``, ``alpha``, ``occlusion``,
    ``masks``, ``flow``.

    Args:
        config: model sizes; num_keypoints: K.
        warp_backend: see :func:`codec.ops.warp.warp_volume` (``auto``: the differentiable
            reference while training, the fast path or CUDA kernel otherwise).
    """

    def __init__(self, config: ModelConfig, num_keypoints: int = 20, warp_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.num_keypoints = num_keypoints
        self.warp_backend = warp_backend
        self.appearance = AppearanceEncoder(config)
        self.motion = MotionFieldEstimator(config, num_keypoints)
        self.generator = Generator(config)

    def encode_keyframe(self, source_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """F and what else depends only on the keyframe; cache it for the keyframe's lifetime."""
        return keyframe_cache(self.appearance(source_image), source_image, self.config.motion_size)

    def warp(
        self,
        keyframe: dict[str, torch.Tensor],
        kp_source: torch.Tensor,
        kp_driving: torch.Tensor,
        jacobian: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The per-frame geometry: M's motion field, then the 3D warp of the cached volume.

        Args:
            keyframe: the dict :meth:`encode_keyframe` returned.
            kp_source, kp_driving: (B, K, 3) float32 keypoints in crop units.
            jacobian: (B, 3, 3) float32, see :func:`pose_jacobian`.

        Returns:
            ``volume`` (the warped feature volume), ``occlusion``, ``masks``, ``flow``.
        """
        motion = self.motion(keyframe["source_small"], kp_source, kp_driving, jacobian)
        backend = self.warp_backend
        if backend == "auto" and torch.is_grad_enabled() and self.training:
            backend = "torch"
        volume = warp_volume(keyframe["volume"], motion["flow"], backend, keyframe.get("volume_rows"))
        return {"volume": volume, **motion}

    def generate(self, keyframe: dict[str, torch.Tensor], warped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """G paints the frame from what :meth:`warp` returned; the outputs of :meth:`forward`."""
        out = self.generator(warped["volume"], warped["occlusion"], warped["flow"], keyframe["source_image"])
        return {**out, "occlusion": warped["occlusion"], "masks": warped["masks"], "flow": warped["flow"]}

    def forward(self, inputs: dict[str, torch.Tensor | dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        keyframe = inputs.get("keyframe")
        if not isinstance(keyframe, dict):
            source = inputs["source_image"]
            assert isinstance(source, torch.Tensor)
            keyframe = self.encode_keyframe(source)
        kp_source, kp_driving, jacobian = inputs["kp_source"], inputs["kp_driving"], inputs["jacobian"]
        assert isinstance(kp_source, torch.Tensor) and isinstance(kp_driving, torch.Tensor)
        assert isinstance(jacobian, torch.Tensor)
        return self.generate(keyframe, self.warp(keyframe, kp_source, kp_driving, jacobian))
