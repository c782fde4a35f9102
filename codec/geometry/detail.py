"""The mesh's warp at full resolution where the face has fine detail: the eyes and the mouth.

The mesh model warps at its feature volume's resolution (64x64 for 256x256 pictures) and the
keyframe image by that grid upsampled, so anything smaller than a volume cell is lost: an iris
moved by the sent gaze (2-5 pixels at 256) stays where the keyframe had it, a lip's edge is
blurred across the cell.  :func:`detail_grid` rasterizes the same mesh warp
(:func:`codec.geometry.flow.mesh_flow`) at the picture's resolution, but only in a window
around each eye and around the mouth (about 5 % of the pixels: a few milliseconds instead of
~50 ms for the whole picture); the model adds the difference between it and the upsampled
coarse grid to the image's grid there, tapered to nothing at each window's edge
(:func:`codec.models.mesh_head.full_resolution_grid`), in training as in the receiver.
"""

from __future__ import annotations

import numpy as np

from .eyelids import lid_texture
from .flow import (
    EYE_RINGS,
    IRIS_RINGS,
    MESH_POINTS,
    MOUTH_RING,
    REGION_SKIN,
    _interpolate,
    _mirror,
    _pixels,
    _raster,
    closed_triangles,
    extended_mesh,
)

__all__ = ["DETAIL_PAD", "DETAIL_TAPER", "OUTER_LIPS", "detail_grid", "detail_maps", "detail_windows"]

#: the outer lip line (MediaPipe ids): the mouth's window spans it
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: crop units added around each feature's box (0.04: 5 pixels at 256)
DETAIL_PAD = 0.04
#: crop units over which the detail fades in from a window's edge (0.03: 4 pixels at 256)
DETAIL_TAPER = 0.03

_FEATURES = (
    tuple(EYE_RINGS[0][0]) + IRIS_RINGS[0],
    tuple(EYE_RINGS[1][0]) + IRIS_RINGS[1],
    OUTER_LIPS + MOUTH_RING,
)


def detail_windows(driving_mesh: np.ndarray, size: int) -> list[tuple[int, int, int, int]]:
    """Pixel windows ``(y0, y1, x0, x1)`` (ends excluded, inside the picture; none empty) around
    each eye and the mouth of a (478, 3) crop-unit mesh, at ``size`` pixels."""
    pixels = _pixels(np.asarray(driving_mesh, dtype=np.float64), size)
    pad = DETAIL_PAD * size / 2
    windows = []
    for feature in _FEATURES:
        points = pixels[list(feature)]
        x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 > x0 and y1 > y0:
            windows.append((int(y0), int(y1), int(x0), int(x1)))
    return windows


def detail_grid(source_mesh: np.ndarray, driving_mesh: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh warp at full resolution in the :func:`detail_windows`.

    Args:
        source_mesh, driving_mesh: (478, 3) float crop units (the keyframe's mesh, the frame's).
        size: picture side in pixels.

    Returns:
        grid: (size, size, 2) float32, the keyframe position (grid units, as
        :attr:`codec.geometry.flow.MeshFlow.grid`) of each face pixel in a window, 0 elsewhere;
        weight: (size, size) float32 in [0, 1], how much of it to use: 1 inside a window,
        fading to 0 over :data:`DETAIL_TAPER` at its edge, 0 off the face and outside windows.

    Raises:
        ValueError: a mesh is not (478, 3) or not finite.
    """
    source, driving = extended_mesh(source_mesh), extended_mesh(driving_mesh)
    if not (np.isfinite(source).all() and np.isfinite(driving).all()):
        raise ValueError("meshes contain NaN or inf")
    triangles, regions = closed_triangles()
    source_px, driving_px = _pixels(lid_texture(source, driving), size), _pixels(driving, size)
    windows = detail_windows(driving[:MESH_POINTS], size)
    corners = driving_px[triangles]  # (T, 3, 2): only triangles that reach a window matter there
    low, high = corners.min(axis=1), corners.max(axis=1)
    near = np.zeros(len(triangles), bool)
    for y0, y1, x0, x1 in windows:
        near |= (high[:, 0] >= x0 - 1) & (low[:, 0] <= x1) & (high[:, 1] >= y0 - 1) & (low[:, 1] <= y1)
    triangles, regions = triangles[near], regions[near]
    owner = _raster(driving, triangles, size, regions != REGION_SKIN)
    grid = np.zeros((size, size, 2), np.float32)
    weight = np.zeros((size, size), np.float32)
    taper = max(DETAIL_TAPER * size / 2, 1.0)
    for y0, y1, x0, x1 in windows:
        window = owner[y0:y1, x0:x1]
        present = np.unique(window)
        present = present[present > 0]  # the triangles this window shows, renumbered from 1
        local = np.zeros(len(triangles) + 1, np.int32)
        local[present] = np.arange(1, len(present) + 1)
        position = _interpolate(driving_px, source_px, triangles[present - 1], local[window], 2, origin=(y0, x0))
        ys, xs = np.mgrid[y0:y1, x0:x1]
        edge = np.minimum.reduce([ys - y0 + 1, y1 - ys, xs - x0 + 1, x1 - xs]).astype(np.float32)
        fade = np.clip(edge / taper, 0.0, 1.0) * (window > 0)
        grid[y0:y1, x0:x1] = np.where(
            (fade > weight[y0:y1, x0:x1])[..., None], _mirror((position + 0.5) * (2 / size) - 1), grid[y0:y1, x0:x1]
        )
        weight[y0:y1, x0:x1] = np.maximum(weight[y0:y1, x0:x1], fade)
    return grid, weight


def detail_maps(source_mesh: np.ndarray, driving_mesh: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) float32: :func:`detail_grid`'s grid (x, y) and weight stacked, the mesh
    model's ``detail`` input (:class:`codec.models.mesh_head.MeshTalkingHeadModel`)."""
    grid, weight = detail_grid(source_mesh, driving_mesh, size)
    return np.concatenate([grid.transpose(2, 0, 1), weight[None]]).astype(np.float32)
