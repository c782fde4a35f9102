"""``bench freeview``: the views, the measured turn, the per-view arithmetic, the reports, the
identity extra (present or not), and short runs on a real and a faceless clip."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bench.__main__ import main as bench_main
from bench.freeview import (
    ANGLES,
    FRONT,
    INPUT,
    Angle,
    AngleStats,
    ClipResult,
    angle_stats,
    identity_stats,
    mean_stats,
    measured_turn,
    summarize,
)
from bench.freeview_identity import IDENTITY_MISSING, SAME_PERSON_DISTANCE, load_identity_model
from bench.freeview_report import GRID_FILE, HEADER, LABEL_WIDTH, PLOT_FILE, THUMBNAIL, markdown, write_freeview
from codec.motion.params import HeadPose, MotionParams, compose_view

from .conftest import bench_on_a_faceless_clip, shared_clip

NAN3 = [math.nan] * 3


def _identity_or_skip() -> Any:
    model, line = load_identity_model()
    if model is None:
        pytest.skip(f"the bench extra is not installed ({line})")
    return model


# --- the views and the measured turn ------------------------------------------------------------


def test_the_views_are_the_issues() -> None:
    assert [(a.name, a.yaw, a.pitch) for a in ANGLES] == [
        ("front", 0, 0),
        ("yaw-20", -20, 0), ("yaw-10", -10, 0), ("yaw+10", 10, 0), ("yaw+20", 20, 0),
        ("pitch-15", 0, -15), ("pitch-10", 0, -10), ("pitch+10", 0, 10), ("pitch+15", 0, 15),
    ]  # fmt: skip
    assert ANGLES[0] is FRONT and FRONT.axis is None and FRONT.requested == 0
    assert (Angle("p", pitch=-15).axis, Angle("p", pitch=-15).requested) == ("pitch", -15)
    assert (Angle("y", yaw=20).axis, Angle("y", yaw=20).requested) == ("yaw", 20)


@pytest.mark.parametrize("driving", [(7.0, -4.0, 3.0), (15.0, 10.0, 5.0), (-20.0, 8.0, -6.0)])
@pytest.mark.parametrize("view", [(0.0, 15.0, 0.0), (-20.0, 0.0, 0.0), (10.0, -10.0, 0.0)])
def test_measured_turn_recovers_the_viewers_rotation(driving: tuple[float, float, float],
                                                     view: tuple[float, float, float]) -> None:  # fmt: skip
    """The decoder's own composition (``R_u R_d``) measured back exactly; a plain difference of
    Euler angles would not be (it mixes pitch into yaw and roll)."""
    motion = MotionParams(HeadPose(*driving), np.zeros((20, 3), np.float32))
    turned = compose_view(motion, view)
    np.testing.assert_allclose(measured_turn(motion.head_pose.rotation(), turned.head_pose.rotation()), view,
                               atol=1e-9)  # fmt: skip
    if view[1] and driving[0]:
        naive = np.subtract(turned.head_pose.as_vector()[:3], driving)
        assert np.abs(naive - view).max() > 0.5


# --- the arithmetic on synthetic numbers --------------------------------------------------------


def test_angle_stats_on_synthetic_numbers() -> None:
    view = Angle("yaw+10", yaw=10)
    face = np.array([True, True, False, True])
    turns = np.array([[9.0, 1.0, 0.0], [11.0, -1.0, 0.5], NAN3, [13.0, 0.0, 1.0]])
    stats = angle_stats(view, face, turns, np.array([0.2, np.nan, 0.7, 0.4]))
    assert stats.frames == 4 and stats.face_found == 0.75 and stats.pose_frames == 3
    assert stats.measured_yaw == pytest.approx(11.0) and stats.measured_pitch == pytest.approx(0.0)
    assert stats.measured_roll == pytest.approx(0.5)
    assert stats.error == pytest.approx(1.0) and stats.abs_error == pytest.approx(5 / 3)
    assert stats.identity_frames == 3 and stats.identity_missed == pytest.approx(0.25)
    assert stats.identity_distance == pytest.approx(1.3 / 3) and stats.identity_same == pytest.approx(2 / 3)
    pitch = angle_stats(Angle("pitch-15", pitch=-15), face, turns, None)
    assert pitch.error == pytest.approx(-0.0 + 15) and pitch.identity_distance is None  # measured 0, asked -15
    assert pitch.abs_error == pytest.approx(np.mean([16, 14, 15]))
    front = angle_stats(FRONT, face, np.zeros((4, 3)), None)
    assert front.error is None and front.measured_yaw is None and front.face_found == 0.75


def test_angle_stats_without_faces() -> None:
    stats = angle_stats(Angle("yaw+20", yaw=20), np.zeros(3, bool), np.full((3, 3), np.nan), np.full(2, np.nan))
    assert stats.face_found == 0.0 and stats.pose_frames == 0 and stats.error is None
    assert stats.identity_frames == 0 and stats.identity_missed == 1.0 and stats.identity_distance is None
    assert identity_stats(np.zeros(0)).identity_missed is None


def test_mean_stats_weighs_clips_equally_and_skips_missing() -> None:
    a = AngleStats(frames=10, face_found=1.0, pose_frames=10, error=2.0, identity_distance=0.3)
    b = AngleStats(frames=30, face_found=0.5, pose_frames=12, error=-1.0, identity_distance=None)
    mean = mean_stats([a, b])
    assert mean.frames == 40 and mean.pose_frames == 22
    assert mean.face_found == pytest.approx(0.75) and mean.error == pytest.approx(0.5)
    assert mean.identity_distance == pytest.approx(0.3) and mean.abs_error is None


# --- reports ------------------------------------------------------------------------------------


def _results(identity: bool) -> list[ClipResult]:
    results = []
    for clip, shift in (("a.mp4", 0.0), ("b.mp4", 2.0)):
        result = ClipResult(clip, frames=20, fps=25.0)
        for angle in ANGLES:
            turns = np.zeros((4, 3))
            turns[:, 0 if angle.axis == "yaw" else 1] = angle.requested - shift
            distances = np.array([0.3, 0.5, np.nan, 0.7]) if identity else None
            result.angles[angle.name] = angle_stats(angle, np.array([True, True, True, not shift]), turns, distances)
        result.input_identity = identity_stats(np.array([0.1, 0.2])) if identity else None
        colour = np.uint8(40 if shift else 200)
        result.samples = {name: np.full((256, 256, 3), colour, np.uint8) for name in ["keyframe", "front", "yaw+10"]}
        results.append(result)
    return [*results, ClipResult("broken.mp4", error="broken.mp4: not a readable video")]


def test_reports_with_identity(tmp_path: Path) -> None:
    results = _results(identity=True)
    meta = {
        "when": "today",
        "command": "python -m bench freeview",
        "seconds": 5.0,
        "identity_measured": True,
        "identity": "identity: dlib (test)",
        "identity_every": 5,
        "renderer": "neural",
        "model": "tiny.pth",
    }
    summary = summarize(results, meta)
    text = write_freeview(summary, tmp_path, {r.clip: r.samples for r in results if r.samples})
    data = json.loads((tmp_path / "freeview.json").read_text())
    assert data == json.loads(json.dumps(summary)) and data["overall"]["clips"] == 2
    assert data["errors"] == [{"clip": "broken.mp4", "error": "broken.mp4: not a readable video"}]
    yaw = data["overall"]["angles"]["yaw+10"]
    assert yaw["error"] == pytest.approx(-1.0) and yaw["face_found"] == pytest.approx(0.875)
    assert yaw["frames"] == 8 and data["overall"]["input_identity"]["identity_distance"] == pytest.approx(0.15)
    assert text == (tmp_path / "freeview.md").read_text()
    assert "| yaw+10 | yaw +10 | 87.5 | +9.0 | +0.0 | -1.0 | 1.0 | 0.500 | 66.7 |" in text
    assert "| pitch-15 | pitch -15 | 87.5 | +0.0 | -16.0 | -1.0 | 1.0 | 0.500 | 66.7 |" in text
    assert "| front | 0 | 87.5 | n/a | n/a | n/a | n/a | 0.500 | 66.7 |" in text
    assert "| input (real frames) | |  |  |  |  |  | 0.150 | 100.0 |" in text
    assert "error: broken.mp4: not a readable video" in text and f"same person (< {SAME_PERSON_DISTANCE})" in text
    assert (tmp_path / PLOT_FILE).stat().st_size > 10_000
    grid = cv2.imread(str(tmp_path / GRID_FILE))
    assert grid.shape == (HEADER + 2 * THUMBNAIL, LABEL_WIDTH + len(ANGLES) * THUMBNAIL + THUMBNAIL, 3)
    first, second = HEADER + THUMBNAIL // 2, HEADER + THUMBNAIL + THUMBNAIL // 2
    keyframe_x, front_x, pitch_x = LABEL_WIDTH + THUMBNAIL // 2, LABEL_WIDTH + 3 * THUMBNAIL // 2, grid.shape[1] - 5
    assert (grid[first, keyframe_x] == 200).all() and (grid[second, front_x] == 40).all()
    assert (grid[first, pitch_x] == 255).all()  # no sample of that view: left white


def test_reports_without_the_identity_extra(tmp_path: Path) -> None:
    results = _results(identity=False)
    summary = summarize(results, {"identity_measured": False, "identity": IDENTITY_MISSING, "seconds": 5.0})
    text = markdown(summary)
    assert IDENTITY_MISSING + "." in text.splitlines()
    assert "identity distance" not in text and "input (real frames)" not in text
    assert "| yaw+10 | yaw +10 | 87.5 | +9.0 | +0.0 | -1.0 | 1.0 |" in text
    assert summary["overall"]["angles"]["front"]["identity_distance"] is None
    assert summary["overall"]["input_identity"] is None


# --- the identity extra -------------------------------------------------------------------------


def test_the_missing_extra_is_said_never_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IDENTITY_MISSING == "identity: not measured (pip install 'facevc[bench]')"
    real_import = importlib.import_module

    def no_dlib(name: str, package: str | None = None) -> Any:
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_dlib)
    model, line = load_identity_model()
    assert model is None and line.startswith(IDENTITY_MISSING + ": dlib does not import")
    monkeypatch.setattr(importlib, "import_module", real_import)
    real_find_spec = importlib.util.find_spec

    def no_models(name: str, package: str | None = None) -> Any:
        return None if name == "face_recognition_models" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", no_models)
    try:
        real_import("dlib")
    except ImportError:
        pytest.skip("dlib is not installed: only the first case applies")
    model, line = load_identity_model()
    assert model is None and line.startswith(IDENTITY_MISSING + ": the package face_recognition_models")


@pytest.mark.shared
def test_identity_tells_people_apart() -> None:
    """Same person below dlib's threshold, two different people above it, no face: no descriptor."""
    model = _identity_or_skip()
    from bench.inputs import prepare_clip

    man = prepare_clip(shared_clip("d0.mp4"), 256, 10.0).frames
    woman = prepare_clip(shared_clip("styleheat_demo.mp4"), 256, 10.0).frames
    d0, d0_later, other = (model.descriptor(image) for image in (man[0], man[-1], woman[0]))
    assert d0.shape == (128,) and d0.dtype == np.float64
    assert np.linalg.norm(d0 - d0_later) < SAME_PERSON_DISTANCE < np.linalg.norm(d0 - other)
    assert model.descriptor(np.full((256, 256, 3), 90, np.uint8)) is None


