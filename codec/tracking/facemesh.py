"""MediaPipe face-mesh network (478 3D landmarks) on a rotated square region of interest."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import FaceDetection
from .runtime import TFLiteModel

__all__ = ["NUM_LANDMARKS", "FaceMesh", "MeshResult", "RegionOfInterest"]

NUM_LANDMARKS = 478
_INPUT = 256
#: The ROI is this many times the face's extent, as in MediaPipe's face-landmark graph.
ROI_SCALE = 1.5
#: Landmark ids of the subject's right / left outer eye corners (define the ROI rotation).
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


@dataclass(frozen=True)
class RegionOfInterest:
    """A rotated square in frame pixels: centre, side and rotation (radians, clockwise on
    screen, i.e. the angle of the eye line)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_input(self) -> np.ndarray:
        """(2, 3) affine mapping frame pixels to the network's 256x256 input."""
        scale = _INPUT / self.size
        cos, sin = math.cos(-self.angle) * scale, math.sin(-self.angle) * scale
        return np.array(
            [
                [cos, -sin, _INPUT / 2 - cos * self.cx + sin * self.cy],
                [sin, cos, _INPUT / 2 - sin * self.cx - cos * self.cy],
            ]
        )

    @staticmethod
    def from_detection(detection: FaceDetection) -> RegionOfInterest:
        right_eye, left_eye = detection.keypoints[0], detection.keypoints[1]
        angle = math.atan2(float(left_eye[1] - right_eye[1]), float(left_eye[0] - right_eye[0]))
        x0, y0, x1, y1 = (float(v) for v in detection.box)
        return RegionOfInterest((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * ROI_SCALE, angle)

    @staticmethod
    def from_landmarks(landmarks: np.ndarray) -> RegionOfInterest:
        """ROI around (478, 3) frame-pixel landmarks, rotated with the eye line."""
        right_eye, left_eye = landmarks[RIGHT_EYE_OUTER, :2], landmarks[LEFT_EYE_OUTER, :2]
        angle = math.atan2(float(left_eye[1] - right_eye[1]), float(left_eye[0] - right_eye[0]))
        cos, sin = math.cos(angle), math.sin(angle)
        xy = landmarks[:, :2].astype(np.float64)
        # coordinates in the face-aligned frame (rotate by -angle)
        u = xy[:, 0] * cos + xy[:, 1] * sin
        v = -xy[:, 0] * sin + xy[:, 1] * cos
        uc, vc = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
        size = max(u.max() - u.min(), v.max() - v.min()) * ROI_SCALE
        return RegionOfInterest(uc * cos - vc * sin, uc * sin + vc * cos, float(size), angle)


@dataclass(frozen=True)
class MeshResult:
    """Landmarks of one face.

    Attributes:
        landmarks: (478, 3) float32 frame pixels; z has the same scale as x, smaller = nearer.
        presence: probability in [0, 1] that the ROI holds a face.
    """

    landmarks: np.ndarray
    presence: float


class FaceMesh:
    """Run the 478-point face-mesh network on a region of interest."""

    def __init__(self, model: TFLiteModel) -> None:
        self._model = model

    def __call__(self, frame: np.ndarray, roi: RegionOfInterest) -> MeshResult:
        """Args: frame: (H, W, 3) uint8 RGB; roi: the face region in frame pixels."""
        affine = roi.to_input()
        crop = cv2.warpAffine(
            frame,
            affine,
            (_INPUT, _INPUT),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = crop.astype(np.float32)[None] * np.float32(1.0 / 255.0)
        raw_landmarks, raw_presence = self._model.run(tensor)
        points = raw_landmarks.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        inverse = cv2.invertAffineTransform(affine)
        xy = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        z = points[:, 2] * (roi.size / _INPUT)
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(raw_presence.reshape(-1)[0], -50, 50))))
        landmarks = np.concatenate([xy, z[:, None]], axis=1).astype(np.float32)
        return MeshResult(landmarks, presence)
