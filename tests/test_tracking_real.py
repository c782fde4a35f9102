"""The tracker on real talking-head clips from ../shared (skipped when they are absent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from codec.tracking import TrackStatus
from codec.video import VideoReader

from .conftest import shared_clip

pytestmark = pytest.mark.shared


def _frames(name: str, seconds: float) -> list[np.ndarray]:
    return [f.image for f in VideoReader(shared_clip(name), max_seconds=seconds)]


def test_tracks_detects_once_and_keeps_the_crop(tracker_factory) -> None:  # type: ignore[no-untyped-def]
    tracker = tracker_factory()
    frames = _frames("dpe_s.mp4", 2.0)
    results = [tracker.process(frame, i / 25) for i, frame in enumerate(frames)]
    assert all(r.has_face for r in results)
    assert [r.status for r in results[:2]] == [TrackStatus.DETECTED, TrackStatus.TRACKED]
    assert sum(r.status is TrackStatus.DETECTED for r in results) == 1
    assert sum(r.crop_changed for r in results) == 1  # set once, then held still
    assert results[0].landmarks is not None and results[0].landmarks.shape == (478, 3)
    landmarks = results[-1].crop_landmarks()
    assert np.abs(landmarks[:, :2]).max() < 1.0  # the whole face is inside the crop


def test_loses_and_reacquires_the_face(tracker_factory) -> None:  # type: ignore[no-untyped-def]
    tracker = tracker_factory()
    frames = _frames("dpe_s.mp4", 1.0)
    black = np.zeros_like(frames[0])
    sequence = frames[:5] + [black] * 3 + frames[5:10]
    statuses = [tracker.process(frame, i / 25).status for i, frame in enumerate(sequence)]
    assert statuses[:5] == [TrackStatus.DETECTED] + [TrackStatus.TRACKED] * 4
    assert statuses[5:8] == [TrackStatus.NO_FACE] * 3
    assert statuses[8] is TrackStatus.DETECTED and statuses[9] is TrackStatus.TRACKED


def test_small_face_in_a_wide_frame(tracker_factory) -> None:  # type: ignore[no-untyped-def]
    face = _frames("dpe_s.mp4", 0.1)[0]
    canvas = np.full((1080, 1920, 3), 40, np.uint8)
    small = cv2.resize(face, (200, 200))
    canvas[600:800, 1500:1700] = small
    result = tracker_factory().process(canvas, 0.0)
    assert result.has_face and result.landmarks is not None
    centre = result.landmarks[:, :2].mean(0)
    assert 1500 < centre[0] < 1700 and 600 < centre[1] < 800


def test_two_faces_keeps_the_largest(tracker_factory) -> None:  # type: ignore[no-untyped-def]
    big = cv2.resize(_frames("dpe_s.mp4", 0.1)[0], (384, 384))
    small = cv2.resize(_frames("fomm_demo08.mp4", 0.1)[0], (224, 224))
    canvas = np.zeros((384, 700, 3), np.uint8)
    canvas[:, :384] = big
    canvas[80:304, 440:664] = small
    result = tracker_factory().process(canvas, 0.0)
    assert result.faces_found == 2
    assert result.landmarks is not None and result.landmarks[:, 0].mean() < 384


def test_encoder_packets_through_a_face_loss() -> None:
    from codec.encoder import Encoder
    from codec.packets import ControlPacket

    frames = _frames("dpe_s.mp4", 0.5)
    black = np.zeros_like(frames[0])
    encoder = Encoder(body_motion=False)  # the face's messages only (body messages: tests/test_body.py)
    kinds = []
    for i, frame in enumerate(frames[:4] + [black, black] + frames[4:7]):
        out = encoder.encode_frame(frame, i / 25)
        for packet in out.packets:
            if isinstance(packet, ControlPacket):
                kinds.append(packet.type.value)
            else:
                kinds.append(type(packet).__name__)
    assert kinds == (
        ["KeyframePacket"] + ["MotionPacket"] * 4 + ["no_face", "face_found", "KeyframePacket"] + ["MotionPacket"] * 3
    )