# --- runs ---------------------------------------------------------------------------------------


def test_a_clip_without_a_face_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = bench_on_a_faceless_clip(tmp_path, "freeview", ("freeview.json", '{"earlier": "results"}'))
    assert code == 1
    err = capsys.readouterr().err
    assert "noface.mp4: no face found" in err
    assert f"error: no clip could be measured; {out} left as it was" in err
    assert json.loads((out / "freeview.json").read_text()) == {"earlier": "results"}  # the results already there stay
    assert sorted(p.name for p in out.iterdir()) == ["freeview.json"]


@pytest.mark.slow
@pytest.mark.shared
def test_freeview_on_a_real_clip(tmp_path: Path) -> None:
    clip = shared_clip("d0.mp4")
    out = tmp_path / "out"
    assert bench_main(["freeview", "--clips", str(clip), "--seconds", "0.6", "--out", str(out)]) == 0
    data = json.loads((out / "freeview.json").read_text())
    assert data["meta"]["renderer"] == "neural" and data["meta"]["every"] == 2
    (row,) = data["clips"]
    assert row["frames"] == 15 and set(row["angles"]) == {a.name for a in ANGLES}
    for angle in ANGLES:
        stats = row["angles"][angle.name]
        assert stats["frames"] == 8 and stats["face_found"] == 1.0, angle.name
        if angle.axis is not None:  # the turn the decoder was asked for is seen on its picture
            assert stats["pose_frames"] == 8 and abs(stats["error"]) < 6, (angle.name, stats)
    assert row["angles"]["yaw+20"]["measured_yaw"] > row["angles"]["yaw+10"]["measured_yaw"] > 5
    assert row["angles"]["pitch-15"]["measured_pitch"] < row["angles"]["pitch-10"]["measured_pitch"] < -5
    if data["meta"]["identity_measured"]:
        assert 0 < row["angles"]["front"]["identity_distance"] < SAME_PERSON_DISTANCE
        assert row["input_identity"]["identity_frames"] == 2 and INPUT == "input"
    else:
        assert data["meta"]["identity"].startswith(IDENTITY_MISSING)
    grid = cv2.imread(str(out / GRID_FILE))
    assert grid.shape == (HEADER + THUMBNAIL, LABEL_WIDTH + (len(ANGLES) + 1) * THUMBNAIL, 3)
    assert grid[HEADER:, LABEL_WIDTH:].std() > 20  # pictures, not a blank
