"""Geometry from the mesh (codec.geometry): the dense expression map, each frame's rebuilt mesh,
the closed triangulation and the backward warp, and the mesh model that takes it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from codec.geometry.dense_expression import DenseExpressionMap, fit_dense_map, fit_dense_map_from_moments
from codec.geometry.flow import (
    EXTENDED_POINTS,
    EYE_RINGS,
    IRIS_RINGS,
    IRIS_SEGMENTS,
    MOUTH_RING,
    REGION_EYE,
    REGION_IRIS,
    REGION_MOUTH,
    REGION_OUTSIDE,
    REGION_SKIN,
    closed_triangles,
    extended_mesh,
    mesh_flow,
)
from codec.geometry.inputs import GEOMETRY_CHANNELS, frame_geometry, geometry_maps, keyframe_geometry
from codec.geometry.mesh import driving_mesh, posed_mesh
from codec.motion.gaze import measure_gaze
from codec.motion.params import HeadPose, MotionParams

from .synthetic import face_mesh

SIZE = 64


def identity_map(num_points: int = 478) -> DenseExpressionMap:
    """A map that moves nothing but the 20 keypoints' own rows (a test stand-in)."""
    from codec.motion.schemes import get_scheme

    weights = np.zeros((3 * num_points, 60), np.float32)
    for k, point in enumerate(get_scheme().keypoint_ids):
        for axis in range(3):
            weights[3 * point + axis, 3 * k + axis] = 1.0
    return DenseExpressionMap("dense-test", weights)


# --- the dense expression map ----------------------------------------------------------------


def test_the_map_recovers_a_linear_law_from_frames() -> None:
    rng = np.random.default_rng(0)
    law = rng.normal(size=(3 * 30, 3 * 4))
    keypoints = rng.normal(size=(500, 4, 3)) * 0.01
    dense = (keypoints.reshape(500, -1) @ law.T).reshape(500, 30, 3)
    fitted = fit_dense_map(keypoints, dense, ridge=1e-6)
    assert fitted.map_id.startswith("dense-k4n30-") and len(fitted.map_id) == len("dense-k4n30-") + 8
    assert np.abs(fitted.weights - law).max() < 0.01  # float16 weights
    assert np.abs(fitted.dense_delta(keypoints[:3]) - dense[:3]).max() < 1e-3
    x, y = keypoints.reshape(500, -1), dense.reshape(500, -1)
    moments = fit_dense_map_from_moments(x.T @ x, x.T @ y, ridge=1e-6)
    assert moments.map_id == fitted.map_id
    with pytest.raises(ValueError, match=r"expression deltas must be \(\.\.\., 4, 3\), got \(5, 3\)"):
        fitted.dense_delta(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="need the same number"):
        fit_dense_map(keypoints[:3], dense[:2], 0.1)


def test_the_shipped_map_keeps_the_keypoints_and_round_trips_through_its_bytes() -> None:
    import io

    from codec.geometry.dense_expression import DEFAULT_DENSE_MAP, available_dense_maps, load_dense_map
    from codec.motion.schemes import get_scheme

    dense_map = load_dense_map()
    assert dense_map.map_id == DEFAULT_DENSE_MAP in available_dense_maps() and dense_map.weights.shape == (1434, 60)
    delta = np.random.default_rng(0).normal(0, 0.01, (20, 3))
    moved = dense_map.dense_delta(delta)
    assert np.abs(moved[get_scheme().keypoint_ids] - delta).max() < 0.15 * np.abs(delta).max()  # ridge-shrunk
    assert np.abs(moved).max() < 3 * np.abs(delta).max()  # a smooth spread, no blow-up
    with np.load(io.BytesIO(dense_map.to_bytes())) as data:
        assert data["weights"].dtype == np.float16 and np.array_equal(data["weights"], dense_map.weights)
    with pytest.raises(KeyError, match="unknown dense expression map 'dense-nope'; this install has"):
        load_dense_map("dense-nope")


# --- each frame's mesh -------------------------------------------------------------------------


