"""An open mouth the receiver has seen: cut from one crop, painted into later pictures.

A keyframe with closed lips holds no teeth and no inner mouth, so whatever the model paints
there when the mouth opens is a guess (a pale or dark blur).  The sender knows what the
receiver holds: when the camera's mouth opens wider than any the receiver has seen, it sends
one crop of that mouth, and the receiver paints its inside into every picture whose mouth is open,
warped by the mouth's fan (the inner lip line's centre and each pair of neighbouring inner
lip points, the same triangles that close the mouth in :func:`codec.geometry.flow.closed_triangles`).

The sender decides when (:mod:`codec.mouth_sender`) and sends the window as a mouth message;
the mesh renderer paints it with :func:`paint_open_mouth` into each picture whose rebuilt
mesh opens the mouth.  On val at level 3 the open-mouth frames' face PSNR rose from 23.63 to
23.90 dB (the README's mouth message paragraph has the clips).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .flow import MOUTH_RING

__all__ = [
    "MIN_TRIANGLE_AREA",
    "MOUTH_CORNER_IDS",
    "MOUTH_FEATHER",
    "MOUTH_INNER_LIP_IDS",
    "MOUTH_PAD",
    "MouthReference",
    "cut_mouth",
    "mouth_opening",
    "paint_mouth",
    "paint_open_mouth",
]

#: pixels added around the inner lip line's box when a mouth is cut (the lips' inner edge
#: stays inside the window whatever the later warp samples: a bilinear pixel beyond it)
MOUTH_PAD = 3
#: pixels over which the painted inside fades into the picture at the inner lip line
MOUTH_FEATHER = 1.5
#: square pixels below which a fan triangle is skipped (closed lips: nothing to paint)
MIN_TRIANGLE_AREA = 0.5
#: a picture's mouth opening (:func:`mouth_opening`) from which a received mouth is painted
#: into it, and from which it is painted at full strength (in between, it fades in)
PAINT_FROM_OPENING = 0.05
PAINT_FULL_OPENING = 0.09
#: MediaPipe ids of the inner lips' midpoints (upper, lower): their gap is the mouth's opening
MOUTH_INNER_LIP_IDS = (13, 14)
#: MediaPipe ids of the mouth's corners: their distance is the mouth's width
MOUTH_CORNER_IDS = (61, 291)


def mouth_opening(landmarks: np.ndarray) -> float:
    """How far a face's mouth is open: the gap between the inner lips' midpoints divided by the
    distance between the mouth's corners (0 for closed lips; NaN when the corners coincide or
    the points are not finite).

    Args:
        landmarks: (478, >=2) MediaPipe mesh points, any unit (x, y used).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    upper, lower = (points[i, :2] for i in MOUTH_INNER_LIP_IDS)
    left, right = (points[i, :2] for i in MOUTH_CORNER_IDS)
    width = float(np.hypot(*(left - right)))
    gap = float(np.hypot(*(upper - lower)))
    return gap / width if width > 0 and np.isfinite(gap) else float("nan")


@dataclass(frozen=True)
class MouthReference:
    """One crop's mouth.

    Attributes:
        image: (h, w, 3) uint8 RGB, the window around the inner lip line.
        ring: (20, 2) float32 pixel positions of the inner lip line (:data:`MOUTH_RING`
            order) in the window.
    """

    image: np.ndarray
    ring: np.ndarray


