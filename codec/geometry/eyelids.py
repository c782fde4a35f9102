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
    "LASH_GAP_SHARE",
    "LASH_OPACITY",
    "LASH_WIDTH",
    "LID_FILL_CORNER",
    "LID_FILL_FEATHER",
    "LID_FILL_FEATHER_BELOW",
    "LID_PAIRS",
    "LID_SKIN_HEIGHT",
    "PAINT_FROM",
    "PAINT_FULL",
    "SKIN_PERCENTILES",
    "SKIN_SAMPLE_MARGIN",
    "SKIN_TOLERANCE",
    "SKIN_TOLERANCE_BELOW",
    "UPPER_LIDS",
    "EyeColours",
    "close_lids",
    "eye_closing",
    "keyframe_eye_colours",
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
#: the fill's colours are sampled this many eye widths above and below it
SKIN_SAMPLE_MARGIN = 0.04
#: a sample above the lid whose brightness strays from the lid's skin colour by more than this (of
#: 255) gives way to that colour, all the way at twice it: a brow, a glasses frame or hair is not
#: the lid's skin; below the lid, by more than the second (the skin under an eye may be in shadow,
#: the lower lashes are not skin)
SKIN_TOLERANCE = 20.0
SKIN_TOLERANCE_BELOW = 40.0
#: the lid's skin colour: the keyframe's pixels between its upper lid and skin lines whose
#: brightness lies between these percentiles (the lashes are darker, highlights brighter)
SKIN_PERCENTILES = (50.0, 80.0)
#: the fill fades in over this share of its height from its top and from its bottom, and over
#: this share of the eye's width at each corner: no edge is left for an eye to be read by
LID_FILL_FEATHER = 0.3
LID_FILL_FEATHER_BELOW = 0.2
LID_FILL_CORNER = 0.15
#: the painted lash line: its width (eye widths) and darkness at full closing.  No wider than this
#: share of the keyframe's lid gap either: on a narrow eye a line as wide as a wide eye's is read
#: by the tracker as a sliver of open eye (it puts the lids at the line's edges)
LASH_WIDTH = 0.08
LASH_GAP_SHARE = 0.25
LASH_OPACITY = 0.8
#: the lash colour: this percentile of the keyframe's pixels along its upper lid line (by brightness)
LASH_PERCENTILE = 25
_EDGE_SAMPLES = 49  # the fill's edge colours are sampled at this many points along the eye ...
_EDGE_SMOOTHING = 0.05  # ... and smoothed over this share of its width (a Gaussian's sigma) ...
_EDGE_KERNEL_RADIUS = 8  # ... cut this many samples each side (over 3 sigmas)
_SUPERSAMPLE = 4  # the lash line is drawn this many times finer, then averaged down
_SHIFT = 4  # fractional bits of cv2's drawing


def _eye_frame(outer: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """An eye's frame from its corners (2D points, y down): the unit vector along the corner
    line (outer to inner), the unit vector across it pointing down the face, and the corners'
    distance (vectors of zeros when the corners coincide)."""
    along = np.asarray(inner[:2] - outer[:2], dtype=np.float64)
    width = float(np.linalg.norm(along))
    if width <= 0:
        return np.zeros(2), np.zeros(2), 0.0
    along = along / width
    down = np.array([-along[1], along[0]])
    return along, (-down if down[1] < 0 else down), width


def _opening(points: np.ndarray, upper: int, lower: int, outer: int, inner: int) -> float:
    """Signed lid gap (how far the lower point lies below the upper, across the corner line)
    over the corners' distance; 0 when the corners coincide."""
    _, down, width = _eye_frame(points[outer], points[inner])
    if width <= 0:
        return 0.0
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


def _lid_skin_colour(
    image: np.ndarray, mesh: np.ndarray, lid: tuple[int, ...], skin: tuple[int, ...]
) -> np.ndarray | None:
    """(3,) float64: the keyframe's lid skin, the band between its upper lid line and the skin
    line above, at brightness :data:`SKIN_PERCENTILES` (the lashes darker, highlights brighter)."""
    size = image.shape[0]
    band = np.concatenate([mesh[list(lid), :2], mesh[list(skin), :2][::-1]])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(((band + 1) * (size / 2) - 0.5) * (1 << _SHIFT)).astype(np.int32)], 1,
                 cv2.LINE_8, _SHIFT)  # fmt: skip
    pixels = image[mask.astype(bool)].astype(np.float64)
    if len(pixels) < 4:
        return None
    brightness = pixels.mean(axis=1)
    low, high = np.percentile(brightness, SKIN_PERCENTILES)
    return np.asarray(pixels[(brightness >= low) & (brightness <= high)].mean(axis=0))


