from __future__ import annotations

import numpy as np
import pytest

from codec.motion.params import HeadPose, MotionParams
from codec.render.classical import ClassicalWarp, rbf_spread_matrix

from .synthetic import person, pose_face


def test_spread_is_local_stable_and_fades() -> None:
    control = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.3], [0.3001, 0.0]])  # two nearly coincide
    targets = np.array([[0.0, 0.0], [0.3, 0.0], [0.15, 0.15], [3.0, 3.0]])
    m = rbf_spread_matrix(control, targets, sigma=0.05)
    values = np.array([1.0, -2.0, 0.5, 2.0])
    out = m @ values
    assert out[0] == pytest.approx(1.0, abs=1e-3)  # at a lone control point: its value
    assert out[1] == pytest.approx(0.0, abs=1e-2)  # between the two coinciding ones: their mean, no blow-up
    assert np.abs(out).max() <= np.abs(values).max() + 1e-9  # never beyond the values
    assert abs(out[3]) < 1e-9  # far away: no motion


def _textured(size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:size, 0:size]
    base = np.stack([np.sin(xs / 7.0), np.cos(ys / 9.0), np.sin((xs + ys) / 11.0)], -1)
    return ((base * 0.5 + 0.5) * 200 + rng.integers(0, 40, (size, size, 3))).astype(np.uint8)


@pytest.fixture(scope="module")
def setup_and_face():  # type: ignore[no-untyped-def]
    warp = ClassicalWarp()
    face = person(1)
    keyframe_landmarks = pose_face(face, 5.0, -4.0, 2.0, translation=(0.0, 0.05, 0.0))
    setup = warp.setup(_textured(), keyframe_landmarks)
    return warp, setup


def test_keyframe_pose_reproduces_the_keyframe(setup_and_face) -> None:  # type: ignore[no-untyped-def]
    warp, setup = setup_and_face
    still = MotionParams(setup.canonical.head_pose, np.zeros((20, 3), np.float32))
    out = warp.render(setup, still)
    assert out.shape == setup.image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - setup.image).mean() < 1.0


def test_a_translation_moves_the_picture(setup_and_face) -> None:  # type: ignore[no-untyped-def]
    warp, setup = setup_and_face
    pose = setup.canonical.head_pose
    shift = 8 * 2 / 256  # 8 pixels to the right
    moved = HeadPose(pose.yaw, pose.pitch, pose.roll, pose.translation + [shift, 0, 0], pose.scale)
    out = warp.render(setup, MotionParams(moved, np.zeros((20, 3), np.float32)))
    centre = slice(100, 160)
    error_shifted = np.abs(out[centre, 108:168].astype(int) - setup.image[centre, 100:160]).mean()
    error_same = np.abs(out[centre, 100:160].astype(int) - setup.image[centre, 100:160]).mean()
    assert error_shifted < 3 and error_same > 4 * error_shifted


def test_turns_render_without_holes(setup_and_face) -> None:  # type: ignore[no-untyped-def]
    warp, setup = setup_and_face
    pose = setup.canonical.head_pose
    for yaw in (-30.0, 30.0):
        for pitch in (-30.0, 30.0):
            turned = HeadPose(yaw, pitch, pose.roll, pose.translation, pose.scale)
            out = warp.render(setup, MotionParams(turned, np.zeros((20, 3), np.float32)))
            assert (out.reshape(-1, 3).max(axis=1) > 0).all()  # the texture has no black pixel: no hole
