"""ONNX export of the receiver networks: F (keyframe -> volume) and the per-frame network
(M + 3D warp + G), for runtimes such as onnxruntime or TensorRT.

    python -m codec.export --model tiny --out exported/
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models.talking_head import TalkingHeadModel

__all__ = ["AppearancePart", "FramePart", "export_onnx"]

OPSET = 20  # GridSample on 5D inputs


class AppearancePart(nn.Module):
    """image (1, 3, S, S) in [0, 1] -> volume (1, C, D, V, V), small image (1, 3, M, M)."""

    def __init__(self, model: TalkingHeadModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.model.encode_keyframe(image)
        return cache["volume"], cache["source_small"]


class FramePart(nn.Module):
    """(volume, small image, keyframe image, kp_source, kp_driving, jacobian) -> image."""

    def __init__(self, model: TalkingHeadModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        volume: torch.Tensor,
        source_small: torch.Tensor,
        source_image: torch.Tensor,
        kp_source: torch.Tensor,
        kp_driving: torch.Tensor,
        jacobian: torch.Tensor,
    ) -> torch.Tensor:
        keyframe = {"volume": volume, "source_small": source_small, "source_image": source_image}
        out = self.model({"keyframe": keyframe, "kp_source": kp_source, "kp_driving": kp_driving, "jacobian": jacobian})
        return out["image"]


def example_inputs(model: TalkingHeadModel) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    generator = torch.Generator().manual_seed(0)
    kp = torch.rand(1, model.num_keypoints, 3, generator=generator) * 0.8 - 0.4
    return (
        torch.rand(1, 3, cfg.image_size, cfg.image_size, generator=generator),
        kp,
        kp + 0.03 * torch.randn(1, model.num_keypoints, 3, generator=generator),
        torch.eye(3)[None],
    )


def export_onnx(model: TalkingHeadModel, out: Path) -> tuple[Path, Path]:
    """Write ``appearance.onnx`` and ``frame.onnx`` into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    backend = model.warp_backend
    model.warp_backend = "torch"  # grid_sample: exported as ONNX GridSample
    try:
        image, kp_source, kp_driving, jacobian = example_inputs(model)
        appearance = AppearancePart(model)
        frame = FramePart(model)
        with torch.no_grad():
            volume, small = appearance(image)
            torch.onnx.export(appearance, (image,), str(out / "appearance.onnx"), input_names=["image"],
                              output_names=["volume", "source_small"], opset_version=OPSET, dynamo=False)  # fmt: skip
            torch.onnx.export(
                frame, (volume, small, image, kp_source, kp_driving, jacobian), str(out / "frame.onnx"),
                input_names=["volume", "source_small", "source_image", "kp_source", "kp_driving", "jacobian"],
                output_names=["image"], opset_version=OPSET, dynamo=False,
            )  # fmt: skip
    finally:
        model.warp_backend = backend
    return out / "appearance.onnx", out / "frame.onnx"
