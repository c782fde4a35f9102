"""Closing eyes from a keyframe whose eyes are open: the lid's shape, its skin and its lashes.

A keyframe with open eyes holds no closed lid.  Moved as the dense expression map moves the
mesh, a blink (a real one, or the ``eyes closed`` edit of :mod:`codec.edits`) goes wrong three
ways, each fixed here from the geometry alone:

- **shape** (:func:`close_lids`): the map moves the lid line's middle most and its ends
  little (a ridge fit of 20 keypoints), so a lid closed in the middle leaves slivers of eye at
  the sides (dark dots of iris under a skin lid).  A closing eye closes along its whole line:
  each upper lid point's gap to its lower partner shrinks as the middle's does;
- **skin** (:func:`lid_texture`): the keyframe shows only a thin band of lid between the
  lashes and the mesh line above them, and that band (the lashes) stretched over the eye is a
  dark smear; a closing lid takes its texture from the skin above instead;
- **lashes** (:func:`paint_lashes`): a closed eye is read (by people and by the tracker) from
  the dark line where the lids meet; the renderer draws it there in the keyframe's lash colour.

The eye's *closing* is ``1 - opening / keyframe opening`` in [0, 1], the opening being the gap
between the middle lid points over the corners' distance.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

__all__ = [
    "CLOSE_FROM",
    "CLOSE_FULL",
    "EYE_MEASURE",
    "LASH_OPACITY",
    "LASH_WIDTH",
    "LID_PAIRS",
    "LID_SKIN_HEIGHT",
    "PAINT_FROM",
    "PAINT_FULL",
    "UPPER_LIDS",
    "close_lids",
    "eye_closing",
    "lid_texture",
    "paint_closed_eyes",
]

#: each eye's upper lid line (the lashes; corners excluded, outer to inner), the two lines of
#: the mesh above it (the lid's skin), the lower lid line under it (partners, in order), and
#: its gap and corner points (MediaPipe ids; subject's right eye first)
UPPER_LIDS = (
    ((246, 161, 160, 159, 158, 157, 173), (247, 30, 29, 27, 28, 56, 190), (113, 225, 224, 223, 222, 221, 189)),
    ((466, 388, 387, 386, 385, 384, 398), (467, 260, 259, 257, 258, 286, 414), (342, 445, 444, 443, 442, 441, 413)),
)
#: each eye's lower lid line, point by point under the upper one's
LID_PAIRS = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
#: each eye's middle lid points and corners: (upper, lower, outer corner, inner corner)
EYE_MEASURE = ((159, 145, 33, 133), (386, 374, 263, 362))
#: a closed lid shows the keyframe's skin from the second mesh line above the lashes up this
#: many eye widths
LID_SKIN_HEIGHT = 0.1
#: closing from which the whole lid line follows its middle, and from which fully (in between
#: it blends in; a squint keeps the map's shape)
CLOSE_FROM = 0.3
CLOSE_FULL = 0.6
#: closing from which the renderer paints the lid closed (:func:`paint_closed_eyes`), and from
#: which fully: an eye half shut (a squint, a look down) keeps what the model painted
PAINT_FROM = 0.6
PAINT_FULL = 0.85
#: the painted lash line: its width (eye widths) and darkness at full closing
LASH_WIDTH = 0.08
LASH_OPACITY = 0.8
#: the lash colour: this percentile of the keyframe's pixels along its upper lid line (by brightness)
LASH_PERCENTILE = 25
#: the lid's fill looks this many eye widths around it for skin (``cv2.inpaint``'s radius)
LID_FILL_RADIUS = 0.1
_SHIFT = 4  # fractional bits of cv2's drawing


def _opening(points: np.ndarray, upper: int, lower: int, outer: int, inner: int) -> float:
    """Signed lid gap (how far the lower point lies below the upper, across the corner line)
    over the corners' distance; 0 when the corners coincide."""
    across = points[inner, :2] - points[outer, :2]
    width = float(np.linalg.norm(across))
    if width <= 0:
        return 0.0
    down = np.array([-across[1], across[0]]) / width
    if down[1] < 0:
        down = -down  # y grows downwards in crop units
    return float(np.dot(points[lower, :2] - points[upper, :2], down)) / width


