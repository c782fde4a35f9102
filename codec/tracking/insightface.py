"""Optional tracker on InsightFace models (SCRFD detector + ``1k3d68`` 3D landmarks).

Used when the user has an InsightFace model pack (``buffalo_l`` by default) on disk; nothing
is downloaded.  Landmarks follow the iBUG-68 layout (68 3D points), so motion uses the
``ibug68`` scheme.  Like the default tracker, it detects only when it has no face, and then
follows the landmarks; since the landmark network has no face-presence output, the detector
re-checks the face every ``recheck_every`` frames.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .assets import ModelAssetError
from .base import FaceTracker, LandmarkStabilizer, TrackResult, TrackStatus, check_frame
from .crop import CropPolicy

__all__ = ["InsightFaceTracker", "insightface_pack_dir"]

_REQUIRED_MODULES = ("detection", "landmark_3d_68")


def insightface_pack_dir(pack: str = "buffalo_l", root: str | None = None) -> Path:
    """Where InsightFace keeps ``pack``: ``{root}/models/{pack}`` (root: ``$INSIGHTFACE_HOME``
    or ``~/.insightface``)."""
    base = Path(root or os.environ.get("INSIGHTFACE_HOME", "~/.insightface")).expanduser()
    return base / "models" / pack


class _Face:
    """The minimal object InsightFace's landmark model reads (``bbox``) and writes to."""

    landmark_3d_68: np.ndarray

    def __init__(self, bbox: np.ndarray) -> None:
        self.bbox = bbox

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class InsightFaceTracker(FaceTracker):
    """Face tracker on an InsightFace model pack.

    Args:
        pack: model pack name (``buffalo_l``, ``buffalo_s``, ...).
        root: InsightFace's home folder (default ``$INSIGHTFACE_HOME`` or ``~/.insightface``).
        det_size: detector input size.
        smoothing, crop_policy: as for :class:`codec.tracking.mediapipe.MediaPipeTracker`.
        recheck_every: run the detector every this many tracked frames.

    Raises:
        ModelAssetError: insightface is not installed, or the pack is not on disk.
    """

    scheme = "ibug68"

    def __init__(
        self,
        pack: str = "buffalo_l",
        root: str | None = None,
        det_size: int = 320,
        smoothing: tuple[float, float] | None = (0.5, 40.0),
        crop_policy: CropPolicy | None = None,
        recheck_every: int = 15,
    ) -> None:
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise ModelAssetError(
                "the insightface tracker needs the insightface extra: pip install 'facevc[insightface]'"
            ) from exc
        folder = insightface_pack_dir(pack, root)
        if not folder.is_dir() or not any(folder.glob("*.onnx")):
            raise ModelAssetError(
                f"InsightFace model pack {pack!r} not found in {folder}: download {pack}.zip from "
                "https://github.com/deepinsight/insightface/releases (model packs) and unzip it there, "
                "or pass root= / set INSIGHTFACE_HOME to where it is"
            )
        self._app = FaceAnalysis(
            name=pack,
            root=str(folder.parent.parent),
            allowed_modules=list(_REQUIRED_MODULES),
            providers=["CPUExecutionProvider"],
        )
        self._app.prepare(ctx_id=-1, det_size=(det_size, det_size))
        if "landmark_3d_68" not in self._app.models:
            raise ModelAssetError(f"InsightFace model pack {pack!r} in {folder} has no 3D 68-point landmark model")
        self._landmarker = self._app.models["landmark_3d_68"]
        self._stabilizer = LandmarkStabilizer(smoothing, crop_policy)
        self.recheck_every = recheck_every
        self._box: np.ndarray | None = None
        self._since_detection = 0

    def reset(self) -> None:
        self._box = None
        self._since_detection = 0
        self._stabilizer.reset()

    def _detect(self, frame: np.ndarray) -> tuple[np.ndarray | None, int]:
        boxes, _ = self._app.det_model.detect(frame[:, :, ::-1].copy(), max_num=0, metric="default")
        if boxes is None or len(boxes) == 0:
            return None, 0
        boxes = np.asarray(boxes, dtype=np.float32)
        if self._box is not None:
            cx, cy = (self._box[0] + self._box[2]) / 2, (self._box[1] + self._box[3]) / 2
            order = [math.hypot((b[0] + b[2]) / 2 - cx, (b[1] + b[3]) / 2 - cy) for b in boxes]
            best = int(np.argmin(order))
        else:
            best = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        return boxes[best, :4], len(boxes)

    def process(self, frame: np.ndarray, time: float) -> TrackResult:
        check_frame(frame)
        status, faces_found = TrackStatus.TRACKED, 0
        if self._box is None or self._since_detection >= self.recheck_every:
            box, faces_found = self._detect(frame)
            if box is None:
                self._box = None
                self._stabilizer.lose_face()
                return TrackResult(TrackStatus.NO_FACE, time, None, None, self.scheme, faces_found=faces_found)
            if self._box is None:
                status = TrackStatus.DETECTED
                self._stabilizer.lose_face()
            self._box, self._since_detection = box, 0
        self._since_detection += 1
        face = _Face(self._box)
        self._landmarker.get(frame[:, :, ::-1].copy(), face)
        raw = np.asarray(face.landmark_3d_68, dtype=np.float32).reshape(68, 3)
        x0, y0 = raw[:, 0].min(), raw[:, 1].min()
        x1, y1 = raw[:, 0].max(), raw[:, 1].max()
        self._box = np.array([x0, y0, x1, y1], dtype=np.float32)
        height, width = frame.shape[:2]
        landmarks, crop, changed = self._stabilizer(raw, time, float(max(x1 - x0, y1 - y0)), width, height)
        return TrackResult(
            status,
            time,
            landmarks,
            raw,
            self.scheme,
            presence=1.0,
            faces_found=faces_found,
            crop=crop,
            crop_changed=changed,
        )