def test_the_rebuilt_mesh_follows_pose_expression_and_gaze() -> None:
    mesh = face_mesh()
    keyframe = keyframe_geometry(mesh)
    still = MotionParams(keyframe.canonical.head_pose, np.zeros((20, 3), np.float32))
    assert np.abs(posed_mesh(keyframe.canonical.landmarks, still, identity_map()) - mesh).max() < 1e-9
    turned = HeadPose(12.0, -5.0, 3.0, np.array([0.05, -0.02, 0.0]), 1.1)
    delta = np.zeros((20, 3), np.float32)
    delta[16, 1] = 0.03  # the lower lip down
    moved = posed_mesh(keyframe.canonical.landmarks, MotionParams(turned, delta), identity_map())
    expected = turned.scale * (keyframe.canonical.landmarks[14] + [0, 0.03, 0]) @ turned.rotation().T
    assert np.allclose(moved[14], expected + turned.translation)
    gaze = np.array([[0.4, -0.1], [0.35, -0.05]], np.float32)
    looked = driving_mesh(keyframe.canonical.landmarks, MotionParams(turned, delta, gaze), identity_map())
    assert np.abs(measure_gaze(looked) - gaze).max() < 1e-6  # type: ignore[operator]
    assert np.allclose(looked[:468], moved[:468])  # only the irises moved
    ring = looked[list(IRIS_RINGS[0])] - looked[468]
    assert np.allclose(ring, moved[list(IRIS_RINGS[0])] - moved[468])  # each iris moved as a whole


def test_the_mirror_map_swaps_left_and_right() -> None:
    from codec.geometry.mesh import mirror_mesh, mirror_permutation

    permutation = mirror_permutation()
    assert np.array_equal(permutation[permutation], np.arange(478))  # an involution
    assert permutation[33] == 263 and permutation[61] == 291 and permutation[1] == 1 and permutation[468] == 473
    mesh = face_mesh()
    mirrored = mirror_mesh(mesh)
    assert np.abs(mirrored - mesh).max() < 1e-9  # the synthetic face is symmetric about x = 0
    gaze = measure_gaze(mesh)
    shifted = mesh.copy()
    shifted[list(IRIS_RINGS[0]), 0] += 0.01  # the right iris looks towards the image's right
    assert measure_gaze(mirror_mesh(shifted))[1, 0] == pytest.approx(-measure_gaze(shifted)[0, 0])  # type: ignore[index]
    assert gaze is not None


# --- the triangulation and the warp ------------------------------------------------------------


def test_the_openings_are_closed_by_their_own_triangles() -> None:
    triangles, regions = closed_triangles()
    counts = Counter(regions.tolist())
    assert counts[REGION_MOUTH] == len(MOUTH_RING) and counts[REGION_IRIS] == 2 * IRIS_SEGMENTS
    assert counts[REGION_EYE] == 2 * (IRIS_SEGMENTS + len(EYE_RINGS[0][0]))  # a band stitches the two rings
    assert triangles.max() == EXTENDED_POINTS - 1 and triangles.min() == 0
    edges = Counter(tuple(sorted(e)) for t in triangles.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])))
    for ring in (MOUTH_RING, EYE_RINGS[0][0], EYE_RINGS[1][0]):
        for i in range(len(ring)):  # skin on one side, the opening's own triangles on the other
            assert edges[tuple(sorted((ring[i], ring[(i + 1) % len(ring)])))] == 2
    assert extended_mesh(face_mesh()).shape == (EXTENDED_POINTS, 3)
    with pytest.raises(ValueError, match=r"need a \(478, 3\) mesh with irises, got \(468, 3\)"):
        extended_mesh(face_mesh()[:468])


_LOWER_INNER_LIP = [324, 318, 402, 317, 14, 87, 178, 88, 95]


def _open_mouth(mesh: np.ndarray, by: float = 0.08) -> np.ndarray:
    """The mesh with its lower inner lip moved ``by`` crop units further from the upper one (the
    template's mouth is open by only a pixel at 64, which the lips' edges cover)."""
    opened = mesh.copy()
    opened[_LOWER_INNER_LIP, 1] += by * np.sign(mesh[14, 1] - mesh[13, 1])
    return opened


