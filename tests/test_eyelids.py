"""Closing eyes from an open-eyed keyframe (codec.geometry.eyelids): shape, skin and lashes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from codec.geometry.eyelids import (
    EYE_MEASURE,
    LASH_GAP_SHARE,
    LASH_WIDTH,
    LID_PAIRS,
    PAINT_FROM,
    UPPER_LIDS,
    close_lids,
    eye_closing,
    keyframe_eye_colours,
    lid_texture,
    paint_closed_eyes,
)
from codec.geometry.flow import EYE_RINGS

from .synthetic import face_mesh

SIZE = 256
SKIN = (200, 150, 130)


def _face() -> np.ndarray:
    """A frontal face the right way up in crop units (y down: ``face_mesh`` has its chin on top)."""
    return face_mesh(0.1) * np.array([1.0, -1.0, 1.0])


def _closed(mesh: np.ndarray, share: float = 1.0, middle_only: bool = False) -> np.ndarray:
    """The mesh with each upper lid moved ``share`` of the way onto its lower partners."""
    closed = mesh.copy()
    for (lid, _, _), lower, measure in zip(UPPER_LIDS, LID_PAIRS, EYE_MEASURE, strict=True):
        pairs = [(measure[0], measure[1])] if middle_only else list(zip(lid, lower, strict=True))
        for upper, below in pairs:
            closed[upper, :2] += share * (closed[below, :2] - closed[upper, :2])
    return closed


def test_the_closing_is_one_minus_the_opening_against_the_keyframes() -> None:
    mesh = _face()
    assert eye_closing(mesh, mesh) == (0.0, 0.0)
    assert np.allclose(eye_closing(mesh, _closed(mesh, 0.5)), 0.5, atol=1e-9)
    assert np.allclose(eye_closing(mesh, _closed(mesh, 1.0)), 1.0, atol=1e-9)
    wider = mesh.copy()
    wider[[159, 386], 1] -= 0.01  # eyes opened wider than the keyframe's: no closing
    assert eye_closing(mesh, wider) == (0.0, 0.0)
    assert eye_closing(_closed(mesh), mesh) == (0.0, 0.0)  # a keyframe with closed eyes closes nothing


def test_a_lid_closed_in_its_middle_closes_along_its_whole_line() -> None:
    mesh = _face()
    middle = _closed(mesh, 1.0, middle_only=True)  # what the expression map may give: the ends lag
    closed = close_lids(mesh, middle)
    for (lid, _, _), lower in zip(UPPER_LIDS, LID_PAIRS, strict=True):
        assert np.abs(closed[list(lid), 1] - closed[list(lower), 1]).max() < 1e-9
        assert np.abs(middle[list(lid), 1] - middle[list(lower), 1]).max() > 0.005  # it was open at the sides
    untouched = np.ones(len(mesh), bool)
    untouched[[i for lid, _, _ in UPPER_LIDS for i in lid]] = False
    assert np.array_equal(closed[untouched], middle[untouched])
    squint = _closed(mesh, 0.2, middle_only=True)  # a squint keeps the map's shape
    assert np.array_equal(close_lids(mesh, squint), squint)


def test_a_closing_lid_takes_its_texture_from_the_skin_above_the_lashes() -> None:
    mesh = _face()
    assert np.array_equal(lid_texture(mesh, mesh), mesh)  # open eyes: untouched
    texture = lid_texture(mesh, _closed(mesh))
    for lid, above, skin in UPPER_LIDS:
        assert np.allclose(texture[list(lid), :2], mesh[list(skin), :2])  # the lid shows the skin line
        heights = texture[list(above), 1] - mesh[list(skin), 1]
        assert np.all(heights < 0)  # ... and the line between shows the skin above it (y down)
    moved = np.zeros(len(mesh), bool)
    moved[[i for lid, above, _ in UPPER_LIDS for i in (*lid, *above)]] = True
    assert np.array_equal(texture[~moved], mesh[~moved])


def _eye_mask(mesh: np.ndarray) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    for ring, _ in EYE_RINGS:
        points = (mesh[list(ring), :2] + 1) * (SIZE / 2) - 0.5
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _keyframe(mesh: np.ndarray, brow: bool = False) -> np.ndarray:
    """Skin with dark open eyes and, with ``brow``, a dark brow just above each eye's skin line."""
    keyframe = np.full((SIZE, SIZE, 3), SKIN, np.uint8)
    keyframe[_eye_mask(mesh)] = (30, 25, 20)
    if brow:
        for _, _, skin in UPPER_LIDS:
            points = (mesh[list(skin), :2] + 1) * (SIZE / 2) - 0.5 - [0.0, 3.0]
            cv2.polylines(keyframe, [np.round(points).astype(np.int32)], False, (40, 30, 25), 3)
    return keyframe


