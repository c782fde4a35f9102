"""Declared quantization of motion parameters to integers, and back."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np

from ..motion.params import HeadPose, MotionParams

__all__ = ["POSE_FIELDS", "QuantSteps", "dequantize_motion", "quantize_motion"]

#: Order of the 7 pose integers in a motion packet.
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "tz", "log_scale")


@dataclass(frozen=True)
class QuantSteps:
    """Uniform quantization steps, sent in every keyframe so the receiver needs no defaults.

    Crop units span 2 across the crop, so at 256x256 one pixel is 2/256 = 0.0078125.

    Attributes:
        angle: degrees, for yaw, pitch and roll.
        translation: crop units, for tx, ty, tz.
        log_scale: natural-log units of the scale.
        delta_xy: crop units, for the x and y expression deltas.
        delta_z: crop units, for the z deltas (depth matters less to the picture).
    """

    angle: float = 0.25
    translation: float = 1 / 256
    log_scale: float = 0.002
    delta_xy: float = 1 / 128
    delta_z: float = 1 / 64

    def __post_init__(self) -> None:
        for name, value in zip(
            ("angle", "translation", "log_scale", "delta_xy", "delta_z"), astuple(self), strict=True
        ):
            if not (math.isfinite(value) and 1e-6 <= value <= 10):
                raise ValueError(f"quantization step {name}={value} is outside [1e-6, 10]")

    def as_list(self) -> list[float]:
        return [float(v) for v in astuple(self)]

    def pose_steps(self) -> np.ndarray:
        """(7,) steps in :data:`POSE_FIELDS` order."""
        a, t, s = self.angle, self.translation, self.log_scale
        return np.array([a, a, a, t, t, t, s], dtype=np.float64)

    def delta_steps(self, num_keypoints: int) -> np.ndarray:
        """(K * 3,) steps for row-major (K, 3) deltas."""
        return np.tile(np.array([self.delta_xy, self.delta_xy, self.delta_z]), num_keypoints)


def quantize_motion(motion: MotionParams, steps: QuantSteps) -> tuple[np.ndarray, np.ndarray]:
    """Motion to integers.

    Returns:
        pose (7,) int64 in :data:`POSE_FIELDS` order; deltas (K * 3,) int64, row-major.
    """
    pose = motion.head_pose
    values = np.array([pose.yaw, pose.pitch, pose.roll, *pose.translation, math.log(pose.scale)])
    pose_q = np.round(values / steps.pose_steps()).astype(np.int64)
    delta = np.asarray(motion.expression_delta, dtype=np.float64).reshape(-1)
    delta_q = np.round(delta / steps.delta_steps(len(delta) // 3)).astype(np.int64)
    return pose_q, delta_q


def dequantize_motion(pose_q: np.ndarray, delta_q: np.ndarray, steps: QuantSteps) -> MotionParams:
    """Inverse of :func:`quantize_motion` (up to the rounding)."""
    values = np.asarray(pose_q, dtype=np.float64) * steps.pose_steps()
    pose = HeadPose(
        float(values[0]), float(values[1]), float(values[2]), values[3:6].copy(), float(math.exp(values[6]))
    )
    num_keypoints = len(delta_q) // 3
    delta = (np.asarray(delta_q, dtype=np.float64) * steps.delta_steps(num_keypoints)).reshape(num_keypoints, 3)
    return MotionParams(pose, delta.astype(np.float32))
