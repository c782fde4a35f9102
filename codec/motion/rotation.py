"""Head rotation from yaw, pitch and roll, and back.

Axes are the image's: x to the right, y down, z away from the camera (a right-handed frame);
the face looks towards -z.  Angles are in degrees:

- yaw > 0 turns the nose towards the image's right (the subject's left),
- pitch > 0 turns the nose up,
- roll > 0 tilts the head clockwise on screen.

``R = R_roll @ R_yaw @ R_pitch``: pitch is applied first, in the head's own frame.
"""

from __future__ import annotations

import numpy as np

__all__ = ["euler_angles", "out_of_plane_angle", "rotation_matrix"]


def rotation_matrix(yaw: float | np.ndarray, pitch: float | np.ndarray, roll: float | np.ndarray) -> np.ndarray:
    """Rotation matrices from angles in degrees.

    Args:
        yaw, pitch, roll: scalars or arrays of one shape ``S``.

    Returns:
        (*S, 3, 3) float64.
    """
    yaw_r, pitch_r, roll_r = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll))
    yaw_r, pitch_r, roll_r = np.broadcast_arrays(yaw_r, pitch_r, roll_r)
    cy, sy = np.cos(yaw_r), np.sin(yaw_r)
    cp, sp = np.cos(pitch_r), np.sin(pitch_r)
    cr, sr = np.cos(roll_r), np.sin(roll_r)
    zero, one = np.zeros_like(cy), np.ones_like(cy)
    r_pitch = np.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(*cy.shape, 3, 3)
    r_yaw = np.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).reshape(*cy.shape, 3, 3)
    r_roll = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*cy.shape, 3, 3)
    return np.asarray(r_roll @ r_yaw @ r_pitch)


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a (3, 3) rotation built as in :func:`rotation_matrix`.

    Yaw is kept in [-90, 90]; at exactly +-90 degrees (the nose along x) roll is set to 0.
    """
    r = np.asarray(rotation, dtype=np.float64)
    sin_yaw = float(np.clip(r[2, 0], -1.0, 1.0))
    yaw = np.arcsin(sin_yaw)
    if abs(sin_yaw) > 1 - 1e-9:  # gimbal lock: pitch and roll share one axis
        roll = 0.0
        pitch = np.arctan2(r[0, 1] * np.sign(sin_yaw), r[1, 1])
    else:
        pitch = np.arctan2(-r[2, 1], r[2, 2])
        roll = np.arctan2(r[1, 0], r[0, 0])
    return float(np.rad2deg(yaw)), float(np.rad2deg(pitch)), float(np.rad2deg(roll))


def out_of_plane_angle(rotation: np.ndarray) -> float:
    """Degrees in [0, 180] by which a (3, 3) rotation tilts the z axis (the line of sight):
    how far it turns a face towards or away from the camera; a roll alone gives 0."""
    return float(np.rad2deg(np.arccos(np.clip(np.asarray(rotation, dtype=np.float64)[2, 2], -1.0, 1.0))))
