"""What moves outside the face: a coarse motion field of the body and background.

The mesh says where every face pixel of a frame comes from in the keyframe; nothing in the
motion says it for the shoulders, the hair's ends or a camera that sways.  On the val pairs
those pixels carry 40 % of the picture's error and barely less than a frozen keyframe's;
a smooth field of a few dozen vectors removes most of it (an 8x8 field fitted to the true
optical flow outside the face cuts that error 3x).  The sender measures it (dense optical
flow from the frame to the keyframe, fitted outside the face with a smooth bilinear grid of
:data:`BODY_NODES` x :data:`BODY_NODES` nodes) and sends it quantized
(:mod:`codec.motion.body_code`); the receiver upsamples it into the geometry's warp outside
the face (:func:`codec.geometry.flow.mesh_flow`).

Units: node displacements are backward (frame pixel -> keyframe position), in crop units
(2 = the crop's side), so they do not depend on the picture's size.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

__all__ = ["BODY_NODES", "FLOW_SIZE", "body_at", "body_field", "face_mask", "measure_body_motion"]

#: nodes per side of the bilinear grid (corners included)
BODY_NODES = 7
#: side (pixels) at which the sender measures the optical flow
FLOW_SIZE = 128
#: the face mask is grown by this share of the face's radius (the face's own motion is the mesh's)
FACE_MARGIN = 0.1
#: smoothness weight of the fit relative to the data (pulls nodes without data to their neighbours)
SMOOTHNESS = 0.05
#: a node fitted from less than this many unmasked flow pixels (its basis weight summed) keeps its
#: neighbours' value only
MIN_SUPPORT = 1.0


@cache
def _basis(nodes: int, size: int) -> np.ndarray:
    """(size*size, nodes*nodes) float64: each pixel's bilinear weights on the node grid (pixel
    centres; the outer nodes sit on the picture's edges)."""
    position = (np.arange(size) + 0.5) / size * (nodes - 1)
    low = np.clip(np.floor(position).astype(np.int64), 0, nodes - 2)
    frac = position - low
    axis = np.zeros((size, nodes))
    axis[np.arange(size), low] = 1 - frac
    axis[np.arange(size), low + 1] = frac
    return np.einsum("yi,xj->yxij", axis, axis).reshape(size * size, nodes * nodes)


@cache
def _smoothness(nodes: int) -> np.ndarray:
    """(E, nodes*nodes) differences of neighbouring nodes."""
    rows = []
    index = np.arange(nodes * nodes).reshape(nodes, nodes)
    pairs = [
        *zip(index[:, :-1].ravel(), index[:, 1:].ravel(), strict=True),
        *zip(index[:-1].ravel(), index[1:].ravel(), strict=True),
    ]
    for a, b in pairs:
        row = np.zeros(nodes * nodes)
        row[a], row[b] = 1.0, -1.0
        rows.append(row)
    return np.array(rows)


def face_mask(landmarks: np.ndarray, size: int, margin: float = FACE_MARGIN) -> np.ndarray:
    """(size, size) bool: the convex hull of (N, >=2) crop-unit landmarks, grown by ``margin``
    face radii."""
    points = (np.asarray(landmarks, dtype=np.float64)[:, :2] + 1) * (size / 2)
    mask: np.ndarray = np.zeros((size, size), np.uint8)
    if not np.isfinite(points).all():
        return mask.astype(bool)
    centre = points.mean(axis=0)
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    grow = round(margin * radius)
    if grow > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return mask.astype(bool)


def _gray(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small


def measure_body_motion(
    keyframe_image: np.ndarray, frame_image: np.ndarray, frame_landmarks: np.ndarray | None
) -> np.ndarray:
    """The sender's measure: where each part of ``frame_image`` outside the face was in the keyframe.

    Args:
        keyframe_image, frame_image: (S, S, 3) uint8 RGB crops of the same size.
        frame_landmarks: (N, >=2) crop-unit landmarks of the frame (its face is left out of the
            fit), or None.

    Returns:
        (BODY_NODES, BODY_NODES, 2) float32 backward displacements, crop units.
    """
    if keyframe_image.shape != frame_image.shape:
        raise ValueError(f"keyframe {keyframe_image.shape} and frame {frame_image.shape} differ in size")
    flow_calc = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # type: ignore[attr-defined]
    flow = flow_calc.calc(_gray(frame_image), _gray(keyframe_image), None)  # (F, F, 2) pixels, frame -> keyframe
    keep = np.ones((FLOW_SIZE, FLOW_SIZE), bool)
    if frame_landmarks is not None:
        keep = ~face_mask(frame_landmarks, FLOW_SIZE)
    basis = _basis(BODY_NODES, FLOW_SIZE)[keep.ravel()]
    target = flow.reshape(-1, 2)[keep.ravel()] * (2.0 / FLOW_SIZE)
    smooth = _smoothness(BODY_NODES)
    lhs = basis.T @ basis + SMOOTHNESS * len(basis) / BODY_NODES**2 * (smooth.T @ smooth)
    lhs += 1e-6 * np.eye(len(lhs))  # nothing outside the face at all: zero motion
    nodes = np.linalg.solve(lhs, basis.T @ target)
    return nodes.reshape(BODY_NODES, BODY_NODES, 2).astype(np.float32)


def body_field(nodes: np.ndarray, size: int) -> np.ndarray:
    """The receiver's field: (BODY_NODES, BODY_NODES, 2) crop-unit node displacements ->
    (size, size, 2) float64 backward displacements in pixels at ``size`` (:func:`body_at` at
    every pixel)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    return body_at(nodes, np.stack([xs.ravel(), ys.ravel()], axis=1), size).reshape(size, size, 2)


def body_at(nodes: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    """The field of :func:`body_field` at (N, 2) float pixel positions of a ``size`` picture:
    (N, 2) float64 backward displacements in pixels (positions off the picture take its edge's)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    n = nodes.shape[0] if nodes.ndim else 0
    if nodes.shape != (n, n, 2) or n < 2:
        raise ValueError(f"body nodes must be (n, n, 2) with n >= 2, got {nodes.shape}")
    position = np.clip((np.asarray(points, dtype=np.float64) + 0.5) / size * (n - 1), 0.0, n - 1.0)
    low = np.minimum(np.floor(position).astype(np.int64), n - 2)
    frac = position - low
    (x0, y0), (fx, fy) = low.T, frac.T
    top = nodes[y0, x0] * (1 - fx)[:, None] + nodes[y0, x0 + 1] * fx[:, None]
    bottom = nodes[y0 + 1, x0] * (1 - fx)[:, None] + nodes[y0 + 1, x0 + 1] * fx[:, None]
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]) * (size / 2.0)