#: per eye (subject's right first): its lash colour and its lid skin colour, (3,) float64 each, or
#: None where the keyframe's picture does not show that eye (:func:`keyframe_eye_colours`)
EyeColours = tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray] | None]


def keyframe_eye_colours(keyframe_image: np.ndarray, keyframe_mesh: np.ndarray) -> EyeColours:
    """What :func:`paint_closed_eyes` takes from the keyframe's picture, once per keyframe: each
    eye's lash colour (its darker pixels along its upper lid line) and lid skin colour.

    Args:
        keyframe_image: (S, S, 3) uint8; keyframe_mesh: (478, 3) crop units.
    """
    colours = []
    for lid, _, skin in UPPER_LIDS:
        lash = _lash_colour(keyframe_image, keyframe_mesh, lid)
        lid_skin = _lid_skin_colour(keyframe_image, keyframe_mesh, lid, skin)
        colours.append(None if lash is None or lid_skin is None else (lash, lid_skin))
    return colours[0], colours[1]


def _towards_skin(colours: np.ndarray, skin: np.ndarray, tolerance: float) -> np.ndarray:
    """(..., 3) samples, each pulled to ``skin`` as its brightness strays from the skin's by more
    than ``tolerance`` (all the way at twice that: a brow, a glasses frame, hair, lashes)."""
    stray = np.abs(colours.mean(axis=-1) - skin.mean())
    keep = np.clip(2.0 - stray / tolerance, 0.0, 1.0)[..., None]
    return colours * keep + skin * (1 - keep)


