"""The motion representation of face-vid2vid (Wang et al., CVPR 2021, eq. 1-2).

Every frame's K keypoints are ``x_k = s * R (x_c,k + delta_k) + t``, with

- ``x_c``: (K, 3) canonical keypoints of the person, taken from the keyframe (frontal, in
  crop units: x, y in [-1, 1] across the 256x256 crop, z on x's scale),
- ``R, t, s``: the head pose (rotation from yaw/pitch/roll, translation in crop units, scale
  relative to the keyframe),
- ``delta``: (K, 3) expression deltas in the canonical frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rotation import euler_angles, rotation_matrix

__all__ = ["HeadPose", "MotionParams", "compose_view", "keypoints_from_motion"]


@dataclass(frozen=True)
class HeadPose:
    """Rigid head pose: angles in degrees (see :mod:`codec.motion.rotation`), translation
    (3,) in crop units, scale relative to the keyframe (1.0 there)."""

    yaw: float
    pitch: float
    roll: float
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))
    scale: float = 1.0

    def rotation(self) -> np.ndarray:
        """(3, 3) float64 rotation matrix."""
        return rotation_matrix(self.yaw, self.pitch, self.roll)

    @staticmethod
    def from_rotation(rotation: np.ndarray, translation: np.ndarray, scale: float) -> HeadPose:
        yaw, pitch, roll = euler_angles(rotation)
        return HeadPose(yaw, pitch, roll, np.asarray(translation, dtype=np.float64).reshape(3), float(scale))

    def as_vector(self) -> np.ndarray:
        """(7,) float64 ``yaw, pitch, roll, tx, ty, tz, scale``."""
        return np.array([self.yaw, self.pitch, self.roll, *self.translation, self.scale], dtype=np.float64)

    @staticmethod
    def from_vector(vector: np.ndarray) -> HeadPose:
        v = np.asarray(vector, dtype=np.float64).reshape(7)
        return HeadPose(float(v[0]), float(v[1]), float(v[2]), v[3:6].copy(), float(v[6]))


@dataclass(frozen=True)
class MotionParams:
    """One frame's motion: head pose, (K, 3) float32 expression deltas and, when the tracker
    sees irises, the gaze: (2, 2) float32, per eye (the subject's right eye first) the iris
    centre relative to the eye's corners (see :func:`codec.motion.gaze.measure_gaze`)."""

    head_pose: HeadPose
    expression_delta: np.ndarray
    gaze: np.ndarray | None = None


def keypoints_from_motion(canonical_keypoints: np.ndarray, motion: MotionParams) -> np.ndarray:
    """``x = s R (x_c + delta) + t``.

    Args:
        canonical_keypoints: (K, 3) float, x_c.
        motion: pose and (K, 3) deltas.

    Returns:
        (K, 3) float64 keypoints in crop units.
    """
    pose = motion.head_pose
    local = np.asarray(canonical_keypoints, dtype=np.float64) + motion.expression_delta
    return np.asarray(pose.scale * local @ pose.rotation().T + pose.translation)


def compose_view(
    motion: MotionParams,
    user_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),
    user_translation: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> MotionParams:
    """Free view: turn the head by a viewer's rotation and shift it by a viewer's translation.

    The head pose becomes ``R = R_u R_d`` and ``t = t_u + t_d`` (the rotation is about the
    head's centre, since the canonical keypoints are centred there).

    Args:
        user_rotation: (yaw, pitch, roll) in degrees, see :mod:`codec.motion.rotation`.
        user_translation: (x, y, z) in crop units.
    """
    if not any(user_rotation) and not any(user_translation):
        return motion
    pose = motion.head_pose
    rotation = rotation_matrix(*user_rotation) @ pose.rotation()
    translation = np.asarray(pose.translation, dtype=np.float64) + np.asarray(user_translation, dtype=np.float64)
    return MotionParams(HeadPose.from_rotation(rotation, translation, pose.scale), motion.expression_delta, motion.gaze)
