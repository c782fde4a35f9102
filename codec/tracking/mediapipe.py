"""The default tracker: BlazeFace to find the face, the 478-point face mesh to follow it.

Per frame, the mesh runs on a region of interest predicted from the previous frame's
landmarks; the detector runs only on the first frame and when the mesh reports that the face
is gone (MediaPipe's own detect-then-track scheme).  A detection is accepted only when the
mesh confirms a face in it; otherwise the detector looks at finer windows (small faces in
wide shots).
"""

from __future__ import annotations

import math

import numpy as np

from .assets import load_face_model_assets
from .base import FaceTracker, LandmarkStabilizer, TrackResult, TrackStatus, check_frame
from .crop import CropPolicy
from .detector import FaceDetection, FaceDetector
from .facemesh import ROI_SCALE, FaceMesh, MeshResult, RegionOfInterest
from .runtime import TFLiteModel

__all__ = ["MediaPipeTracker"]


class MediaPipeTracker(FaceTracker):
    """Detect-then-track face tracker with smoothing and a stable crop.

    Args:
        num_threads: LiteRT threads per network.
        min_presence: below this face-presence probability the face counts as lost.
        smoothing: One-Euro ``(min_cutoff Hz, beta)`` on landmarks in face-size units;
            None disables smoothing.
        crop_policy: where the crop goes; see :class:`CropPolicy`.
        task_path: an explicit ``face_landmarker.task`` (default: found in installed wheels).
        max_candidates: detections per detector level that are checked with the mesh.
    """

    scheme = "mediapipe478"

    def __init__(
        self,
        num_threads: int = 1,
        min_presence: float = 0.5,
        smoothing: tuple[float, float] | None = (0.5, 40.0),
        crop_policy: CropPolicy | None = None,
        task_path: str | None = None,
        max_candidates: int = 3,
    ) -> None:
        assets = load_face_model_assets(task_path)
        self.geometry = assets.geometry
        self._detector = FaceDetector(
            TFLiteModel(assets.detector_tflite, num_threads, ("regressors", "classificators"))
        )
        self._mesh = FaceMesh(TFLiteModel(assets.landmarks_tflite, num_threads, ("Identity", "Identity_1")))
        self.min_presence = min_presence
        self.max_candidates = max_candidates
        self._stabilizer = LandmarkStabilizer(smoothing, crop_policy)
        self._roi: RegionOfInterest | None = None
        self._last_centre: tuple[float, float] | None = None

    def reset(self) -> None:
        self._roi = None
        self._last_centre = None
        self._stabilizer.reset()

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        """All faces in ``frame`` (no tracking state involved)."""
        return self._detector.detect(check_frame(frame))

    def _candidates(self, detections: list[FaceDetection]) -> list[FaceDetection]:
        """Faces in the order to try: nearest the last known position, else largest first."""
        if self._last_centre is not None:
            lx, ly = self._last_centre

            def distance(d: FaceDetection) -> float:
                return math.hypot((d.box[0] + d.box[2]) / 2 - lx, (d.box[1] + d.box[3]) / 2 - ly)

            return sorted(detections, key=distance)
        return sorted(detections, key=lambda d: (-d.area, -d.score))

    def _acquire(self, frame: np.ndarray) -> tuple[MeshResult | None, int]:
        """Run the detector, coarse to fine, and keep the first face the mesh confirms.

        Returns the mesh and how many faces the deciding detector level saw."""
        seen = 0
        for detections in self._detector.detect_levels(frame):
            seen = max(seen, len(detections))
            for detection in self._candidates(detections)[: self.max_candidates]:
                mesh = self._mesh(frame, RegionOfInterest.from_detection(detection))
                if mesh.presence >= self.min_presence:
                    return mesh, len(detections)
        return None, seen

    def process(self, frame: np.ndarray, time: float) -> TrackResult:
        check_frame(frame)
        status = TrackStatus.TRACKED
        faces_found = 0
        mesh = self._mesh(frame, self._roi) if self._roi is not None else None
        if mesh is None or mesh.presence < self.min_presence:
            self._stabilizer.lose_face()
            mesh, faces_found = self._acquire(frame)
            status = TrackStatus.DETECTED
            if mesh is None:
                self._roi = None
                return TrackResult(TrackStatus.NO_FACE, time, None, None, self.scheme, faces_found=faces_found)
        raw = mesh.landmarks
        self._roi = RegionOfInterest.from_landmarks(raw)
        self._last_centre = (self._roi.cx, self._roi.cy)
        height, width = frame.shape[:2]
        landmarks, crop, changed = self._stabilizer(raw, time, self._roi.size / ROI_SCALE, width, height)
        return TrackResult(
            status,
            time,
            landmarks,
            raw,
            self.scheme,
            presence=mesh.presence,
            faces_found=faces_found,
            crop=crop,
            crop_changed=changed,
        )
