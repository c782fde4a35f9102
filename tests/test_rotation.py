from __future__ import annotations

import numpy as np
import pytest

from codec.motion.rotation import euler_angles, out_of_plane_angle, rotation_matrix

NOSE = np.array([0.0, 0.0, -1.0])  # the face looks towards -z (the camera)


def test_identity() -> None:
    np.testing.assert_allclose(rotation_matrix(0, 0, 0), np.eye(3), atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_and_orthonormal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for yaw, pitch, roll in rng.uniform([-85, -170, -170], [85, 170, 170], size=(200, 3)):
        r = rotation_matrix(yaw, pitch, roll)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(euler_angles(r), (yaw, pitch, roll), atol=1e-9)


def test_batched_matches_scalar() -> None:
    angles = np.array([[10.0, -20.0, 5.0], [-30.0, 15.0, -45.0]])
    batch = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    assert batch.shape == (2, 3, 3)
    for i in range(2):
        np.testing.assert_allclose(batch[i], rotation_matrix(*angles[i]))


def test_sign_conventions() -> None:
    assert (rotation_matrix(20, 0, 0) @ NOSE)[0] > 0.3  # +yaw: nose to the image right
    assert (rotation_matrix(0, 20, 0) @ NOSE)[1] < -0.3  # +pitch: nose up (y points down)
    right = rotation_matrix(0, 0, 20) @ np.array([1.0, 0.0, 0.0])
    assert right[1] > 0.3  # +roll: the right-pointing axis turns down = clockwise on screen


def test_gimbal_lock_still_reconstructs() -> None:
    r = rotation_matrix(90, 30, 0)
    yaw, pitch, roll = euler_angles(r)
    assert yaw == pytest.approx(90)
    np.testing.assert_allclose(rotation_matrix(yaw, pitch, roll), r, atol=1e-9)


def test_out_of_plane_angle_ignores_roll() -> None:
    """How far a rotation turns the line of sight: a roll alone turns it by nothing."""
    angles = [out_of_plane_angle(rotation_matrix(*a)) for a in ((20, 0, 0), (0, -15, 0), (0, 0, 30), (20, 0, 40))]
    np.testing.assert_allclose(angles, [20.0, 15.0, 0.0, 20.0], atol=1e-9)
    combined = np.rad2deg(np.arccos(np.cos(np.deg2rad(20)) * np.cos(np.deg2rad(15))))  # yaw then pitch
    assert out_of_plane_angle(rotation_matrix(20, 15, 0)) == pytest.approx(combined, abs=1e-9)
