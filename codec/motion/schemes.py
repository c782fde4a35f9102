"""Landmark layouts: which landmarks become the K motion keypoints, which are rigid enough to
carry the head pose, and the frontal template that defines yaw = pitch = roll = 0."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..tracking.assets import FaceGeometry, load_face_model_assets

__all__ = ["KEYPOINT_NAMES", "LandmarkScheme", "get_scheme"]

#: The K = 20 default keypoints, in packet order.
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye_outer", "right_eye_inner", "right_upper_lid", "right_lower_lid",
    "left_eye_outer", "left_eye_inner", "left_upper_lid", "left_lower_lid",
    "right_brow_mid", "right_brow_inner", "left_brow_mid", "left_brow_inner",
    "nose_tip",
    "mouth_right", "mouth_left", "upper_lip", "lower_lip",
    "chin", "jaw_right", "jaw_left",
)  # fmt: skip

#: MediaPipe face-mesh ids of the keypoints ("right" = the subject's right = image left).
_MEDIAPIPE_IDS = {
    "right_eye_outer": 33, "right_eye_inner": 133, "right_upper_lid": 159, "right_lower_lid": 145,
    "left_eye_outer": 263, "left_eye_inner": 362, "left_upper_lid": 386, "left_lower_lid": 374,
    "right_brow_mid": 105, "right_brow_inner": 107, "left_brow_mid": 334, "left_brow_inner": 336,
    "nose_tip": 1,
    "mouth_right": 61, "mouth_left": 291, "upper_lip": 13, "lower_lip": 14,
    "chin": 152, "jaw_right": 172, "jaw_left": 397,
}  # fmt: skip

#: iBUG-68 layout (InsightFace ``landmark_3d_68``): ids of the same keypoints.
_IBUG68_IDS = {
    "right_eye_outer": 36, "right_eye_inner": 39, "right_upper_lid": 38, "right_lower_lid": 40,
    "left_eye_outer": 45, "left_eye_inner": 42, "left_upper_lid": 43, "left_lower_lid": 47,
    "right_brow_mid": 19, "right_brow_inner": 21, "left_brow_mid": 24, "left_brow_inner": 22,
    "nose_tip": 30,
    "mouth_right": 48, "mouth_left": 54, "upper_lip": 62, "lower_lip": 66,
    "chin": 8, "jaw_right": 5, "jaw_left": 11,
}  # fmt: skip

#: For each iBUG-68 point, the MediaPipe mesh vertex closest to it (for the frontal template).
_IBUG68_TO_MEDIAPIPE = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
)  # fmt: skip

#: Rigid iBUG-68 points for the pose fit, with weights: eye corners, nose bridge and base.
_IBUG68_STABLE = {36: 2.0, 39: 2.0, 42: 2.0, 45: 2.0, 27: 1.0, 28: 1.0, 29: 1.0, 30: 1.0,
                  31: 1.0, 33: 1.0, 35: 1.0, 0: 0.5, 16: 0.5}  # fmt: skip


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark layout and what the motion representation takes from it.

    Attributes:
        name: ``"mediapipe478"`` or ``"ibug68"``.
        num_landmarks: N, landmarks per face.
        keypoint_ids: (K,) int64 landmark ids of the motion keypoints, in packet order.
        stable_ids: (P,) int64 ids used for the rigid fit; stable_weights: (P,) float64.
        template: (N_t, 3) float64 frontal face (image axes, cm) at ids ``template_ids``.
    """

    name: str
    num_landmarks: int
    keypoint_ids: np.ndarray
    stable_ids: np.ndarray
    stable_weights: np.ndarray
    template: np.ndarray
    template_ids: np.ndarray

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_ids)


def _mediapipe_scheme(geometry: FaceGeometry) -> LandmarkScheme:
    return LandmarkScheme(
        name="mediapipe478",
        num_landmarks=478,
        keypoint_ids=np.array([_MEDIAPIPE_IDS[n] for n in KEYPOINT_NAMES], dtype=np.int64),
        stable_ids=geometry.procrustes_indices.astype(np.int64),
        stable_weights=geometry.procrustes_weights.astype(np.float64),
        template=geometry.canonical_vertices.astype(np.float64),
        template_ids=np.arange(len(geometry.canonical_vertices), dtype=np.int64),
    )


def _ibug68_scheme(geometry: FaceGeometry) -> LandmarkScheme:
    stable = np.array(sorted(_IBUG68_STABLE), dtype=np.int64)
    return LandmarkScheme(
        name="ibug68",
        num_landmarks=68,
        keypoint_ids=np.array([_IBUG68_IDS[n] for n in KEYPOINT_NAMES], dtype=np.int64),
        stable_ids=stable,
        stable_weights=np.array([_IBUG68_STABLE[i] for i in stable], dtype=np.float64),
        template=geometry.canonical_vertices[list(_IBUG68_TO_MEDIAPIPE)].astype(np.float64),
        template_ids=np.arange(68, dtype=np.int64),
    )


@cache
def get_scheme(name: str = "mediapipe478") -> LandmarkScheme:
    """The landmark scheme called ``name``; raises ValueError for an unknown name."""
    builders = {"mediapipe478": _mediapipe_scheme, "ibug68": _ibug68_scheme}
    if name not in builders:
        raise ValueError(f"unknown landmark scheme {name!r}; known: {sorted(builders)}")
    return builders[name](load_face_model_assets().geometry)
