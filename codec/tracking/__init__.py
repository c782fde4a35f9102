"""Face tracking: detection, dense 3D landmarks, smoothing and the stable face crop."""

from __future__ import annotations

from typing import Any

from .assets import ModelAssetError
from .base import FaceTracker, TrackResult, TrackStatus
from .crop import CropBox, CropPolicy

__all__ = [
    "BACKENDS",
    "CropBox",
    "CropPolicy",
    "FaceTracker",
    "ModelAssetError",
    "TrackResult",
    "TrackStatus",
    "create_tracker",
]

#: Tracker backends by name.
BACKENDS = ("mediapipe", "insightface")


def create_tracker(backend: str = "mediapipe", **options: Any) -> FaceTracker:
    """A face tracker.

    Args:
        backend: ``"mediapipe"`` (default, ships with the package) or ``"insightface"``
            (needs the ``insightface`` extra and a downloaded model pack).
        options: passed to the backend's constructor.

    Raises:
        ValueError: unknown backend.
        ModelAssetError: the backend's models are missing (the message says how to get them).
    """
    if backend == "mediapipe":
        from .mediapipe import MediaPipeTracker

        return MediaPipeTracker(**options)
    if backend == "insightface":
        from .insightface import InsightFaceTracker

        return InsightFaceTracker(**options)
    raise ValueError(f"unknown tracker backend {backend!r}; choose one of {', '.join(BACKENDS)}")