def _ring_of(landmarks: np.ndarray) -> np.ndarray:
    """(20, 2) float64 inner lip line of (478, >=2) pixel landmarks.

    Raises:
        ValueError: not (478, >=2) landmarks, or its inner lip line is not finite.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 478 or points.shape[1] < 2:
        raise ValueError(f"landmarks must be (478, >=2), got {points.shape}")
    ring = points[list(MOUTH_RING), :2]
    if not np.isfinite(ring).all():
        raise ValueError("the inner lip line is not finite")
    return ring


def cut_mouth(crop: np.ndarray, landmarks: np.ndarray, pad: int = MOUTH_PAD) -> MouthReference:
    """The mouth of ``crop``: (S, S, 3) uint8 RGB and its (478, >=2) pixel landmarks.

    Raises:
        ValueError: bad landmarks (see above), or the mouth lies off the crop.
    """
    ring = _ring_of(landmarks)
    height, width = crop.shape[:2]
    x0, y0 = np.floor(ring.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(ring.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError("the mouth lies off the crop")
    window = np.ascontiguousarray(crop[y0:y1, x0:x1])
    return MouthReference(window, (ring - (x0, y0)).astype(np.float32))


def _fan(ring: np.ndarray) -> list[np.ndarray]:
    """The mouth's triangles, each (3, 2): the ring's centre and two neighbouring ring points."""
    centre = ring.mean(axis=0)
    return [np.stack([centre, ring[i], ring[(i + 1) % len(ring)]]) for i in range(len(ring))]


def paint_mouth(picture: np.ndarray, reference: MouthReference, landmarks: np.ndarray,
                feather: float = MOUTH_FEATHER, strength: float = 1.0) -> np.ndarray:  # fmt: skip
    """``picture`` (S, S, 3) uint8 RGB with the inside of ``reference``'s mouth painted into
    the mouth that its (478, >=2) pixel ``landmarks`` draw (a new array; pixels outside the
    inner lip line, feather included, are left exactly as they were).  ``strength`` in [0, 1]
    blends the painted inside with the picture's own (0: the picture unchanged).

    Raises:
        ValueError: bad landmarks (see :func:`cut_mouth`).
    """
    ring = _ring_of(landmarks)
    height, width = picture.shape[:2]
    margin = int(np.ceil(3 * feather)) + 2  # the feather's reach, and the triangles' rounding
    x0, y0 = np.maximum(np.floor(ring.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(ring.max(axis=0)).astype(int) + margin + 1, (width, height))
    out = picture.copy()
    if x1 - x0 < 2 or y1 - y0 < 2 or strength <= 0:  # off the picture, or nothing to paint
        return out
    box_height, box_width = int(y1 - y0), int(x1 - x0)
    inside = np.zeros((box_height, box_width, 3), np.float32)
    mask = np.zeros((box_height, box_width), np.float32)
    source = reference.image.astype(np.float32)
    for source_triangle, triangle in zip(_fan(reference.ring.astype(np.float64)), _fan(ring - (x0, y0)), strict=True):
        edge_a, edge_b = triangle[1] - triangle[0], triangle[2] - triangle[0]
        if abs(edge_a[0] * edge_b[1] - edge_a[1] * edge_b[0]) / 2 < MIN_TRIANGLE_AREA:
            continue
        tx0, ty0 = np.maximum(np.floor(triangle.min(axis=0)).astype(int) - 1, 0)
        tx1, ty1 = np.minimum(np.ceil(triangle.max(axis=0)).astype(int) + 2, (box_width, box_height))
        if tx1 <= tx0 or ty1 <= ty0:
            continue
        box = triangle - (tx0, ty0)
        affine = cv2.getAffineTransform(box.astype(np.float32), source_triangle.astype(np.float32))
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # the affine maps the picture's box to the window
        warped = cv2.warpAffine(source, affine, (int(tx1 - tx0), int(ty1 - ty0)), flags=flags,
                                borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        covered = np.zeros((ty1 - ty0, tx1 - tx0), np.uint8)
        cv2.fillConvexPoly(covered, np.round(box * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
        fresh = (covered > 0) & (mask[ty0:ty1, tx0:tx1] == 0)
        inside[ty0:ty1, tx0:tx1][fresh] = warped[fresh]
        mask[ty0:ty1, tx0:tx1][fresh] = 1.0
    if not mask.any():
        return out
    weight = cv2.GaussianBlur(mask, (0, 0), feather) * (mask > 0) if feather > 0 else mask
    weight = weight[..., None] * min(float(strength), 1.0)
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(np.round(region * (1 - weight) + inside * weight), 0, 255).astype(np.uint8)
    return out


def paint_open_mouth(picture: np.ndarray, reference: MouthReference, mesh: np.ndarray) -> np.ndarray:
    """``picture`` (S, S, 3) uint8 RGB with ``reference``'s mouth painted into the mouth of
    ``mesh``, the frame's (478, >=2) mesh in crop units (x, y in [-1, 1]; the receiver's
    rebuilt mesh), when that mouth is open: from :data:`PAINT_FROM_OPENING`, at full strength
    from :data:`PAINT_FULL_OPENING`.  A closed mouth, or a mesh that is not finite, leaves
    ``picture`` as it is (the same array)."""
    opening = mouth_opening(mesh)
    if not opening > PAINT_FROM_OPENING:  # NaN too
        return picture
    points = np.asarray(mesh, dtype=np.float64)[:, :2]
    ring = points[list(MOUTH_RING)]
    if not np.isfinite(ring).all():
        return picture
    size = np.array([picture.shape[1], picture.shape[0]], np.float64)
    strength = min((opening - PAINT_FROM_OPENING) / (PAINT_FULL_OPENING - PAINT_FROM_OPENING), 1.0)
    return paint_mouth(picture, reference, (points + 1.0) * (size / 2.0), strength=strength)
