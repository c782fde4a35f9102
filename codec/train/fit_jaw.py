"""``python -m codec.train.fit_jaw``: how the lower face moves as the mouth opens, on the
training clips (the table :data:`codec.edits.JAW_OPENING` that ``neutral`` closes a mouth along).

Reads the training cache (``python -m codec.train prepare``: every frame's mesh).  Per clip the
first frame with a face is the keyframe and every other frame's keypoints are brought into its
canonical frame by the tracker's head pose (:func:`codec.train.fit_dense_map.canonical_deltas`),
in units of the keyframe's eye-corner distance.  Each lower-face keypoint's delta is regressed,
through zero, on the change of the inner-lip gap (lower lip's y minus the upper lip's): its motion
per unit of opening.  Components the gap explains poorly (R^2 below :data:`MIN_R2`) are set to 0,
and the mouth corners are mirrored to be symmetric.  Prints the table to paste.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..edits import eye_corner_distance, inner_lip_gap
from ..motion.extract import MotionExtractor
from ..motion.schemes import KEYPOINT_NAMES
from .data import TRAIN_CACHE, load_clip_data
from .fit_dense_map import canonical_deltas

__all__ = ["JAW_KEYPOINTS", "MIN_R2", "fit_jaw_opening", "main"]

#: the keypoints a jaw moves (the rest of the face is left to the other expression directions)
JAW_KEYPOINTS = ("upper_lip", "lower_lip", "chin", "mouth_right", "mouth_left")
#: a component whose variance the gap explains less than this is not the jaw's: 0
MIN_R2 = 0.1
#: mirror pairs, and the component (x) whose sign a mirror flips
_MIRRORED = (("mouth_right", "mouth_left"),)


def fit_jaw_opening(gap_change: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares through zero of each keypoint delta on the gap's change.

    Args:
        gap_change: (F,) float, the inner-lip gap minus the keyframe's, eye-corner distances.
        deltas: (F, K, 3) float, keypoint deltas in the canonical frame, eye-corner distances.

    Returns:
        direction: (K, 3) float64, delta per unit of gap change; r2: (K, 3) float64, the share of
        each component's variance it explains.

    Raises:
        ValueError: shapes differ, or the gap never changes.
    """
    gap = np.asarray(gap_change, dtype=np.float64)
    values = np.asarray(deltas, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] != gap.shape[0] or values.shape[2] != 3:
        raise ValueError(f"need (F,) gaps and (F, K, 3) deltas, got {gap.shape} and {values.shape}")
    energy = float(gap @ gap)
    if not energy > 0:
        raise ValueError("the inner-lip gap never changes: nothing to fit")
    direction = np.einsum("f,fkc->kc", gap, values) / energy
    residual = values - gap[:, None, None] * direction
    r2 = 1.0 - residual.var(axis=0) / np.maximum(values.var(axis=0), 1e-12)
    return direction, r2


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m codec.train.fit_jaw", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=TRAIN_CACHE, help="prepared training clips (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.cache.glob("*") if (p / "motion.npz").exists())
    if not folders:
        print(f"error: no prepared clips in {args.cache}: run `python -m codec.train prepare` first", file=sys.stderr)
        return 1
    extractor = MotionExtractor()
    ids = list(extractor.scheme.keypoint_ids)
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    gaps, deltas = [], []
    for folder in tqdm(folders, unit="clip", file=sys.stderr, desc="meshes"):
        data = load_clip_data(folder)
        for canonical, _, delta in canonical_deltas(data.landmarks, data.valid, extractor):
            local = delta[ids] / eye_corner_distance(canonical.landmarks[ids])
            gaps.append(inner_lip_gap(local))
            deltas.append(local)
    direction, r2 = fit_jaw_opening(np.array(gaps), np.array(deltas))
    direction = np.where(r2 >= MIN_R2, direction, 0.0)
    for right, left in _MIRRORED:
        r, lo = index[right], index[left]
        mean = (direction[r] * [-1, 1, 1] + direction[lo]) / 2
        direction[r], direction[lo] = mean * [-1, 1, 1], mean
    print(f"{len(folders)} clips, {len(gaps)} frames; per unit of inner-lip gap (x, y, z), R^2:")
    for name in JAW_KEYPOINTS:
        values = ", ".join(f"{v:.3f}" for v in direction[index[name]])
        print(f'    "{name}": ({values}),  # R^2 {np.round(r2[index[name]], 2).tolist()}')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