def _frame(keyframe: np.ndarray, mesh: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """What the warp paints of ``keyframe``'s open eyes closed to ``closed``: skin, and the
    lashes stretched into a dark band 5 px wide along the closed lid."""
    frame = keyframe.copy()
    eyes = _eye_mask(mesh)
    frame[eyes] = keyframe[~eyes & (keyframe.astype(int).mean(axis=2) > 60)][0]
    frame[_lash_band(closed, 5)] = (30, 25, 20)
    return frame


def _lash_band(mesh: np.ndarray, thickness: int) -> np.ndarray:
    band = np.zeros((SIZE, SIZE), np.uint8)
    for lid, _, _ in UPPER_LIDS:
        points = (mesh[list(lid), :2] + 1) * (SIZE / 2) - 0.5
        cv2.polylines(band, [np.round(points).astype(np.int32)], False, 1, thickness)
    return band.astype(bool)


def test_a_closed_eye_is_painted_as_skin_with_a_thin_lash_line() -> None:
    mesh = _face()
    keyframe = _keyframe(mesh)
    eyes = _eye_mask(mesh)
    assert paint_closed_eyes(keyframe, keyframe, mesh, mesh) is keyframe  # open: nothing painted
    half = _closed(mesh, PAINT_FROM - 0.05)
    assert paint_closed_eyes(keyframe, keyframe, mesh, half) is keyframe  # half shut: the model's picture

    closed = _closed(mesh)
    with np.errstate(all="raise"):
        painted = paint_closed_eyes(_frame(keyframe, mesh, closed), keyframe, mesh, closed)
    lid_skin = eyes & ~_lash_band(closed, 3)
    assert lid_skin.sum() > 20
    assert np.abs(painted[lid_skin].astype(int) - SKIN).max(axis=1).mean() < 25  # skin where the eyes were
    brightness = painted.astype(int).mean(axis=2)
    assert brightness[eyes & _lash_band(closed, 3)].min() < 120  # a dark line where the lids meet
    near = cv2.dilate(eyes.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert np.array_equal(painted[~near], keyframe[~near])  # the rest of the face is untouched


SKIN_BRIGHTNESS = sum(SKIN) / 3


def test_the_lash_line_is_no_wider_than_a_share_of_the_keyframes_lid_gap() -> None:
    mesh = _face()
    closed = _closed(mesh)
    frame = np.full((SIZE, SIZE, 3), SKIN, np.uint8)
    darkness = {}
    for name, keyframe_mesh in (("wide", mesh), ("narrow", _closed(mesh, 0.6))):  # narrow: 40 % of the gap
        painted = paint_closed_eyes(frame, _keyframe(keyframe_mesh), keyframe_mesh, closed)
        darkness[name] = float(np.clip(SKIN_BRIGHTNESS - painted.astype(float).mean(axis=2), 0, None).sum())
    gap = np.mean(
        [(mesh[m[1], 1] - mesh[m[0], 1]) / np.linalg.norm(mesh[m[2], :2] - mesh[m[3], :2]) for m in EYE_MEASURE]
    )
    widths = {"wide": min(LASH_WIDTH, LASH_GAP_SHARE * gap), "narrow": min(LASH_WIDTH, LASH_GAP_SHARE * 0.4 * gap)}
    assert widths["narrow"] < 0.5 * widths["wide"]
    # the line's darkness (its width times its length and opacity) follows its width, within the anti-aliasing
    assert darkness["narrow"] / darkness["wide"] == pytest.approx(widths["narrow"] / widths["wide"], abs=0.15)


def test_a_closed_lid_is_skin_not_the_brow_above_it() -> None:
    mesh = _face()
    keyframe = _keyframe(mesh, brow=True)
    closed = _closed(mesh)
    painted = paint_closed_eyes(_frame(keyframe, mesh, closed), keyframe, mesh, closed)
    brows = (keyframe.astype(int).mean(axis=2) < 60) & ~_eye_mask(mesh)
    lid = _eye_mask(mesh) & ~_lash_band(closed, 3)
    assert brows.sum() > 50 and lid.sum() > 20
    assert np.abs(painted[lid].astype(int) - SKIN).max(axis=1).mean() < 25  # the brow's colour kept out
    assert painted[brows].astype(int).mean(axis=1).max() < 60  # the brow itself stays


def test_what_is_not_skin_on_the_lid_goes_even_where_the_fill_fades_in() -> None:
    mesh = _face()
    keyframe = _keyframe(mesh)
    closed = _closed(mesh)
    frame = _frame(keyframe, mesh, closed)
    dragged = np.zeros((SIZE, SIZE), np.uint8)  # e.g. a glasses frame the warp dragged over the lid
    for _, above, _ in UPPER_LIDS:
        points = (mesh[list(above)[2:-2], :2] + 1) * (SIZE / 2) - 0.5 + [0.0, 1.0]  # at the fill's faded top
        cv2.polylines(dragged, [np.round(points).astype(np.int32)], False, 1, 1)
    frame[dragged.astype(bool)] = (20, 15, 10)
    painted = paint_closed_eyes(frame, keyframe, mesh, closed)
    assert np.abs(painted[dragged.astype(bool)].astype(int) - SKIN).max(axis=1).mean() < 30


def test_the_keyframes_eye_colours_taken_once_paint_the_same_picture() -> None:
    mesh = _face()
    keyframe = _keyframe(mesh)
    closed = _closed(mesh)
    colours = keyframe_eye_colours(keyframe, mesh)
    assert all(eye is not None for eye in colours)
    frame = _frame(keyframe, mesh, closed)
    assert np.array_equal(paint_closed_eyes(frame, keyframe, mesh, closed, colours),
                          paint_closed_eyes(frame, keyframe, mesh, closed))  # fmt: skip


def test_a_tilted_closed_eye_is_painted_with_finite_pixels() -> None:
    mesh = _face()
    turn = np.radians(35.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0.0], [np.sin(turn), np.cos(turn), 0.0], [0.0, 0.0, 1.0]])
    tilted = mesh @ rotation.T
    keyframe = _keyframe(tilted)
    with np.errstate(all="raise"):
        painted = paint_closed_eyes(_frame(keyframe, tilted, _closed(tilted)), keyframe, tilted, _closed(tilted))
    eyes = _eye_mask(tilted) & ~_lash_band(_closed(tilted), 3)
    assert np.abs(painted[eyes].astype(int) - SKIN).max(axis=1).mean() < 25