def _taper(along: np.ndarray) -> np.ndarray:
    """How far the fill's edges stand from the corner line at ``along`` (0 and 1: the corners):
    sqrt(sin(pi along)), 0 at the corners, 1 in the middle (clipped: rounding cannot make it NaN)."""
    return np.asarray(np.sqrt(np.clip(np.sin(np.pi * np.clip(along, 0.0, 1.0)), 0.0, 1.0)))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def paint_closed_eyes(image: np.ndarray, keyframe_image: np.ndarray, keyframe_mesh: np.ndarray,
                      driving_mesh: np.ndarray, colours: EyeColours | None = None) -> np.ndarray:  # fmt: skip
    """``image`` with each closing eye painted closed: its lid smooth skin, its lashes a line.

    The lid runs from the mesh line above the lashes down to the lower lid, drawn in to the
    corners.  In the eye's frame (x along its corner line, y across) each column of it is filled
    with a vertical blend between the skin just above and just below (:data:`SKIN_SAMPLE_MARGIN`
    outside), smoothed along the eye; the samples above are held to the keyframe's lid skin
    colour where they stray from it (a brow, a glasses frame), those below too but more loosely.
    Whatever the warp and the network left there (a stretched lash band, the open eye's slit)
    goes, and no smear of it is dragged in (``cv2.inpaint`` drew streaks of the dark lashes at
    the lid's edge).  The fill fades in over :data:`LID_FILL_FEATHER` of its height from the
    top, :data:`LID_FILL_FEATHER_BELOW` from the bottom and :data:`LID_FILL_CORNER` of the
    width at each corner; but a pixel whose brightness strays from the lid skin's by more than
    :data:`SKIN_TOLERANCE` (fully at twice it), from the skin line above the lashes down, is
    replaced whatever the fades say (a glasses frame or lashes that the warp dragged over the
    lid).  The fill blends in as the eye's closing goes from :data:`PAINT_FROM` to
    :data:`PAINT_FULL`.  Then the lashes: an anti-aliased line along the upper lid's edge,
    :data:`LASH_WIDTH` eye widths wide or :data:`LASH_GAP_SHARE` of the keyframe's lid gap if
    less (drawn finer and averaged down: a line under 2 px stays thin and soft), in the
    keyframe's lash colour (its darker pixels along its upper lid line), opaque up to
    :data:`LASH_OPACITY` as the closing goes on to 1.

    Args:
        image: (S, S, 3) uint8, the frame's picture; keyframe_image: (S', S', 3) uint8.
        keyframe_mesh, driving_mesh: (478, 3) crop units, the keyframe's and the frame's meshes.
        colours: :func:`keyframe_eye_colours` of the keyframe, kept by a caller that paints
            many frames of it; None: taken from ``keyframe_image`` here.

    Returns:
        (S, S, 3) uint8, ``image`` itself when no eye closes enough.
    """
    closings = eye_closing(keyframe_mesh, driving_mesh)
    if max(closings) <= PAINT_FROM:
        return image
    size = image.shape[0]
    points = (np.asarray(driving_mesh, dtype=np.float64)[:, :2] + 1) * (size / 2) - 0.5
    painted = image.astype(np.float32)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)  # the samples: skin, not its grain
    if colours is None:
        colours = keyframe_eye_colours(keyframe_image, keyframe_mesh)
    for (lid, above, skin), lower, measure, closing, eye in zip(UPPER_LIDS, LID_PAIRS, EYE_MEASURE, closings, colours,
                                                                 strict=True):  # fmt: skip
        fill = float(np.clip((closing - PAINT_FROM) / (PAINT_FULL - PAINT_FROM), 0.0, 1.0))
        outer, inner = points[measure[2]], points[measure[3]]
        along, across, width = _eye_frame(outer, inner)
        if fill <= 0 or eye is None or not width > 2:
            continue
        lash, lid_skin = eye
        top, bottom = points[list(above)], points[list(lower)]
        # everything happens in a window around the eye (a few hundred pixels, not the picture)
        corners = np.concatenate([points[list(skin)], bottom, points[[measure[2], measure[3]]]])
        pad = int(np.ceil(SKIN_SAMPLE_MARGIN * width)) + 3
        x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + pad + 1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        u = np.clip((xs - outer[0]) * along[0] + (ys - outer[1]) * along[1], 0.0, width)
        v = (xs - outer[0]) * across[0] + (ys - outer[1]) * across[1]
        taper = _taper(u / width)  # both edges drawn in to the corners
        v_top = _along_line(top, outer, along, across, u) * taper
        v_bottom = _along_line(bottom, outer, along, across, u) * taper
        share = (v - v_top) / np.maximum(v_bottom - v_top, 1e-6)  # 0 at the top, 1 at the bottom
        inside = (share >= 0) & (share <= 1) & (taper > 0)
        colour_top, colour_bottom = _edge_colours(blurred, outer, along, across, width, top, bottom, lid_skin, u)
        down = np.clip(share, 0.0, 1.0)[..., None]
        colour = colour_top * (1 - down) + colour_bottom * down
        corner = _smoothstep(np.minimum(u, width - u) / (LID_FILL_CORNER * width))
        fade = _smoothstep(share / LID_FILL_FEATHER) * _smoothstep((1 - share) / LID_FILL_FEATHER_BELOW) * corner
        # whatever is not skin, up to the skin line, goes regardless of the fades (a glasses frame
        # or the lashes that the warp dragged over the lid); skin-coloured pixels keep the soft edges
        underneath = blurred[y0:y1, x0:x1].mean(axis=2)
        stray = np.clip(np.abs(underneath - lid_skin.mean()) / SKIN_TOLERANCE - 1.0, 0.0, 1.0)
        stray = cv2.dilate(stray.astype(np.float32), np.ones((3, 3), np.uint8))  # a thin line stays covered ...
        v_skin = _along_line(points[list(skin)], outer, along, across, u) * taper
        reach = (v >= v_skin) & (share <= 1) & (taper > 0)
        cover = np.maximum(inside * fade, reach * stray * corner)
        alpha = cv2.GaussianBlur(cover.astype(np.float32), (3, 3), 0)[..., None] * fill  # ... once blurred
        window = painted[y0:y1, x0:x1] * (1 - alpha) + colour * alpha
        strength = LASH_OPACITY * float(np.clip((closing - PAINT_FROM) / (1.0 - PAINT_FROM), 0.0, 1.0))
        line = np.concatenate([points[[measure[2]]], points[list(lid)], points[[measure[3]]]]) - [x0, y0]
        lash_width = min(LASH_WIDTH, LASH_GAP_SHARE * max(_opening(keyframe_mesh, *measure), 0.0)) * width
        alpha = (strength * _line_coverage(line, (y1 - y0, x1 - x0), lash_width))[..., None]
        painted[y0:y1, x0:x1] = window * (1 - alpha) + lash.astype(np.float32) * alpha
    return np.clip(np.round(painted), 0, 255).astype(np.uint8)


