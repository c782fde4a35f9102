"""``python -m codec.train.fit_dense_map``: learn the dense expression map (K keypoint deltas to
the whole mesh's deltas) on the prepared training clips and measure it on the validation clips
against the classical renderer's Gaussian spreading and against no expression at all.

Reads the training cache (``python -m codec.train prepare``: every frame's mesh); per clip the
first frame with a face is the keyframe, every other frame's mesh is brought into its canonical
frame by the tracker's head pose, as the sender's motion extraction does.  Prints a table of the
mesh error (pixels at the crop size, the 468 points without irises) and writes the map.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..geometry.dense_expression import DenseExpressionMap, fit_dense_map_from_moments, save_dense_map
from ..motion.extract import MotionExtractor
from ..motion.params import HeadPose
from .data import TRAIN_CACHE, load_clip_data

__all__ = ["canonical_deltas", "main", "mesh_errors"]

#: mesh points without the irises (the irises follow the sent gaze, not the map)
FACE_POINTS = 468
#: ridge penalties tried (relative to the mean squared keypoint delta)
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1)
#: frames used per clip at most (evenly spaced): enough for 60 inputs, quick
FRAMES_PER_CLIP = 300
#: every HOLDOUT-th training clip chooses the ridge
HOLDOUT = 5
#: the classical renderer's spreading width (crop units), for comparison
GAUSSIAN_SIGMA = 0.06
RIGID = "none (rigid)"
GAUSSIAN = "gaussian spread (classical)"


def canonical_deltas(landmarks: np.ndarray, valid: np.ndarray, extractor: MotionExtractor) -> Iterator[tuple]:
    """Per frame with a face (the first is the keyframe): ``(canonical, pose, mesh_delta)``:
    the keyframe's canonical face, the frame's head pose and its (N, 3) mesh deltas in the
    canonical frame (crop units).

    Args:
        landmarks: (F, N, 3) crop-unit meshes; valid: (F,) bool.
    """
    frames = np.flatnonzero(valid)
    if len(frames) == 0:
        return
    canonical = extractor.canonicalize(landmarks[frames[0]].astype(np.float64))
    step = max(1, len(frames) // FRAMES_PER_CLIP)
    for index in frames[::step]:
        points = landmarks[index].astype(np.float64)
        pose = extractor.head_pose(points, canonical)
        local = (points - pose.translation) @ pose.rotation() / pose.scale
        yield canonical, pose, local - canonical.landmarks


def _mesh_error(predicted_local: np.ndarray, true_local: np.ndarray, pose: HeadPose, size: int) -> float:
    """Mean distance (pixels, image plane) of the posed meshes' face points."""
    rotation = pose.rotation()
    predicted = pose.scale * predicted_local[:FACE_POINTS] @ rotation.T
    true = pose.scale * true_local[:FACE_POINTS] @ rotation.T
    return float(np.linalg.norm((predicted - true)[:, :2], axis=1).mean() * size / 2)


def _moments(folders: list[Path], extractor: MotionExtractor) -> tuple[np.ndarray, np.ndarray, int]:
    """Sums of ``x x^T`` and ``x y^T`` over the clips' frames (x: keypoint deltas, y: mesh deltas)."""
    from tqdm import tqdm

    ids = extractor.scheme.keypoint_ids
    gram = np.zeros((3 * len(ids), 3 * len(ids)))
    cross = np.zeros((3 * len(ids), 3 * extractor.scheme.num_landmarks))
    count = 0
    for folder in tqdm(folders, unit="clip", file=sys.stderr, desc="meshes"):
        data = load_clip_data(folder)
        for _, _, delta in canonical_deltas(data.landmarks, data.valid, extractor):
            x, y = delta[ids].reshape(-1), delta.reshape(-1)
            gram += np.outer(x, x)
            cross += np.outer(x, y)
            count += 1
    return gram, cross, count


def mesh_errors(
    folders: list[Path], maps: dict[str, DenseExpressionMap], extractor: MotionExtractor, size: int
) -> dict[str, list[float]]:
    """Per frame of the clips, the mesh error (px) of no expression, of the classical renderer's
    Gaussian spreading and of each map."""
    from ..render.classical import rbf_spread_matrix

    ids = extractor.scheme.keypoint_ids
    errors: dict[str, list[float]] = {RIGID: [], GAUSSIAN: [], **{name: [] for name in maps}}
    for folder in folders:
        data = load_clip_data(folder)
        spread = None
        for canonical, pose, delta in canonical_deltas(data.landmarks, data.valid, extractor):
            if spread is None:
                spread = rbf_spread_matrix(canonical.landmarks[ids, :2], canonical.landmarks[:, :2], GAUSSIAN_SIGMA)
            true = canonical.landmarks + delta
            errors[RIGID].append(_mesh_error(canonical.landmarks, true, pose, size))
            errors[GAUSSIAN].append(_mesh_error(canonical.landmarks + spread @ delta[ids], true, pose, size))
            for name, dense_map in maps.items():
                predicted = canonical.landmarks + dense_map.dense_delta(delta[ids])
                errors[name].append(_mesh_error(predicted, true, pose, size))
    return errors


def main(argv: list[str] | None = None) -> int:
    from .data import prepare_split

    parser = argparse.ArgumentParser(prog="python -m codec.train.fit_dense_map", description=__doc__)
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"))
    parser.add_argument("--seconds", type=float, default=30.0, help="as prepared (default 30)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "geometry" / "data")
    args = parser.parse_args(argv)
    extractor = MotionExtractor()
    train = prepare_split(args.clips, "train", args.size, args.seconds, TRAIN_CACHE)
    val = prepare_split(args.clips, "val", args.size, args.seconds, TRAIN_CACHE)
    # the ridge is chosen on held-out training clips (every HOLDOUT-th), never on val
    held_out, fitted = train[::HOLDOUT], [f for i, f in enumerate(train) if i % HOLDOUT]
    gram, cross, _ = _moments(fitted, extractor)
    trial = {f"ridge {r:g}": fit_dense_map_from_moments(gram, cross, r) for r in RIDGES}
    held = mesh_errors(held_out, trial, extractor, args.size)
    best = min(RIDGES, key=lambda r: float(np.mean(held[f"ridge {r:g}"])))
    print(f"held-out training clips ({len(held[RIGID])} frames), mesh error px at {args.size}:")
    for name, values in held.items():
        print(f"  {name:32s} mean {np.mean(values):.3f}  p95 {np.percentile(values, 95):.3f}")
    gram, cross, count = _moments(train, extractor)
    chosen = fit_dense_map_from_moments(gram, cross, best)
    errors = mesh_errors(val, {chosen.map_id: chosen}, extractor, args.size)
    print(f"{chosen.map_id}: ridge {best:g}, fitted on {count} frames of {len(train)} clips; "
          f"val ({len(errors[RIGID])} frames of {len(val)} clips), mesh error px at {args.size}:")  # fmt: skip
    for name, values in errors.items():
        print(f"  {name:32s} mean {np.mean(values):.3f}  p95 {np.percentile(values, 95):.3f}")
    print(f"wrote {save_dense_map(chosen, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
