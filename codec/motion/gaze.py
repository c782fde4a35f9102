"""Where the eyes look: each iris centre in its eye's own frame, measured on the 478-point
mesh (which has irises), so that the receiver can follow gaze.

An eye's frame has its origin half-way between the eye's corners, its u axis along the
corners from the image's left corner to its right one, its v axis perpendicular, downwards on
screen; its unit is half the corners' distance.  Looking straight, an iris sits near (0, 0);
the values do not depend on the head's pose or size.  Blinks are carried by the lid keypoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EYES", "iris_positions", "measure_gaze"]

#: MediaPipe mesh ids per eye (subject's right eye first): iris centre, the corner on the
#: image's left, the corner on the image's right
EYES = ((468, 33, 133), (473, 362, 263))
#: landmarks in a mesh with irises
MESH_WITH_IRISES = 478


def _frames(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    centre = (left + right) / 2
    axis = (right - left) / 2
    half = np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    u = axis / half
    v = np.stack([-u[..., 1], u[..., 0]], axis=-1)
    return centre, u, v, half


def measure_gaze(landmarks: np.ndarray) -> np.ndarray | None:
    """Gaze of a face: (2, 2) float32, per eye (u, v); None for a mesh without irises.

    Args:
        landmarks: (N, 3) landmarks (any units; x, y used).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape[0] != MESH_WITH_IRISES:
        return None
    gaze = np.zeros((2, 2), dtype=np.float32)
    for eye, (iris, left, right) in enumerate(EYES):
        centre, u, v, half = _frames(points[left, :2], points[right, :2])
        offset = points[iris, :2] - centre
        gaze[eye] = (offset @ u / half[0], offset @ v / half[0])
    return gaze


def iris_positions(gaze: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Inverse of :func:`measure_gaze`: iris centres (2, 2) from gaze (2, 2) and each eye's
    corners (2, 2, 2): [eye, image-left / image-right corner, x / y]."""
    corners = np.asarray(corners, dtype=np.float64)
    centre, u, v, half = _frames(corners[:, 0], corners[:, 1])
    gaze = np.asarray(gaze, dtype=np.float64)
    return centre + half * (gaze[:, :1] * u + gaze[:, 1:] * v)
