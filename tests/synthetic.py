"""Synthetic face landmarks for tests: MediaPipe's canonical face, posed and expressive."""

from __future__ import annotations

import numpy as np

from codec.geometry.flow import EYE_RINGS, IRIS_RINGS
from codec.motion.rotation import rotation_matrix
from codec.motion.schemes import get_scheme
from codec.tracking.assets import load_face_model_assets

#: canonical centimetres -> crop units (a ~15 cm wide face spans ~0.8 of the crop's 2)
CM_TO_CROP = 0.055
MOUTH_AND_JAW = np.array([13, 14, 17, 0, 61, 291, 78, 308, 82, 87, 312, 317, 152, 148, 377, 172, 397, 175, 199, 200])


def person(seed: int = 0) -> np.ndarray:
    """(478, 3) frontal landmarks in crop units: the canonical face with a personal shape."""
    rng = np.random.default_rng(seed)
    template = get_scheme("mediapipe478").template * CM_TO_CROP
    shape = template * rng.uniform(0.93, 1.07, size=3) + rng.normal(0, 0.002, template.shape)
    irises = np.repeat(shape[[468 - 300, 468 - 5]], 5, axis=0)  # 10 iris points, anywhere near the eyes
    return np.concatenate([shape, irises])


def pose_face(
    face: np.ndarray,
    yaw: float,
    pitch: float,
    roll: float,
    translation: tuple[float, float, float] = (0, 0, 0),
    scale: float = 1.0,
    noise: float = 0.0,
    mouth_open: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Apply an expression (mouth and jaw pulled down by ``mouth_open`` crop units) in the face's
    frame, then the pose; add Gaussian ``noise`` (crop units)."""
    local = face.copy()
    local[MOUTH_AND_JAW, 1] += mouth_open
    rotated = scale * local @ rotation_matrix(yaw, pitch, roll).T + np.asarray(translation)
    rng = np.random.default_rng(seed)
    return (rotated + rng.normal(0, noise, rotated.shape)).astype(np.float32)


def face_mesh(scale: float = 0.07) -> np.ndarray:
    """(478, 3) crop units: the tracker's frontal template (cm) scaled into the crop, irises added
    at the eye openings' centres (ring points 1.2 template units around them)."""
    template = load_face_model_assets().geometry.canonical_vertices.astype(np.float64)
    points = (template - template.mean(axis=0)) * scale * np.array([1.0, -1.0, -1.0])  # image axes: y down
    irises = []
    for (ring, _), iris in zip(EYE_RINGS, IRIS_RINGS, strict=True):
        centre = points[list(ring)].mean(axis=0)
        offsets = np.array([[0, 0, 0], [1, 0, 0], [0, -1, 0], [-1, 0, 0], [0, 1, 0]]) * 1.2 * scale
        irises.append(centre + offsets)
        assert iris[0] == 468 + 5 * len(irises) - 5
    return np.concatenate([points, *irises])
