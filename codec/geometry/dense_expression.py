"""A dense expression map: from the K sent keypoint deltas to every point of the face mesh.

The motion carries K = 20 keypoint deltas (lids, brows, lips, jaw) in the canonical (frontal)
frame; the tracker's mesh has 478 points.  The face moves as a whole (an opening jaw drags the
cheeks, a smile lifts them), so the mesh's deltas are well predicted by a linear map of the
keypoint deltas, learned by ridge regression on the training clips' meshes
(``python -m codec.train.fit_dense_map``): ``dense = W @ keypoint_delta``, no intercept (the
keyframe's own expression is zero delta).  Maps ship with the package under
``codec/geometry/data`` as ``dense-k{K}n{N}-{sha8}.npz`` (float16 weights).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_DENSE_MAP",
    "DenseExpressionMap",
    "available_dense_maps",
    "fit_dense_map",
    "fit_dense_map_from_moments",
    "load_dense_map",
    "save_dense_map",
]

_DATA = "codec.geometry.data"
#: the map receivers use: fitted on the 114 training clips (22406 frames), ridge 0.001; on the
#: validation clips it rebuilds the mesh within 0.31 px mean (0.47 p95) at 256x256, where the
#: classical renderer's Gaussian spreading is 1.08 px off and no expression 1.79
DEFAULT_DENSE_MAP = "dense-k20n478-3d6f1b56"


@dataclass(frozen=True)
class DenseExpressionMap:
    """``dense_delta = (weights @ keypoint_delta.ravel()).reshape(N, 3)``.

    Attributes:
        map_id: name, ``dense-k{K}n{N}-{sha8}``.
        weights: (3N, 3K) float32, canonical-frame crop units to the same.
    """

    map_id: str
    weights: np.ndarray

    @property
    def num_keypoints(self) -> int:
        return int(self.weights.shape[1] // 3)

    @property
    def num_points(self) -> int:
        return int(self.weights.shape[0] // 3)

    def dense_delta(self, expression_delta: np.ndarray) -> np.ndarray:
        """(K, 3) keypoint deltas (or (B, K, 3)) to (N, 3) (or (B, N, 3)) float64 mesh deltas.

        Raises:
            ValueError: the deltas are not (..., K, 3).
        """
        delta = np.asarray(expression_delta, dtype=np.float64)
        if delta.shape[-2:] != (self.num_keypoints, 3):
            raise ValueError(f"expression deltas must be (..., {self.num_keypoints}, 3), got {delta.shape}")
        flat = delta.reshape(*delta.shape[:-2], -1)
        return np.asarray(flat @ self.weights.T.astype(np.float64)).reshape(*delta.shape[:-2], self.num_points, 3)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, weights=self.weights.astype(np.float16))
        return buffer.getvalue()


def fit_dense_map(keypoint_deltas: np.ndarray, dense_deltas: np.ndarray, ridge: float) -> DenseExpressionMap:
    """Ridge regression of the mesh's deltas on the keypoints' deltas.

    Args:
        keypoint_deltas: (F, K, 3) canonical-frame keypoint deltas of F frames.
        dense_deltas: (F, N, 3) the same frames' mesh deltas.
        ridge: the penalty on the weights, relative to the mean squared keypoint delta (so it
            does not depend on the units).

    Returns:
        The map, its weights rounded to float16 as they ship (the id hashes those).
    """
    x = np.asarray(keypoint_deltas, dtype=np.float64).reshape(len(keypoint_deltas), -1)
    y = np.asarray(dense_deltas, dtype=np.float64).reshape(len(dense_deltas), -1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need the same number (> 0) of keypoint and mesh frames, got {len(x)} and {len(y)}")
    return fit_dense_map_from_moments(x.T @ x, x.T @ y, ridge)


def fit_dense_map_from_moments(gram: np.ndarray, cross: np.ndarray, ridge: float) -> DenseExpressionMap:
    """:func:`fit_dense_map` from sums over frames (to fit on more frames than fit in memory).

    Args:
        gram: (3K, 3K) sum of ``x x^T`` over frames (x: a frame's flattened keypoint deltas).
        cross: (3K, 3N) sum of ``x y^T`` (y: its flattened mesh deltas).
        ridge: see :func:`fit_dense_map`.
    """
    penalty = ridge * np.trace(gram) / gram.shape[0]
    weights = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), cross).T
    weights = weights.astype(np.float16).astype(np.float32)
    unnamed = DenseExpressionMap("", weights)
    digest = hashlib.sha256(unnamed.to_bytes()).hexdigest()[:8]
    return DenseExpressionMap(f"dense-k{weights.shape[1] // 3}n{weights.shape[0] // 3}-{digest}", weights)


def available_dense_maps() -> list[str]:
    """Ids of the maps that ship with the package."""
    folder = resources.files(_DATA)
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".npz"))


@lru_cache(maxsize=4)
def load_dense_map(map_id: str = DEFAULT_DENSE_MAP) -> DenseExpressionMap:
    """A shipped map by id (default: :data:`DEFAULT_DENSE_MAP`).

    Raises:
        KeyError: no such map (the message lists the shipped ones).
    """
    known = available_dense_maps()
    if map_id not in known:
        raise KeyError(f"unknown dense expression map {map_id!r}; this install has {known or 'none'}")
    blob = resources.files(_DATA).joinpath(f"{map_id}.npz").read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return DenseExpressionMap(map_id, data["weights"].astype(np.float32))


def save_dense_map(dense_map: DenseExpressionMap, folder: Path) -> Path:
    path = folder / f"{dense_map.map_id}.npz"
    path.write_bytes(dense_map.to_bytes())
    return path
