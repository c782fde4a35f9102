"""Model sizes: one small JSON file (``sizes.json``) of named configurations.

Run settings (learning rate, batch size, ...) are not here: they belong to the training
command line (:mod:`codec.train`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources

__all__ = ["ModelConfig", "available_sizes", "load_config"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the talking-head networks.

    Attributes:
        name: the size's name (``tiny``, ``base``).
        image_size: side of the square images in and out (pixels).
        volume_channels, volume_depth, volume_size: the feature volume is
            (volume_channels, volume_depth, volume_size, volume_size).
        encoder_channels: widths of the appearance encoder's stages.
        motion_size: side of the motion estimator's grid; motion_channels: its width.
        mask_depth: depth bins of the motion masks (upsampled to the volume's depth).
        generator_channels: widths of the generator at volume_size, x2 and x4.
        generator_blocks: residual blocks at the volume's resolution.
        z_range: crop units of depth that the volume's z axis spans on each side of 0.
        heatmap_sigma: width of the keypoint heatmaps, in crop units.
        arch: ``keypoints`` (face-vid2vid: a motion field from 20 keypoints) or ``mesh``
            (the warp from the tracker's mesh, refined: :mod:`codec.models.mesh_head`).
    """

    name: str
    image_size: int
    volume_channels: int
    volume_depth: int
    volume_size: int
    encoder_channels: tuple[int, ...]
    motion_size: int
    motion_channels: int
    mask_depth: int
    generator_channels: tuple[int, int, int]
    generator_blocks: int
    z_range: float
    heatmap_sigma: float
    description: str = ""
    arch: str = "keypoints"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, object]) -> ModelConfig:
        fields = dict(values)
        fields["encoder_channels"] = tuple(fields["encoder_channels"])  # type: ignore[arg-type]
        fields["generator_channels"] = tuple(fields["generator_channels"])  # type: ignore[arg-type]
        return ModelConfig(**fields)  # type: ignore[arg-type]


def _sizes() -> dict[str, dict[str, object]]:
    return json.loads(resources.files("codec.models").joinpath("sizes.json").read_text())


def available_sizes() -> list[str]:
    return sorted(_sizes())


def load_config(name: str = "tiny") -> ModelConfig:
    """The configuration called ``name``; raises ValueError for an unknown one."""
    sizes = _sizes()
    if name not in sizes:
        raise ValueError(f"unknown model size {name!r}; known: {', '.join(sorted(sizes))}")
    return ModelConfig.from_dict({"name": name, **sizes[name]})
