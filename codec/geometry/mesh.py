"""Each frame's dense 3D face mesh, rebuilt by the receiver from the sent motion.

The keyframe's canonical mesh (its 478 tracked points, frontal: :class:`CanonicalFace`) moves by
the frame's expression (the K sent keypoint deltas spread to every point by a
:class:`DenseExpressionMap`), then by its head pose (``x = s R (x_c + delta) + t``); the irises
then move to the sent gaze (each iris centre relative to its eye's corners, on screen), their
rings with them.  Without a gaze the irises keep their place in the eye.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..motion.gaze import EYES, MESH_WITH_IRISES, iris_positions
from ..motion.params import MotionParams
from .dense_expression import DenseExpressionMap
from .eyelids import close_lids
from .flow import IRIS_RINGS

__all__ = ["driving_mesh", "mirror_mesh", "mirror_permutation", "posed_mesh"]

#: each iris point's mirror image (centre, +x, up, -x, down of one eye <-> of the other)
_IRIS_MIRROR = {468: 473, 469: 476, 470: 475, 471: 474, 472: 477}


def posed_mesh(canonical_landmarks: np.ndarray, motion: MotionParams, dense_map: DenseExpressionMap) -> np.ndarray:
    """(N, 3) float64 crop units: the canonical mesh moved by expression (closing lids closed
    along their whole line) and head pose, irises where the expression map puts them.

    Args:
        canonical_landmarks: (N, 3) the keyframe's frontal mesh, crop units.
        motion: the frame's head pose and (K, 3) expression deltas.
        dense_map: K keypoint deltas to N mesh deltas.
    """
    canonical = np.asarray(canonical_landmarks, dtype=np.float64)
    local = close_lids(canonical, canonical + dense_map.dense_delta(motion.expression_delta))
    pose = motion.head_pose
    return np.asarray(pose.scale * local @ pose.rotation().T + pose.translation)


def driving_mesh(canonical_landmarks: np.ndarray, motion: MotionParams, dense_map: DenseExpressionMap) -> np.ndarray:
    """(N, 3) float64 crop units: :func:`posed_mesh` with each iris moved to the sent gaze
    (in the image plane; a mesh without irises or a motion without gaze is left as posed)."""
    mesh = posed_mesh(canonical_landmarks, motion, dense_map)
    if motion.gaze is None or len(mesh) != MESH_WITH_IRISES:
        return mesh
    corners = np.array([[mesh[left, :2], mesh[right, :2]] for _, left, right in EYES])
    targets = iris_positions(np.asarray(motion.gaze, dtype=np.float64), corners)
    for ring, target in zip(IRIS_RINGS, targets, strict=True):
        shift = target - mesh[ring[0], :2]
        mesh[list(ring), :2] += shift
    return mesh


@cache
def mirror_permutation() -> np.ndarray:
    """(478,) int64: the mesh point that each point becomes in the mirrored face (the subject's
    right eye's corner <-> the left one's); an involution.  The tracker's frontal template is
    exactly symmetric, so each of its points has an exact mirror point; the irises are paired
    by hand (:data:`_IRIS_MIRROR`)."""
    from ..tracking.assets import load_face_model_assets

    template = load_face_model_assets().geometry.canonical_vertices.astype(np.float64)
    mirrored = template * np.array([-1.0, 1.0, 1.0])
    distance = ((mirrored[:, None, :] - template[None, :, :]) ** 2).sum(axis=-1)
    permutation = np.concatenate([distance.argmin(axis=1), np.arange(len(template), MESH_WITH_IRISES)])
    for a, b in _IRIS_MIRROR.items():
        permutation[a], permutation[b] = b, a
    return permutation


def mirror_mesh(mesh: np.ndarray) -> np.ndarray:
    """(478, 3) crop units -> the mesh of the horizontally flipped picture: x negated (the crop
    is symmetric about x = 0), points renamed by :func:`mirror_permutation`."""
    points = np.asarray(mesh, dtype=np.float64) * np.array([-1.0, 1.0, 1.0])
    return points[mirror_permutation()]
