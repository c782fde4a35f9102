"""Declared quantization of motion parameters to integers, and back."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np

from ..motion.params import HeadPose

__all__ = ["POSE_FIELDS", "QuantSteps", "pose_from_ints", "pose_units"]

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
        gaze: for the gaze (units of half an eye's width, see :mod:`codec.motion.gaze`).
    """

    angle: float = 0.25
    translation: float = 1 / 256
    log_scale: float = 0.004
    delta_xy: float = 1 / 128
    delta_z: float = 1 / 64
    gaze: float = 1 / 10

    def __post_init__(self) -> None:
        for name, value in zip(
            ("angle", "translation", "log_scale", "delta_xy", "delta_z", "gaze"), astuple(self), strict=True
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


def pose_units(pose: HeadPose, steps: QuantSteps) -> np.ndarray:
    """A head pose in quantizer steps: (7,) float64 in :data:`POSE_FIELDS` order (round them
    to get the integers a motion packet carries)."""
    values = np.array([pose.yaw, pose.pitch, pose.roll, *pose.translation, math.log(pose.scale)])
    return values / steps.pose_steps()


def pose_from_ints(pose_q: np.ndarray, steps: QuantSteps) -> HeadPose:
    """Inverse of :func:`pose_units` for (7,) integers."""
    values = np.asarray(pose_q, dtype=np.float64) * steps.pose_steps()
    return HeadPose(
        float(values[0]), float(values[1]), float(values[2]), values[3:6].copy(), float(math.exp(values[6]))
    )
