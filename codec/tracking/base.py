"""What every face tracker returns, and the interface it implements."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .crop import CropBox, CropPolicy
from .one_euro import OneEuroFilter

__all__ = ["FaceTracker", "LandmarkStabilizer", "TrackResult", "TrackStatus", "check_frame"]


class TrackStatus(enum.Enum):
    TRACKED = "tracked"  #: followed from the previous frame's landmarks
    DETECTED = "detected"  #: (re)acquired by the detector in this frame
    NO_FACE = "no_face"  #: no face in this frame


@dataclass(frozen=True)
class TrackResult:
    """The tracker's answer for one frame.

    Attributes:
        status: see :class:`TrackStatus`.
        time: the frame's time in seconds.
        landmarks: (N, 3) float32 smoothed landmarks in frame pixels (z on x's scale,
            smaller = nearer the camera), or None without a face.
        raw_landmarks: the same before temporal smoothing.
        scheme: name of the landmark layout (``"mediapipe478"``, ``"ibug68"``).
        presence: confidence that the tracked region holds a face, in [0, 1].
        faces_found: how many faces the detector saw when it ran this frame (0 when it did
            not run); with several, the largest (or the one nearest the last position) is kept.
        crop: the stable square crop, or None before the first face.
        crop_changed: the crop jumped in this frame (the sender sends a new keyframe).
    """

    status: TrackStatus
    time: float
    landmarks: np.ndarray | None
    raw_landmarks: np.ndarray | None
    scheme: str
    presence: float = 0.0
    faces_found: int = 0
    crop: CropBox | None = None
    crop_changed: bool = False

    @property
    def has_face(self) -> bool:
        return self.landmarks is not None

    def crop_landmarks(self) -> np.ndarray:
        """(N, 3) float32 landmarks in crop coordinates (x, y in [-1, 1] across the crop)."""
        if self.landmarks is None or self.crop is None:
            raise ValueError("this frame has no face")
        return self.crop.normalize(self.landmarks)


class FaceTracker(ABC):
    """Follows one face through a sequence of frames."""

    #: Landmark layout name of :attr:`TrackResult.landmarks`.
    scheme: str

    @abstractmethod
    def process(self, frame: np.ndarray, time: float) -> TrackResult:
        """Track the face in ``frame``: (H, W, 3) uint8 RGB, taken at ``time`` seconds."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the face: the next frame runs the detector."""


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Validate an RGB frame; raises ValueError with what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) RGB, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if min(frame.shape[:2]) < 16:
        raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]} is too small to hold a face")
    return frame


class LandmarkStabilizer:
    """Temporal smoothing of landmarks plus the stable crop, shared by the trackers.

    The One-Euro filter runs on landmarks divided by the face's size at acquisition, so its
    settings mean the same for small and large faces.

    Args:
        smoothing: One-Euro ``(min_cutoff Hz, beta)``; None disables smoothing.
        crop_policy: where the crop goes.
    """

    def __init__(self, smoothing: tuple[float, float] | None, crop_policy: CropPolicy | None = None) -> None:
        self._filter = OneEuroFilter(*smoothing) if smoothing is not None else None
        self.crop_policy = crop_policy or CropPolicy()
        self._scale: float | None = None
        self.crop: CropBox | None = None

    def reset(self) -> None:
        """Forget everything (a new call, or a new video)."""
        self.lose_face()
        self.crop = None

    def lose_face(self) -> None:
        """The face is gone: the next one starts a new smoothing track."""
        self._scale = None
        if self._filter is not None:
            self._filter.reset()

    def __call__(
        self, raw: np.ndarray, time: float, face_size: float, width: int, height: int
    ) -> tuple[np.ndarray, CropBox, bool]:
        """Smooth (N, 3) frame-pixel landmarks; returns (landmarks, crop, crop changed)."""
        landmarks = raw
        if self._filter is not None:
            if self._scale is None:
                self._scale = max(face_size, 1.0)
            landmarks = (self._filter(raw / self._scale, time) * self._scale).astype(np.float32)
        self.crop, changed = self.crop_policy.update(self.crop, landmarks, width, height)
        return landmarks, self.crop, changed
