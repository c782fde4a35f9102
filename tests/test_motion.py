from __future__ import annotations

import numpy as np
import pytest

from codec.motion.extract import MotionExtractor
from codec.motion.params import HeadPose, MotionParams, keypoints_from_motion
from codec.motion.pose_fit import fit_similarity
from codec.motion.rotation import rotation_matrix
from codec.motion.schemes import KEYPOINT_NAMES, get_scheme

from .synthetic import person, pose_face

PIXEL = 2 / 256  # one pixel of a 256x256 crop, in crop units


def test_default_scheme() -> None:
    scheme = get_scheme()
    assert scheme.num_keypoints == 20 == len(KEYPOINT_NAMES)
    assert scheme.template.shape == (468, 3)
    assert len(scheme.stable_ids) == 33
    assert {13, 14, 61, 291, 152}.issubset(set(scheme.keypoint_ids.tolist()))
    with pytest.raises(ValueError, match="unknown landmark scheme 'dlib'"):
        get_scheme("dlib")


def test_similarity_fit_exact_and_robust() -> None:
    rng = np.random.default_rng(1)
    source = rng.normal(size=(40, 3))
    r = rotation_matrix(25, -10, 5)
    target = 1.7 * source @ r.T + np.array([0.3, -0.2, 0.1])
    fit = fit_similarity(source, target)
    assert fit.scale == pytest.approx(1.7)
    np.testing.assert_allclose(fit.rotation, r, atol=1e-9)
    target[:5] += 3.0  # five gross outliers
    robust = fit_similarity(source, target, iterations=5)
    np.testing.assert_allclose(robust.rotation, r, atol=2e-2)
    with pytest.raises(ValueError, match="need two"):
        fit_similarity(source[:2], target[:2])


@pytest.mark.parametrize("seed", range(3))
def test_head_pose_recovered_within_two_degrees(seed: int) -> None:
    """Synthetic rotations of a landmark set: absolute yaw/pitch/roll within 2 degrees, with
    landmark noise of 0.5 px, a personal face shape and an open mouth."""
    rng = np.random.default_rng(seed)
    face = person(seed)
    extractor = MotionExtractor()
    key_angles = rng.uniform(-10, 10, 3)
    keyframe = pose_face(face, *key_angles, translation=(0.02, -0.05, 0), noise=0.5 * PIXEL, seed=seed)
    canonical = extractor.canonicalize(keyframe)
    np.testing.assert_allclose(
        [canonical.head_pose.yaw, canonical.head_pose.pitch, canonical.head_pose.roll], key_angles, atol=2.0
    )
    worst = 0.0
    for i, (yaw, pitch, roll) in enumerate(rng.uniform([-40, -30, -30], [40, 30, 30], size=(30, 3))):
        frame = pose_face(
            face,
            yaw,
            pitch,
            roll,
            translation=(0.1, 0.05, 0.0),
            scale=1.1,
            noise=0.5 * PIXEL,
            mouth_open=0.05 * (i % 2),
            seed=100 + i,
        )
        pose = extractor.extract(frame, canonical).head_pose
        worst = max(worst, *np.abs(np.array([pose.yaw, pose.pitch, pose.roll]) - (yaw, pitch, roll)))
        assert pose.scale == pytest.approx(1.1, abs=0.02)
    print(f"worst angle error {worst:.2f} deg")
    assert worst < 2.0


def test_keyframe_has_zero_deltas_and_keypoints_reconstruct_exactly() -> None:
    face = person(3)
    extractor = MotionExtractor()
    keyframe = pose_face(face, 5, -3, 2)
    canonical = extractor.canonicalize(keyframe)
    motion = extractor.extract(keyframe, canonical)
    np.testing.assert_allclose(motion.expression_delta, 0, atol=1e-5)
    assert motion.head_pose.scale == pytest.approx(1.0, abs=1e-6)
    frame = pose_face(face, -20, 10, 4, translation=(0.05, 0, 0), mouth_open=0.08, noise=PIXEL, seed=5)
    motion = extractor.extract(frame, canonical)
    keypoints = keypoints_from_motion(canonical.keypoints, motion)
    np.testing.assert_allclose(keypoints, frame[extractor.scheme.keypoint_ids], atol=1e-5)
    # the open mouth shows up as expression, mostly on the lower lip and chin, pointing down
    names = dict(zip(KEYPOINT_NAMES, motion.expression_delta, strict=True))
    assert names["lower_lip"][1] > 0.05 and names["chin"][1] > 0.05
    assert abs(names["right_eye_outer"][1]) < 0.01


def test_bad_landmarks_are_refused() -> None:
    extractor = MotionExtractor()
    with pytest.raises(ValueError, match=r"mediapipe478 landmarks must be \(478, 3\), got \(68, 3\)"):
        extractor.canonicalize(np.zeros((68, 3)))
    bad = person()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        extractor.canonicalize(bad)


def test_head_pose_vector_round_trip() -> None:
    pose = HeadPose(1.0, 2.0, 3.0, np.array([0.1, 0.2, 0.3]), 1.05)
    again = HeadPose.from_vector(pose.as_vector())
    np.testing.assert_allclose(again.as_vector(), pose.as_vector())
    motion = MotionParams(pose, np.zeros((20, 3), np.float32))
    np.testing.assert_allclose(keypoints_from_motion(np.zeros((20, 3)), motion), np.tile([0.1, 0.2, 0.3], (20, 1)))