def test_an_unmoved_face_warps_to_itself_and_a_moved_one_by_its_motion() -> None:
    mesh = _open_mouth(face_mesh())
    flow = mesh_flow(mesh, mesh, SIZE)
    identity = (np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE)), axis=-1) + 0.5) * (2 / SIZE) - 1
    face = flow.regions != REGION_OUTSIDE
    assert 0.15 < face.mean() < 0.6
    assert {REGION_SKIN, REGION_MOUTH, REGION_EYE, REGION_IRIS} <= set(np.unique(flow.regions))
    assert np.abs(flow.grid - identity).max() < 1e-4 and np.abs(flow.depth_shift).max() < 1e-6
    assert flow.visible[face].mean() > 0.97 and not flow.visible[~face].any()
    assert np.all(flow.face_weight[face] == 1) and flow.face_weight[0, 0] < 0.2
    shift = np.array([0.1, 0.0, 0.0])  # the face moves right by 0.1 crop units (3.2 px at 64)
    moved = mesh_flow(mesh, mesh + shift, SIZE)
    inside = moved.regions != REGION_OUTSIDE
    assert np.abs(moved.grid[inside] - (identity[inside] - shift[:2])).max() < 1e-4
    assert np.abs(moved.grid[0, 0] - identity[0, 0]).max() < 0.03  # the corner hardly follows
    assert np.all(np.diff(moved.face_weight[SIZE // 2, : SIZE // 6]) >= 0)  # fading towards the face
    with pytest.raises(ValueError, match="meshes contain NaN or inf"):
        mesh_flow(mesh, np.full_like(mesh, np.nan), SIZE)


def test_lids_and_lips_hide_what_is_behind_them_whatever_its_depth() -> None:
    """The openings' insides are drawn behind the skin: a closed lid hides the iris even where the
    iris's points lie nearer the camera than the lid's, and pressed lips hide the mouth."""
    mesh = _open_mouth(face_mesh())
    for _, iris in EYE_RINGS:
        mesh[[iris, *range(iris + 1, iris + 5)], 2] -= 0.05  # the irises well in front of the lids
    assert {REGION_MOUTH, REGION_IRIS} <= set(np.unique(mesh_flow(mesh, mesh, SIZE).regions))  # open: both seen
    closed = mesh.copy()
    for ring, _ in EYE_RINGS:  # each upper lid down onto the lower one (ring: corner, 7 upper, corner, 7 lower)
        upper, lower = list(ring[1:8]), list(ring[9:])[::-1]
        closed[upper, :2] = closed[lower, :2]
    closed[_LOWER_INNER_LIP, 1] = closed[13, 1]  # the lips pressed together
    regions = set(np.unique(mesh_flow(mesh, closed, SIZE).regions))
    assert REGION_SKIN in regions and not {REGION_MOUTH, REGION_EYE, REGION_IRIS} & regions


def test_a_sliver_triangle_never_sends_a_pixel_across_the_face() -> None:
    """A pixel the rasterizer gives to a nearly flat triangle must not extrapolate its map (a
    pixel next to a nostril once read the keyframe's eye); a well-shaped one extrapolates exactly."""
    from codec.geometry.flow import _interpolate

    owner = np.zeros((8, 8), np.int64)
    owner[4, 4] = 1  # pixel (4, 4) given to triangle 0, which lies just beside it
    sliver = np.array([[0.0, 4.6], [8.0, 4.6], [4.0, 4.62]])  # 0.02 px thick, 0.6 px below the pixel
    source = np.array([[0.0, 4.6], [8.0, 4.6], [4.0, 40.0]])  # its third corner maps far away
    out = _interpolate(sliver, source, np.array([[0, 1, 2]]), owner, 2)
    assert np.abs(out[4, 4] - [4.0, 4.6]).max() < 0.6  # the triangle's nearest point, not y = -1000
    square = np.array([[0.0, 5.0], [8.0, 5.0], [0.0, 13.0]])
    shifted = square + [3.0, 1.0]
    out = _interpolate(square, shifted, np.array([[0, 1, 2]]), owner, 2)
    assert np.allclose(out[4, 4], [7.0, 5.0])  # a translation extrapolates exactly


def test_geometry_maps_stack_the_warp_for_the_model() -> None:
    mesh = face_mesh()
    keyframe = keyframe_geometry(mesh)
    still = MotionParams(keyframe.canonical.head_pose, np.zeros((20, 3), np.float32))
    maps = frame_geometry(keyframe, still, identity_map(), SIZE)
    assert set(keyframe.depth) == {SIZE}  # the keyframe's z-buffer is kept for the next frames
    flow = mesh_flow(mesh, mesh, SIZE)
    assert maps.shape == (len(GEOMETRY_CHANNELS), SIZE, SIZE) and maps.dtype == np.float32
    assert np.allclose(maps, geometry_maps(flow), atol=1e-5)
    regions = maps[3:7]
    assert set(np.unique(regions)) == {0.0, 1.0} and regions.sum(axis=0).max() == 1.0  # one region per pixel


def test_the_mesh_model_starts_from_the_geometrys_warp() -> None:
    from codec.models.build import build_model
    from codec.models.config import load_config
    from codec.train.losses import region_l1

    config = load_config("mesh")
    model = build_model(config).eval()
    mesh = face_mesh()
    maps = geometry_maps(mesh_flow(mesh, mesh + np.array([0.05, 0.0, 0.0]), config.volume_size))
    source = torch.rand(1, 3, config.image_size, config.image_size)
    with torch.no_grad():
        out = model({"source_image": source, "geometry": torch.from_numpy(maps)[None]})
    assert out["image"].shape == (1, 3, 256, 256) and out["flow"].shape == (1, config.volume_depth, 64, 64, 3)
    assert torch.allclose(out["grid"][0], torch.from_numpy(maps[:2]).permute(1, 2, 0))  # no correction yet
    expected = torch.nn.functional.grid_sample(source, out["flow_2d"], align_corners=False, padding_mode="border")
    assert torch.allclose(out["warped_image"], expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"geometry must be \(B, 9, 64, 64\), got \(1, 9, 32, 32\)"):
        model.warp(model.encode_keyframe(source), torch.zeros(1, 9, 32, 32))
    image, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    regions = torch.zeros(1, 3, 2, 2)
    regions[0, 1, 0, 0] = 1  # one quarter of the picture is eye
    assert float(region_l1(image, target, regions)) == pytest.approx(1.0)
    assert float(region_l1(image, target, torch.zeros(1, 3, 2, 2))) == 0.0


# --- the warp at full resolution around the eyes and the mouth ---------------------------------


def test_the_detail_grid_is_the_full_resolution_warp_in_windows_around_eyes_and_mouth() -> None:
    from codec.geometry.detail import DETAIL_TAPER, detail_grid, detail_windows

    size = 256
    mesh = face_mesh()
    windows = detail_windows(mesh, size)
    assert len(windows) == 3  # each eye, then the mouth
    (ey0, ey1, _, ex1), (ey0b, ey1b, ex0b, _), (my0, my1, mx0, mx1) = windows
    assert (ey0, ey1) == (ey0b, ey1b) and ex1 < ex0b  # two eyes side by side (the synthetic face is symmetric)
    assert my1 < ey0 or ey1 < my0  # the mouth's window apart from the eyes'
    grid, weight = detail_grid(mesh, mesh, size)
    identity = (np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1) + 0.5) * (2 / size) - 1
    used = weight > 0
    assert 0.01 < used.mean() < 0.1  # a few per cent of the picture
    assert np.abs(grid[used] - identity[used]).max() < 1e-4  # an unmoved face: the identity
    assert weight[(my0 + my1) // 2, (mx0 + mx1) // 2] == 1.0 and weight[0, 0] == 0.0 and (grid[~used] == 0).all()
    assert weight[my0, (mx0 + mx1) // 2] <= 1.0 / (DETAIL_TAPER * size / 2) + 1e-6  # fading in at the edge
    # the right iris looks 3 px to the image's right: the pixels where it now is read it where it was
    looked = mesh.copy()
    shift = 3.0 * 2 / size
    looked[list(IRIS_RINGS[0]), 0] += shift
    grid, weight = detail_grid(mesh, looked, size)
    cx, cy = ((looked[468, :2] + 1) * size / 2 - 0.5).round().astype(int)
    assert weight[cy, cx] == 1.0
    assert grid[cy, cx, 0] == pytest.approx(identity[cy, cx, 0] - shift, abs=1e-4)
    assert grid[cy, cx, 1] == pytest.approx(identity[cy, cx, 1], abs=1e-4)
    with pytest.raises(ValueError, match="meshes contain NaN or inf"):
        detail_grid(mesh, np.full_like(mesh, np.nan), size)
    corner = mesh + np.array([0.9, 0.9, 0.0])  # the face mostly off the picture: windows are clipped
    assert all(0 <= y0 < y1 <= size and 0 <= x0 < x1 <= size for y0, y1, x0, x1 in detail_windows(corner, size))