def _along_line(line: np.ndarray, origin: np.ndarray, along: np.ndarray, across: np.ndarray,
                u: np.ndarray) -> np.ndarray:  # fmt: skip
    """The across-coordinate of pixel points ``line`` (n, 2) at each along-coordinate ``u``
    (eye frame at ``origin``; flat beyond its ends)."""
    line_u, line_v = (line - origin) @ along, (line - origin) @ across
    order = np.argsort(line_u)
    return np.interp(u, line_u[order], line_v[order])


def _edge_colours(image: np.ndarray, origin: np.ndarray, along: np.ndarray, across: np.ndarray, width: float,
                  top: np.ndarray, bottom: np.ndarray, skin: np.ndarray,
                  u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The fill's colours at its top and bottom edges for each along-coordinate in ``u`` (any
    shape; returns two (*u.shape, 3) float32): ``image`` (float32) sampled
    :data:`SKIN_SAMPLE_MARGIN` eye widths outside the edges ``top`` and ``bottom`` (pixel points,
    (n, 2)), held to ``skin`` (:func:`_towards_skin`) and smoothed along the eye over
    :data:`_EDGE_SMOOTHING` of its width, so that a brow's edge leaves no streaks."""
    grid = np.linspace(0.0, width, _EDGE_SAMPLES)
    taper = _taper(grid / width)
    margin = SKIN_SAMPLE_MARGIN * width
    reach = _EDGE_KERNEL_RADIUS
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / (_EDGE_SMOOTHING * (_EDGE_SAMPLES - 1))) ** 2)
    kernel /= kernel.sum()
    colours = []
    for edge, outward in ((top, -margin), (bottom, margin)):
        v = _along_line(edge, origin, along, across, grid) * taper + outward
        x = (origin[0] + grid * along[0] + v * across[0]).astype(np.float32)[None]
        y = (origin[1] + grid * along[1] + v * across[1]).astype(np.float32)[None]
        samples = cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0].astype(np.float64)
        held = _towards_skin(samples, skin, SKIN_TOLERANCE if outward < 0 else SKIN_TOLERANCE_BELOW)
        padded = np.pad(held, ((reach, reach), (0, 0)), mode="edge")
        smooth = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(3)], axis=1)
        colours.append(np.stack([np.interp(u, grid, smooth[:, c]) for c in range(3)], axis=-1).astype(np.float32))
    return colours[0], colours[1]


def _line_coverage(line: np.ndarray, shape: tuple[int, int], width: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much of each pixel an anti-aliased polyline through pixel
    points ``line`` (n, 2) covers, ``width`` px wide (drawn :data:`_SUPERSAMPLE` times finer:
    a line under 2 px stays thin and soft)."""
    fine = np.zeros((shape[0] * _SUPERSAMPLE, shape[1] * _SUPERSAMPLE), np.float32)
    scaled = ((line + 0.5) * _SUPERSAMPLE - 0.5) * (1 << _SHIFT)
    cv2.polylines(fine, [np.round(scaled).astype(np.int32)], False, 1.0, max(1, round(width * _SUPERSAMPLE)),
                  lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip
    return np.asarray(cv2.resize(fine, (shape[1], shape[0]), interpolation=cv2.INTER_AREA), np.float32)
