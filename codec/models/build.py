"""The receiver network of a configuration's architecture."""

from __future__ import annotations

from .config import ModelConfig
from .mesh_head import MeshTalkingHeadModel
from .talking_head import TalkingHeadModel

__all__ = ["ARCHITECTURES", "build_model"]

#: ``ModelConfig.arch`` values
ARCHITECTURES = ("keypoints", "mesh")


def build_model(config: ModelConfig, warp_backend: str = "auto") -> TalkingHeadModel | MeshTalkingHeadModel:
    """A new (untrained) model of ``config``'s architecture.

    Raises:
        ValueError: an unknown architecture.
    """
    if config.arch == "keypoints":
        return TalkingHeadModel(config, warp_backend=warp_backend)
    if config.arch == "mesh":
        return MeshTalkingHeadModel(config, warp_backend=warp_backend)
    raise ValueError(f"unknown model architecture {config.arch!r}; known: {', '.join(ARCHITECTURES)}")
