"""The optional InsightFace backend: its error messages, and its adapter logic driven by a
stand-in for the insightface package (the real model pack cannot be downloaded here)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from codec.motion.extract import MotionExtractor
from codec.motion.schemes import get_scheme
from codec.tracking import ModelAssetError, TrackStatus, create_tracker

from .synthetic import CM_TO_CROP


def _ibug68_face(shift: float = 0.0) -> np.ndarray:
    points = get_scheme("ibug68").template * CM_TO_CROP * 300 + np.array([320.0 + shift, 240.0, 0.0])
    return points.astype(np.float32)


class _FakeLandmarker:
    def get(self, image: np.ndarray, face) -> None:  # type: ignore[no-untyped-def]
        face["landmark_3d_68"] = _ibug68_face(shift=float(image[0, 0, 0]))


class _FakeDetector:
    def detect(self, image: np.ndarray, max_num: int = 0, metric: str = "default"):  # type: ignore[no-untyped-def]
        if image.max() == 0:
            return np.zeros((0, 5), np.float32), None
        return np.array([[250, 170, 390, 310, 0.9], [10, 10, 40, 40, 0.8]], np.float32), None


class _FakeFaceAnalysis:
    def __init__(self, name: str, root: str, allowed_modules: list[str], providers: list[str]) -> None:
        self.models = {"landmark_3d_68": _FakeLandmarker()}
        self.det_model = _FakeDetector()

    def prepare(self, ctx_id: int, det_size: tuple[int, int]) -> None:
        pass


@pytest.fixture
def fake_insightface(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    package = types.ModuleType("insightface")
    app = types.ModuleType("insightface.app")
    app.FaceAnalysis = _FakeFaceAnalysis  # type: ignore[attr-defined]
    package.app = app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "insightface", package)
    monkeypatch.setitem(sys.modules, "insightface.app", app)
    return tmp_path


def test_missing_package_or_pack_says_what_to_do(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "insightface", None)
    with pytest.raises(ModelAssetError, match=r"pip install 'facevc\[insightface\]'"):
        create_tracker("insightface")


def test_missing_pack(fake_insightface) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelAssetError, match=r"model pack 'buffalo_l' not found in .*models/buffalo_l: download"):
        create_tracker("insightface", root=str(fake_insightface))


def test_tracks_with_a_pack(fake_insightface) -> None:  # type: ignore[no-untyped-def]
    pack = fake_insightface / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "det_10g.onnx").write_bytes(b"")
    tracker = create_tracker("insightface", root=str(fake_insightface))
    assert tracker.scheme == "ibug68"
    frame = np.full((480, 640, 3), 0, np.uint8)
    frame[1:] = 1  # not black: the fake detector sees a face
    first = tracker.process(frame, 0.0)
    second = tracker.process(frame, 0.04)
    assert first.status is TrackStatus.DETECTED and first.faces_found == 2
    assert second.status is TrackStatus.TRACKED and second.faces_found == 0
    extractor = MotionExtractor(tracker.scheme)
    canonical = extractor.canonicalize(first.crop_landmarks())
    motion = extractor.extract(second.crop_landmarks(), canonical)
    assert abs(motion.head_pose.yaw) < 1e-3 and np.abs(motion.expression_delta).max() < 1e-4
    black = tracker.process(np.zeros((480, 640, 3), np.uint8), 0.08)
    assert black.status is TrackStatus.TRACKED  # followed until the periodic re-check
    tracker.reset()
    assert tracker.process(np.zeros((480, 640, 3), np.uint8), 0.12).status is TrackStatus.NO_FACE