def eye_closing(keyframe: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Each eye's closing in [0, 1] (subject's right eye first): 1 - its opening in ``frame``
    over its opening in ``keyframe`` (0 where the keyframe's eye is closed itself).

    Args:
        keyframe, frame: (N, 3) crop-unit meshes, N >= 478.
    """
    closings = []
    for measure in EYE_MEASURE:
        open_keyframe = _opening(keyframe, *measure)
        if open_keyframe <= 1e-6:
            closings.append(0.0)
            continue
        closings.append(float(np.clip(1.0 - _opening(frame, *measure) / open_keyframe, 0.0, 1.0)))
    return closings[0], closings[1]


def close_lids(canonical: np.ndarray, local: np.ndarray) -> np.ndarray:
    """The face's frontal mesh with each closing eye's whole upper lid following its middle.

    Args:
        canonical: (N, 3) the keyframe's frontal mesh (crop units, y down).
        local: (N, 3) the same moved by the frame's expression.

    Returns:
        (N, 3) float64, a copy of ``local``: where an eye closes by more than
        :data:`CLOSE_FROM`, each upper lid point is moved (blending in up to
        :data:`CLOSE_FULL`) to its lower partner plus the keyframe's gap between them scaled
        as the middle's gap is (through zero: lids that cross in the middle cross everywhere).
    """
    result = np.array(local, dtype=np.float64)
    for (lid, _, _), lower, measure in zip(UPPER_LIDS, LID_PAIRS, EYE_MEASURE, strict=True):
        upper_mid, lower_mid = measure[0], measure[1]
        rest = canonical[lower_mid, 1] - canonical[upper_mid, 1]
        if rest <= 1e-9:
            continue
        ratio = (local[lower_mid, 1] - local[upper_mid, 1]) / rest
        weight = float(np.clip((1.0 - ratio - CLOSE_FROM) / (CLOSE_FULL - CLOSE_FROM), 0.0, 1.0))
        if weight <= 0:
            continue
        lid_ids, lower_ids = list(lid), list(lower)
        target = local[lower_ids] + ratio * (canonical[lid_ids] - canonical[lower_ids])
        result[lid_ids, 1] += weight * (target[:, 1] - local[lid_ids, 1])
    return result


def lid_texture(source: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """The keyframe points whose texture each driving point shows: ``source`` with each closing
    eye's upper lid re-mapped so that skin, not the lashes, covers the eye.

    By the eye's closing ``c`` (:func:`eye_closing`), the lid line's texture moves ``c`` of the
    way to the second mesh line above it, and the line between takes its texture from
    :data:`LID_SKIN_HEIGHT` eye widths above that one: the closing lid shows the skin there,
    stretched about twice, and the band above it that skin folded back.  An open eye is
    untouched; only texture moves, the shapes are the mesh's.

    Args:
        source, driving: (V, 3) crop units, V >= 478 (the tracker's points first).

    Returns:
        (V, 3) float64, a copy of ``source``.
    """
    texture = np.array(source, dtype=np.float64)
    for (lid, above, skin), measure, closing in zip(UPPER_LIDS, EYE_MEASURE, eye_closing(source, driving),
                                                    strict=True):  # fmt: skip
        closing = float(np.clip((closing - CLOSE_FROM) / (1.0 - CLOSE_FROM), 0.0, 1.0))
        if closing <= 0:
            continue
        lid_ids, above_ids, skin_ids = list(lid), list(above), list(skin)
        skin_line = source[skin_ids, :2]
        across = source[measure[3], :2] - source[measure[2], :2]
        up = np.array([across[1], -across[0]])  # perpendicular to the corner line ...
        if np.dot(up, source[measure[0], :2] - source[measure[1], :2]) < 0:
            up = -up  # ... towards the upper lid
        higher = skin_line + LID_SKIN_HEIGHT * up
        texture[lid_ids, :2] += closing * (skin_line - source[lid_ids, :2])
        texture[above_ids, :2] += closing * (higher - source[above_ids, :2])
    return texture


def _lash_colour(image: np.ndarray, mesh: np.ndarray, lid: tuple[int, ...]) -> np.ndarray | None:
    size = image.shape[0]
    pixels = (mesh[list(lid), :2] + 1) * (size / 2) - 0.5
    samples = []
    for a, b in itertools.pairwise(pixels):
        for t in np.linspace(0.0, 1.0, 4, endpoint=False):
            x, y = np.round(a + t * (b - a)).astype(int)
            if 0 <= x < image.shape[1] and 0 <= y < image.shape[0]:
                samples.append(image[y, x].astype(np.float64))
    if not samples:
        return None
    colours = np.array(samples)
    brightness = colours.mean(axis=1)
    return np.asarray(colours[brightness <= np.percentile(brightness, LASH_PERCENTILE)].mean(axis=0))


def paint_closed_eyes(image: np.ndarray, keyframe_image: np.ndarray, keyframe_mesh: np.ndarray,
                      driving_mesh: np.ndarray) -> np.ndarray:  # fmt: skip
    """``image`` with each closing eye painted closed: its lid smooth skin, its lashes a line.

    The lid (from the mesh line above the lashes down to the lower lid, corner to corner) is
    filled from the skin around it (``cv2.inpaint``: whatever the warp and the network left
    there, a stretched lash band or a guess, goes), blending in as the eye's closing goes from
    :data:`PAINT_FROM` to :data:`PAINT_FULL`; then a line :data:`LASH_WIDTH` eye widths wide
    is drawn along the upper lid's edge in the keyframe's lash colour (its darker pixels along
    its upper lid line), opaque up to :data:`LASH_OPACITY` as the closing goes on to 1.

    Args:
        image: (S, S, 3) uint8, the frame's picture; keyframe_image: (S', S', 3) uint8.
        keyframe_mesh, driving_mesh: (478, 3) crop units, the keyframe's and the frame's meshes.

    Returns:
        (S, S, 3) uint8, ``image`` itself when no eye closes enough.
    """
    closings = eye_closing(keyframe_mesh, driving_mesh)
    if max(closings) <= PAINT_FROM:
        return image
    size = image.shape[0]
    points = (np.asarray(driving_mesh, dtype=np.float64)[:, :2] + 1) * (size / 2) - 0.5
    painted = image.copy()
    for (lid, above, _), lower, measure, closing in zip(UPPER_LIDS, LID_PAIRS, EYE_MEASURE, closings, strict=True):
        fill = float(np.clip((closing - PAINT_FROM) / (PAINT_FULL - PAINT_FROM), 0.0, 1.0))
        lash = _lash_colour(keyframe_image, keyframe_mesh, lid) if fill > 0 else None
        if lash is None:
            continue
        outer, inner = points[[measure[2]]], points[[measure[3]]]
        width = float(np.linalg.norm(outer - inner))
        outline = np.concatenate([outer, points[list(above)], inner, points[list(lower)][::-1]])
        line = np.concatenate([outer, points[list(lid)], inner])
        # everything happens in a window around the eye (a few hundred pixels, not the picture)
        pad = int(np.ceil((LID_FILL_RADIUS + LASH_WIDTH) * width)) + 3
        x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + pad + 1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        origin = np.array([x0, y0], np.float64)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((outline - origin) * (1 << _SHIFT)).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
        window = np.ascontiguousarray(painted[y0:y1, x0:x1])
        filled = cv2.inpaint(window, mask, max(1.0, LID_FILL_RADIUS * width), cv2.INPAINT_TELEA)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (3, 3), 0)[..., None] * fill
        blended = window.astype(np.float32) * (1 - alpha) + filled.astype(np.float32) * alpha
        strength = LASH_OPACITY * float(np.clip((closing - PAINT_FROM) / (1.0 - PAINT_FROM), 0.0, 1.0))
        layer = np.zeros(mask.shape, np.float32)
        cv2.polylines(layer, [np.round((line - origin) * (1 << _SHIFT)).astype(np.int32)], False, 1.0,
                      max(1, round(LASH_WIDTH * width)), lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip
        alpha = (strength * layer)[..., None]
        blended = blended * (1 - alpha) + lash.astype(np.float32) * alpha
        painted[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return painted
