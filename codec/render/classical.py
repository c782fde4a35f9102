"""The classical renderer: a landmark-driven piecewise-affine warp of the keyframe, no learning.

It is the baseline the trained model must beat and the receiver's fallback when no weights
load.  From the keyframe image the receiver gets the person's dense face mesh (the tracker
runs once per keyframe); each frame's motion moves that mesh:

1. expression: the K keypoint deltas are spread to all 478 mesh points with normalised
   Gaussian weights in the canonical (frontal) face, fading to zero away from the keypoints
   (a linear map, precomputed per keyframe);
2. pose: ``x = s R (x_c + delta) + t`` for every mesh point;
3. outside the face, two rings of anchor points follow the head's 2D motion (fully near the
   face, half-way further out) and points on the image border stay put (or move with the
   sender's body motion, when it sends one), so hair, neck and background move smoothly and
   the picture has no holes;
4. the face mesh's own triangles, plus a Delaunay triangulation joining the face to the
   rings and the border, give for every output pixel an affine map back into the keyframe
   (triangles are drawn far to near, so the visible side of a turning head wins);
   ``cv2.remap`` samples it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry.body import body_at
from ..motion.extract import CanonicalFace, MotionExtractor
from ..motion.params import MotionParams
from ..motion.pose_fit import fit_similarity
from .base import Renderer, keyframe_landmarks

__all__ = ["ClassicalRenderer", "ClassicalWarp", "WarpSetup", "rbf_spread_matrix"]

_RING_SCALES = ((1.3, 1.0), (1.8, 0.5))  # (radius / face radius, share of the head's motion)
_RING_POINTS = 20
_BORDER_STEP = 32


def rbf_spread_matrix(control: np.ndarray, targets: np.ndarray, sigma: float) -> np.ndarray:
    """(T, C) matrix M such that ``M @ values`` spreads values given at ``control`` points.

    Normalised Gaussian weights (a partition of unity near the control points, fading to 0
    more than about two ``sigma`` away from all of them).  Unlike exact radial-basis
    interpolation it needs no matrix inverse, so control points that nearly coincide (the
    two lips of a closed mouth) cannot make it blow up.

    Args:
        control: (C, 2) float positions; targets: (T, 2) float positions; sigma: kernel width.
    """
    distance2 = ((targets[:, None, :] - control[None, :, :]) ** 2).sum(-1)
    weights = np.exp(-distance2 / (2 * sigma**2))
    floor = np.exp(-2.0)  # the total weight at two sigmas from a single control point
    return np.asarray(weights / np.maximum(weights.sum(axis=1, keepdims=True), floor))


def _delaunay(points: np.ndarray, size: int) -> np.ndarray:
    """(T, 3) int32 triangles (indices into ``points``, (N, 2) pixels) of a Delaunay triangulation."""
    margin = 4 * size
    subdiv = cv2.Subdiv2D((-margin, -margin, size + 2 * margin, size + 2 * margin))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(points.astype(np.float32)):
        key = (float(x), float(y))
        if key in index:
            continue
        index[key] = i
        subdiv.insert(key)
    triangles = []
    for tri in np.asarray(subdiv.getTriangleList()).reshape(-1, 3, 2):
        ids = [index.get((float(x), float(y))) for x, y in tri.astype(np.float32)]
        if None not in ids:
            triangles.append(ids)
    return np.asarray(triangles, dtype=np.int32)


@dataclass(frozen=True)
class WarpSetup:
    """What the warp keeps per keyframe.

    Attributes:
        image: (S, S, 3) uint8 keyframe.
        canonical: the keyframe's canonical face (receiver-side, from its own tracker).
        source_points: (N, 2) float32 pixel positions in the keyframe: mesh, rings, border.
        triangles: (T, 3) int32 triangles into ``source_points``: first those outside the face,
            then the mesh's own.
        outer_count: how many of ``triangles`` lie outside the face (drawn first).
        spread: (478, K) expression spreading matrix.
        ring_source: (R, 2) ring points; ring_weight: (R,) share of head motion they follow.
        border: (B, 2) fixed border points.
    """

    image: np.ndarray
    canonical: CanonicalFace
    source_points: np.ndarray
    triangles: np.ndarray
    outer_count: int
    spread: np.ndarray
    ring_source: np.ndarray
    ring_weight: np.ndarray
    border: np.ndarray


class ClassicalWarp:
    """Render frames by warping the keyframe with the face mesh.

    Args:
        extractor: motion extractor of the stream's landmark scheme (``mediapipe478``).
        sigma: width of the expression spreading, in crop units (a face is about 1 across).
    """

    def __init__(self, extractor: MotionExtractor | None = None, sigma: float = 0.06) -> None:
        from ..tracking.assets import load_face_model_assets

        self.extractor = extractor or MotionExtractor()
        self.sigma = sigma
        self.mesh_triangles = load_face_model_assets().geometry.triangles.astype(np.int32)

    def setup(self, image: np.ndarray, landmarks: np.ndarray) -> WarpSetup:
        """Prepare a keyframe.

        Args:
            image: (S, S, 3) uint8 RGB keyframe.
            landmarks: (478, 3) its landmarks in crop units (x, y in [-1, 1]).
        """
        size = image.shape[0]
        canonical = self.extractor.canonicalize(landmarks)
        mesh = self._to_pixels(landmarks, size)
        centre = mesh.mean(0)
        radius = float(np.linalg.norm(mesh - centre, axis=1).max())
        angles = np.linspace(0, 2 * np.pi, _RING_POINTS, endpoint=False)
        circle = np.stack([np.cos(angles), np.sin(angles)], 1)
        rings = [centre + scale * radius * circle for scale, _ in _RING_SCALES]
        ring_weight = np.concatenate([np.full(_RING_POINTS, share) for _, share in _RING_SCALES])
        steps = np.arange(0, size + 1, _BORDER_STEP, dtype=np.float64)
        edge = size - 1.0
        border = np.unique(np.concatenate([
            np.stack([steps, np.zeros_like(steps)], 1), np.stack([steps, np.full_like(steps, edge)], 1),
            np.stack([np.zeros_like(steps), steps], 1), np.stack([np.full_like(steps, edge), steps], 1),
        ]).clip(0, edge), axis=0)  # fmt: skip
        ring_source = np.concatenate(rings)
        source_points = np.concatenate([mesh, ring_source, border]).astype(np.float32)
        scheme = self.extractor.scheme
        control = canonical.landmarks[scheme.keypoint_ids, :2]
        spread = rbf_spread_matrix(control, canonical.landmarks[:, :2], self.sigma)
        delaunay = _delaunay(source_points, size)
        outer = delaunay[(delaunay >= len(mesh)).any(axis=1)]  # touches a ring or the border
        triangles = np.concatenate([outer, self.mesh_triangles])
        return WarpSetup(image, canonical, source_points, triangles, len(outer), spread,
                         ring_source.astype(np.float32), ring_weight, border.astype(np.float32))  # fmt: skip

    @staticmethod
    def _to_pixels(points: np.ndarray, size: int) -> np.ndarray:
        return np.asarray((points[:, :2] + 1) * (size / 2), dtype=np.float64)

    def driving_landmarks(self, setup: WarpSetup, motion: MotionParams) -> np.ndarray:
        """(478, 3) crop-unit landmarks of the driving frame (pose and spread expression)."""
        local = setup.canonical.landmarks + setup.spread @ motion.expression_delta.astype(np.float64)
        pose = motion.head_pose
        return np.asarray(pose.scale * local @ pose.rotation().T + pose.translation)

    def render(self, setup: WarpSetup, motion: MotionParams, body_nodes: np.ndarray | None = None) -> np.ndarray:
        """(S, S, 3) uint8 RGB: the keyframe warped to ``motion``; the rings and the border move
        by ``body_nodes`` (the sender's motion outside the face, :mod:`codec.geometry.body`)."""
        size = setup.image.shape[0]
        mesh_source = setup.source_points[: len(setup.spread)].astype(np.float64)
        mesh_driving = self._to_pixels(self.driving_landmarks(setup, motion), size)
        ids = self.extractor.scheme.stable_ids
        head = fit_similarity(
            np.c_[mesh_source[ids], np.zeros(len(ids))], np.c_[mesh_driving[ids], np.zeros(len(ids))], iterations=0
        )
        moved = head.scale * setup.ring_source @ head.rotation[:2, :2].T + head.translation[:2]
        still_rings, border = setup.ring_source.astype(np.float64), setup.border.astype(np.float64)
        if body_nodes is not None:  # a point's field is backward: it was at p + d, it is at about p - d now
            still_rings = still_rings - body_at(body_nodes, still_rings, size)
            border = border - body_at(body_nodes, border, size)
        rings = still_rings + setup.ring_weight[:, None] * (moved - still_rings)
        driving = np.concatenate([mesh_driving, rings, border]).astype(np.float32)
        # far to near: the outer triangles, then the mesh sorted by depth (z grows away from the camera)
        depth = self.driving_landmarks(setup, motion)[:, 2]
        mesh = setup.triangles[setup.outer_count :]
        order = np.argsort(-depth[mesh].mean(axis=1), kind="stable")
        triangles = np.concatenate([setup.triangles[: setup.outer_count], mesh[order]])
        return self._warp(setup.image, setup.source_points, driving, triangles)

    @staticmethod
    def _warp(image: np.ndarray, source: np.ndarray, driving: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        size = image.shape[0]
        # which driving triangle covers each output pixel (later triangles win where they fold)
        owner = np.zeros((size, size), np.int32)
        corners = np.round(driving[triangles] * 16).astype(np.int32)  # 4 fractional bits
        for index, triangle in enumerate(corners):
            cv2.fillConvexPoly(owner, triangle, index + 1, lineType=cv2.LINE_8, shift=4)
        # affine maps driving -> source, one per triangle: [x y 1] @ A = [u v]
        ones = np.ones((len(triangles), 3, 1))
        d = np.concatenate([driving[triangles].astype(np.float64), ones], axis=2)
        s = source[triangles].astype(np.float64)
        determinant = np.linalg.det(d)
        good = np.abs(determinant) > 1e-6
        maps = np.zeros((len(triangles) + 1, 3, 2))
        maps[:] = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # identity for uncovered / degenerate
        maps[1:][good] = np.linalg.solve(d[good], s[good])
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        a = maps[owner]
        map_x = (xs * a[..., 0, 0] + ys * a[..., 1, 0] + a[..., 2, 0]).astype(np.float32)
        map_y = (xs * a[..., 0, 1] + ys * a[..., 1, 1] + a[..., 2, 1]).astype(np.float32)
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class ClassicalRenderer(Renderer):
    """The classical warp as a renderer (no weights needed): the decoder's fallback when no
    model loads.  The tracker finds the keyframe's face mesh once per keyframe; a keyframe
    without a face is shown as it is."""

    name = "classical"
    prepared_state = ("_setup",)

    def __init__(self, warp: ClassicalWarp | None = None) -> None:
        super().__init__()
        self.warp = warp or ClassicalWarp()
        self._setup: WarpSetup | None = None

    def _prepare(self) -> None:
        assert self.keyframe_image is not None
        landmarks = keyframe_landmarks(self.keyframe_image)
        self._setup = self.warp.setup(self.keyframe_image, landmarks) if landmarks is not None else None

    def _render(self, motion: MotionParams) -> np.ndarray:
        assert self.keyframe_image is not None
        if self._setup is None:  # no face in the keyframe: nothing to move
            return self.keyframe_image
        with self.timer("warp"):
            return self.warp.render(self._setup, motion, self.body_nodes)
