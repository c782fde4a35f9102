"""An open mouth cut from one crop and painted into other pictures (codec.geometry.mouth_reference)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from codec.geometry.flow import MOUTH_RING
from codec.geometry.mouth_reference import MOUTH_PAD, cut_mouth, paint_mouth

SIZE = 256


def _landmarks(
    centre: tuple[float, float] = (128.0, 160.0), half_width: float = 30.0, half_gap: float = 12.0
) -> np.ndarray:
    """(478, 2) pixel landmarks whose inner lip line is an ellipse (the rest at the centre)."""
    points = np.tile(np.asarray(centre, np.float64), (478, 1))
    angles = np.linspace(np.pi, -np.pi, len(MOUTH_RING), endpoint=False)
    ring = np.stack([centre[0] + half_width * np.cos(angles), centre[1] + half_gap * np.sin(angles)], axis=1)
    points[list(MOUTH_RING)] = ring
    return points


def _texture(seed: int) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    smooth = np.stack([np.sin(xs / 5.0 + seed), np.cos(ys / 4.0 - seed), np.sin((xs + ys) / 7.0)], -1) * 100 + 128
    return smooth.astype(np.uint8)


def _inside(landmarks: np.ndarray, shrink: int) -> np.ndarray:
    """(S, S) bool: the inner lip line's polygon, eroded by ``shrink`` pixels (grown when negative)."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(MOUTH_RING)]).astype(np.int32)], 1)
    kernel = np.ones((2 * abs(shrink) + 1, 2 * abs(shrink) + 1), np.uint8)
    return (cv2.erode(mask, kernel) if shrink >= 0 else cv2.dilate(mask, kernel)) > 0


def test_a_mouth_painted_where_it_was_cut_is_the_crops_own_and_nothing_else_changes() -> None:
    crop, picture, landmarks = _texture(0), _texture(3), _landmarks()
    reference = cut_mouth(crop, landmarks)
    assert reference.image.shape == (24 + 2 * MOUTH_PAD + 1, 60 + 2 * MOUTH_PAD + 1, 3)
    painted = paint_mouth(picture, reference, landmarks)
    inside = _inside(landmarks, 3)
    assert inside.sum() > 600  # of the ellipse's ~1130 pixels
    assert np.abs(painted[inside].astype(int) - crop[inside]).max() <= 2  # bilinear in fixed point
    outside = ~_inside(landmarks, -4)  # beyond the lip line and its feather
    assert np.array_equal(painted[outside], picture[outside])
    assert painted.dtype == np.uint8 and painted is not picture


def test_the_inside_follows_the_mouth_where_it_moves_and_stretches() -> None:
    crop, picture = _texture(0), _texture(3)
    reference = cut_mouth(crop, _landmarks())
    moved = _landmarks(centre=(135.0, 156.0))  # 7 px right, 4 px up
    painted = paint_mouth(picture, reference, moved)
    inside = _inside(moved, 3)
    ys, xs = np.nonzero(inside)
    assert np.abs(painted[ys, xs].astype(int) - crop[ys + 4, xs - 7]).max() <= 2
    wider = _landmarks(half_gap=18.0)  # opened wider: the inside is stretched 1.5x in height
    stretched = paint_mouth(picture, reference, wider)
    ys, xs = np.nonzero(_inside(wider, 4))
    source_ys = 160 + (ys - 160) / 1.5
    expected = crop[np.round(source_ys).astype(int), xs].astype(int)
    assert np.median(np.abs(stretched[ys, xs].astype(int) - expected)) <= 6


def test_closed_lips_leave_the_picture_as_it_is() -> None:
    picture = _texture(3)
    reference = cut_mouth(_texture(0), _landmarks())
    assert np.array_equal(paint_mouth(picture, reference, _landmarks(half_gap=0.0)), picture)


def test_bad_landmarks_are_refused_with_the_reason() -> None:
    crop, landmarks = _texture(0), _landmarks()
    broken = landmarks.copy()
    broken[MOUTH_RING[3]] = np.nan
    with pytest.raises(ValueError, match="^the inner lip line is not finite$"):
        cut_mouth(crop, broken)
    with pytest.raises(ValueError, match=r"^landmarks must be \(478, >=2\), got \(10, 2\)$"):
        paint_mouth(crop, cut_mouth(crop, landmarks), landmarks[:10])
    with pytest.raises(ValueError, match="^the mouth lies off the crop$"):
        cut_mouth(crop, landmarks + 400)
