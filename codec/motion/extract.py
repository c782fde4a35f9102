"""From a frame's dense landmarks to face-vid2vid motion parameters.

1. Keyframe: a robust similarity fit of the frontal template onto the keyframe's rigid
   landmarks gives the keyframe's head pose; un-rotating the keyframe's landmarks by it gives
   the person's canonical (frontal) face, and its K keypoints are ``x_c``.
2. Every frame: a robust fit of that canonical face onto the frame's rigid landmarks gives the
   head pose (same person, so only pose and expression differ); the expression deltas are the
   keypoints' residuals brought back into the canonical frame.  With the exact deltas,
   ``s R (x_c + delta) + t`` reproduces the frame's keypoints exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gaze import measure_gaze
from .params import HeadPose, MotionParams
from .pose_fit import fit_similarity
from .schemes import LandmarkScheme, get_scheme

__all__ = ["CanonicalFace", "MotionExtractor"]


@dataclass(frozen=True)
class CanonicalFace:
    """A person's frontal face from the keyframe.

    Attributes:
        landmarks: (N, 3) float64 all landmarks, frontal, crop units, origin at the head centre.
        keypoints: (K, 3) float32 ``x_c``.
        head_pose: the keyframe's own pose (its scale is 1 by definition).
    """

    landmarks: np.ndarray
    keypoints: np.ndarray
    head_pose: HeadPose


def _check_landmarks(landmarks: np.ndarray, scheme: LandmarkScheme) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (scheme.num_landmarks, 3):
        raise ValueError(f"{scheme.name} landmarks must be ({scheme.num_landmarks}, 3), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks contain NaN or inf")
    return points


class MotionExtractor:
    """Turns landmarks (crop units, see :meth:`codec.tracking.CropBox.normalize`) into motion.

    Args:
        scheme: landmark layout name or object.
    """

    def __init__(self, scheme: str | LandmarkScheme = "mediapipe478") -> None:
        self.scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme

    def canonicalize(self, landmarks: np.ndarray) -> CanonicalFace:
        """The canonical face of a keyframe.

        Args:
            landmarks: (N, 3) keyframe landmarks in crop units.
        """
        points = _check_landmarks(landmarks, self.scheme)
        ids = self.scheme.stable_ids
        fit = fit_similarity(self.scheme.template[ids], points[ids], self.scheme.stable_weights)
        rotation, translation = fit.rotation, fit.translation
        frontal = (points - translation) @ rotation  # R^T (x - t), row vectors
        pose = HeadPose.from_rotation(rotation, translation, 1.0)
        keypoints = frontal[self.scheme.keypoint_ids].astype(np.float32)
        return CanonicalFace(frontal, keypoints, pose)

    def head_pose(self, landmarks: np.ndarray, canonical: CanonicalFace) -> HeadPose:
        """The head pose of (N, 3) crop-unit landmarks relative to ``canonical``'s frame."""
        points = _check_landmarks(landmarks, self.scheme)
        ids = self.scheme.stable_ids
        fit = fit_similarity(canonical.landmarks[ids], points[ids], self.scheme.stable_weights)
        return HeadPose.from_rotation(fit.rotation, fit.translation, fit.scale)

    def extract(self, landmarks: np.ndarray, canonical: CanonicalFace) -> MotionParams:
        """Motion of one frame.

        Args:
            landmarks: (N, 3) crop-unit landmarks of the frame.
            canonical: the current keyframe's canonical face.

        Returns:
            Head pose, (K, 3) float32 expression deltas and the gaze (None without irises).
        """
        points = _check_landmarks(landmarks, self.scheme)
        pose = self.head_pose(points, canonical)
        keypoints = points[self.scheme.keypoint_ids]
        local = (keypoints - pose.translation) @ pose.rotation() / pose.scale
        delta = (local - canonical.keypoints).astype(np.float32)
        return MotionParams(pose, delta, measure_gaze(points))
