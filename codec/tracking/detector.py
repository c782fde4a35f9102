"""BlazeFace short-range face detector (MediaPipe), run through LiteRT.

The network sees a 128x128 letterboxed RGB image in [-1, 1] and regresses 896 anchors.  The
short-range model is made for faces that fill a good part of the picture, so when a full-frame
pass finds nothing the detector scans overlapping square windows (a small pyramid): upper-body
1080p shots with a small face are found as well.  Detection runs only on the first frame and
when the tracker loses the face, so the extra passes cost nothing in steady state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .runtime import TFLiteModel

__all__ = ["FaceDetection", "FaceDetector"]

_INPUT = 128
_NUM_ANCHORS = 896


@dataclass(frozen=True)
class FaceDetection:
    """One detected face in frame pixels.

    Attributes:
        box: (4,) float32 ``x0, y0, x1, y1``.
        keypoints: (6, 2) float32: right eye, left eye, nose tip, mouth, right ear, left ear
            (the subject's right is on the image left).
        score: detection confidence in [0, 1].
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] for strides 8, 16, 16, 16 (2 anchors per layer)."""
    centres: list[np.ndarray] = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = _INPUT // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    anchors = np.concatenate(centres).astype(np.float32)
    assert anchors.shape == (_NUM_ANCHORS, 2)
    return anchors


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
) -> list[FaceDetection]:
    """MediaPipe's blending NMS: overlapping candidates are averaged, weighted by score.

    Args:
        boxes: (N, 4) float32 ``x0, y0, x1, y1``; keypoints: (N, 6, 2); scores: (N,).
    """
    order = np.argsort(-scores)
    remaining = order
    detections: list[FaceDetection] = []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        members = remaining[overlap > iou_threshold]
        weights = scores[members][:, None]
        total = float(weights.sum())
        box = (boxes[members] * weights).sum(0) / total
        kps = (keypoints[members] * weights[:, :, None]).sum(0) / total
        detections.append(FaceDetection(box.astype(np.float32), kps.astype(np.float32), float(scores[best])))
        remaining = remaining[overlap <= iou_threshold]
    return detections


class FaceDetector:
    """Find faces in an RGB frame.

    Args:
        model: the BlazeFace short-range LiteRT model.
        min_score: detections below this confidence are dropped.
    """

    def __init__(self, model: TFLiteModel, min_score: float = 0.5) -> None:
        self._model = model
        self._anchors = _ssd_anchors()
        self.min_score = min_score

    def _detect_window(self, frame: np.ndarray, x0: int, y0: int, side: int) -> tuple[np.ndarray, ...]:
        """Run the network on the square window ``[x0, x0+side) x [y0, y0+side)`` (may overhang)."""
        scale = _INPUT / side
        affine = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float64)
        window = cv2.warpAffine(
            frame,
            affine,
            (_INPUT, _INPUT),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = (window.astype(np.float32) / 127.5 - 1.0)[None]
        regressors, classificators = self._model.run(tensor)
        raw = regressors.reshape(_NUM_ANCHORS, 16)
        logits = np.clip(classificators.reshape(_NUM_ANCHORS).astype(np.float64), -80.0, 80.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            empty = np.zeros((0,), np.float32)
            return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), empty
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        centre = raw[:, 0:2] / _INPUT + anchors
        half = raw[:, 2:4] / _INPUT / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / _INPUT + anchors[:, None, :]
        # back to frame pixels
        boxes = boxes * side + np.array([x0, y0, x0, y0], dtype=np.float32)
        kps = kps * side + np.array([x0, y0], dtype=np.float32)
        return boxes.astype(np.float32), kps.astype(np.float32), scores.astype(np.float32)

    def _windows(self, width: int, height: int) -> list[list[tuple[int, int, int]]]:
        """Levels of square windows (x0, y0, side): the letterboxed frame, then windows of the
        short side, of half and of a quarter of it, each with 50 % overlap."""
        long_side, short_side = max(width, height), min(width, height)
        levels: list[list[tuple[int, int, int]]] = [[((width - long_side) // 2, (height - long_side) // 2, long_side)]]
        for side in (short_side, short_side // 2, short_side // 4):
            if side < 96:
                break
            step = max(1, side // 2)
            xs = sorted({*range(0, max(1, width - side + 1), step), max(0, width - side)})
            ys = sorted({*range(0, max(1, height - side + 1), step), max(0, height - side)})
            levels.append([(x, y, side) for y in ys for x in xs])
        return levels

    def detect_levels(self, frame: np.ndarray) -> Iterator[list[FaceDetection]]:
        """Detections level by level, coarse to fine (see :meth:`_windows`), so a caller can
        stop at the first level whose detections it accepts.

        Args:
            frame: (H, W, 3) uint8 RGB.
        """
        height, width = frame.shape[:2]
        for windows in self._windows(width, height):
            found = [self._detect_window(frame, *window) for window in windows]
            boxes = np.concatenate([f[0] for f in found])
            if len(boxes):
                kps = np.concatenate([f[1] for f in found])
                scores = np.concatenate([f[2] for f in found])
                yield weighted_nms(boxes, kps, scores)

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        """Detect faces at the coarsest level that has any.

        Args:
            frame: (H, W, 3) uint8 RGB.

        Returns:
            Detections in frame pixels, highest score first; empty when there is no face.
        """
        return next(self.detect_levels(frame), [])
