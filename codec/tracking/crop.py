"""The square face crop the codec works on, held still while the face stays inside it.

A neural codec warps the keyframe by the face's motion; it cannot move the background.  So
the crop does not follow every small head movement: it is fixed when the face is first found
and moves (by a jump, marked ``changed``) only when the face leaves a dead zone or changes
size a lot.  The sender sends a new keyframe on such a jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CropBox", "CropPolicy"]


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned square ``[x0, x0 + side) x [y0, y0 + side)`` in frame pixels."""

    x0: float
    y0: float
    side: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x0 + self.side / 2, self.y0 + self.side / 2

    def affine(self, out_size: int) -> np.ndarray:
        """(2, 3) affine from frame pixels to an ``out_size`` square image."""
        scale = out_size / self.side
        return np.array([[scale, 0.0, -self.x0 * scale], [0.0, scale, -self.y0 * scale]])

    def extract(self, frame: np.ndarray, out_size: int) -> np.ndarray:
        """The crop resampled to (out_size, out_size, 3) uint8; outside the frame is black."""
        scale = out_size / self.side
        height, width = frame.shape[:2]
        x0, y0, side = round(self.x0), round(self.y0), round(self.side)
        whole_pixels = abs(x0 - self.x0) < 1e-6 and abs(y0 - self.y0) < 1e-6 and abs(side - self.side) < 1e-6
        if whole_pixels and x0 >= 0 and y0 >= 0 and x0 + side <= width and y0 + side <= height:
            # inside the frame on whole pixels: a plain resize is 3x faster than warpAffine
            region = frame[y0 : y0 + side, x0 : x0 + side]
            if side == out_size:
                return np.ascontiguousarray(region)
            return cv2.resize(
                region, (out_size, out_size), interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
            )
        return cv2.warpAffine(
            frame,
            self.affine(out_size),
            (out_size, out_size),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    def normalize(self, points: np.ndarray) -> np.ndarray:
        """Frame-pixel (N, 3) points to crop coordinates: x, y in [-1, 1] across the crop,
        z on the same scale as x."""
        out = np.empty_like(points, dtype=np.float32)
        out[:, 0] = (points[:, 0] - self.x0) / self.side * 2 - 1
        out[:, 1] = (points[:, 1] - self.y0) / self.side * 2 - 1
        out[:, 2] = points[:, 2] / self.side * 2
        return out


@dataclass
class CropPolicy:
    """Where to put the crop around a face.

    Args:
        scale: crop side / face extent (the landmark bounding box's longer side).
        lift: move the crop centre up by this fraction of the face extent (room for hair).
        dead_zone: the crop stays put until the face centre is this fraction of the side off.
        size_tolerance: ... and until the face extent changes by more than this ratio.
    """

    scale: float = 1.8
    lift: float = 0.05
    dead_zone: float = 0.12
    size_tolerance: float = 1.25

    def ideal(self, landmarks: np.ndarray, width: int, height: int) -> CropBox:
        """The crop centred on (N, >=2) frame-pixel landmarks, on whole pixels, clamped to the
        frame when the frame is big enough to hold it."""
        x_min, y_min = landmarks[:, 0].min(), landmarks[:, 1].min()
        x_max, y_max = landmarks[:, 0].max(), landmarks[:, 1].max()
        extent = float(max(x_max - x_min, y_max - y_min))
        side = float(round(min(max(extent * self.scale, 16.0), float(min(width, height)))))
        cx = float(x_min + x_max) / 2
        cy = float(y_min + y_max) / 2 - self.lift * extent
        # whole pixels, inside the frame when it is big enough
        x0 = float(round(min(max(cx - side / 2, 0.0), width - side)))
        y0 = float(round(min(max(cy - side / 2, 0.0), height - side)))
        return CropBox(x0, y0, side)

    def update(self, current: CropBox | None, landmarks: np.ndarray, width: int, height: int) -> tuple[CropBox, bool]:
        """Keep ``current`` unless the face left the dead zone; returns (crop, changed)."""
        target = self.ideal(landmarks, width, height)
        if current is None:
            return target, True
        (cx, cy), (tx, ty) = current.centre, target.centre
        off_centre = max(abs(cx - tx), abs(cy - ty)) > self.dead_zone * current.side
        ratio = target.side / current.side
        resized = ratio > self.size_tolerance or ratio < 1 / self.size_tolerance
        if off_centre or resized:
            return target, True
        return current, False
