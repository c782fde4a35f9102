"""The mesh model's per-frame input: geometry maps from the keyframe's mesh and a motion.

:func:`frame_geometry` rebuilds the frame's mesh (:func:`codec.geometry.mesh.driving_mesh`),
derives the backward warp (:func:`codec.geometry.flow.mesh_flow`) and stacks it as
:data:`GEOMETRY_CHANNELS` maps, the same way for training pairs and for the receiver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..motion.extract import CanonicalFace, MotionExtractor
from ..motion.params import MotionParams
from .dense_expression import DenseExpressionMap
from .detail import detail_maps
from .flow import REGION_EYE, REGION_IRIS, REGION_MOUTH, REGION_SKIN, MeshFlow, keyframe_depth, mesh_flow
from .mesh import driving_mesh

__all__ = [
    "GEOMETRY_CHANNELS",
    "KeyframeGeometry",
    "frame_geometry",
    "frame_maps",
    "geometry_maps",
    "keyframe_geometry",
    "mesh_maps",
]

#: the channels of :func:`geometry_maps`, in order
GEOMETRY_CHANNELS = ("grid_x", "grid_y", "depth_shift", "skin", "mouth", "eye", "iris", "visible", "face_weight")


@dataclass(frozen=True)
class KeyframeGeometry:
    """The keyframe's tracked mesh (478, 3) float64 crop units, its canonical face, and its
    z-buffers by size (filled as frames need them)."""

    mesh: np.ndarray
    canonical: CanonicalFace
    depth: dict[int, np.ndarray] = field(default_factory=dict)

    def depth_at(self, size: int) -> np.ndarray:
        """:func:`codec.geometry.flow.keyframe_depth` at ``size``, computed once."""
        if size not in self.depth:
            self.depth[size] = keyframe_depth(self.mesh, size)
        return self.depth[size]


def keyframe_geometry(landmarks: np.ndarray, extractor: MotionExtractor | None = None) -> KeyframeGeometry:
    """The keyframe's geometry from its (478, 3) crop-unit landmarks.

    Raises:
        ValueError: not (478, 3) finite landmarks.
    """
    extractor = extractor or MotionExtractor()
    points = np.asarray(landmarks, dtype=np.float64)
    return KeyframeGeometry(points, extractor.canonicalize(points))


def geometry_maps(flow: MeshFlow) -> np.ndarray:
    """(9, S, S) float32 maps of :data:`GEOMETRY_CHANNELS` from a warp."""
    regions = flow.regions
    return np.stack([
        flow.grid[..., 0], flow.grid[..., 1], flow.depth_shift,
        regions == REGION_SKIN, regions == REGION_MOUTH, regions == REGION_EYE, regions == REGION_IRIS,
        flow.visible, flow.face_weight,
    ]).astype(np.float32)  # fmt: skip


def frame_geometry(
    keyframe: KeyframeGeometry,
    motion: MotionParams,
    dense_map: DenseExpressionMap,
    size: int,
    body_motion: np.ndarray | None = None,
) -> np.ndarray:
    """(9, size, size) float32 :data:`GEOMETRY_CHANNELS` of one frame: the keyframe's mesh moved
    by ``motion`` (pose, expression, gaze; a viewer's rotation already composed in); outside the
    face, ``body_motion`` (size, size, 2) pixels (:func:`codec.geometry.body.body_field`) or still."""
    return frame_maps(keyframe, motion, dense_map, size, body_motion=body_motion)[0]


def frame_maps(
    keyframe: KeyframeGeometry,
    motion: MotionParams,
    dense_map: DenseExpressionMap,
    size: int,
    image_size: int | None = None,
    body_motion: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`frame_geometry` at ``size`` and, with ``image_size``, the (3, image_size,
    image_size) float32 :func:`codec.geometry.detail.detail_maps` of the same rebuilt mesh (the
    mesh model's ``geometry`` and ``detail``; None without ``image_size``)."""
    return mesh_maps(keyframe, driving_mesh(keyframe.canonical.landmarks, motion, dense_map), size, image_size,
                     body_motion)  # fmt: skip


def mesh_maps(
    keyframe: KeyframeGeometry,
    target: np.ndarray,
    size: int,
    image_size: int | None = None,
    body_motion: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`frame_maps` of an already rebuilt (478, 3) crop-unit mesh ``target``
    (:func:`codec.geometry.mesh.driving_mesh`), for a caller that uses the mesh again."""
    geometry = geometry_maps(mesh_flow(keyframe.mesh, target, size, keyframe.depth_at(size), body_motion))
    detail = detail_maps(keyframe.mesh, target, image_size) if image_size is not None else None
    return geometry, detail
