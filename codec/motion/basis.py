"""An optional compact expression code: PCA of the expression deltas.

The K x 3 deltas of talking faces are strongly correlated (lips move together, both lids
blink together).  A PCA basis learned on the training clips (``python -m codec.train.fit_basis``)
turns them into M < 3K coefficients; each coefficient gets its own quantization step, scaled
to its spread, so the reconstruction error stays about that of the raw deltas.  A keyframe
names the basis it uses; bases ship with the package under ``codec/motion/data``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["ExpressionBasis", "available_bases", "fit_basis", "load_basis"]

_DATA = "codec.motion.data"


@dataclass(frozen=True)
class ExpressionBasis:
    """``delta ~= mean + components.T @ coefficients``.

    Attributes:
        basis_id: name, ``{kind}-k{K}m{M}-{sha8}``.
        mean: (3K,) float64; components: (M, 3K) float64 orthonormal rows;
        steps: (M,) float64 quantization step of each coefficient.
    """

    basis_id: str
    mean: np.ndarray
    components: np.ndarray
    steps: np.ndarray

    @property
    def num_keypoints(self) -> int:
        return self.mean.size // 3

    @property
    def num_coefficients(self) -> int:
        return len(self.components)

    def quantize(self, expression_delta: np.ndarray) -> np.ndarray:
        """(K, 3) deltas to (M,) int64 coefficients."""
        flat = np.asarray(expression_delta, dtype=np.float64).reshape(-1)
        return np.round(self.components @ (flat - self.mean) / self.steps).astype(np.int64)

    def dequantize(self, coefficients: np.ndarray) -> np.ndarray:
        """(M,) integers to (K, 3) float32 deltas."""
        flat = self.mean + (np.asarray(coefficients, dtype=np.float64) * self.steps) @ self.components
        return flat.reshape(-1, 3).astype(np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, components=self.components, steps=self.steps)
        return buffer.getvalue()


def fit_basis(deltas: np.ndarray, num_components: int, step: float, kind: str = "pca") -> ExpressionBasis:
    """Learn a basis from (N, K, 3) deltas (crop units).  Every coefficient is quantized with
    the same ``step`` (crop units): with orthonormal components, equal steps give each
    component the same error, which is what minimises the total error for a given rate."""
    flat = np.asarray(deltas, dtype=np.float64).reshape(len(deltas), -1)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    components = vt[:num_components]
    steps = np.full(num_components, float(step))
    unnamed = ExpressionBasis("", mean, components, steps)
    digest = hashlib.sha256(unnamed.to_bytes()).hexdigest()[:8]
    basis_id = f"{kind}-k{mean.size // 3}m{num_components}-{digest}"
    return ExpressionBasis(basis_id, mean, components, steps)


def _from_npz(basis_id: str, blob: bytes) -> ExpressionBasis:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return ExpressionBasis(basis_id, data["mean"], data["components"], data["steps"])


def available_bases() -> list[str]:
    """Ids of the bases that ship with the package."""
    folder = resources.files(_DATA)
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".npz"))


@lru_cache(maxsize=8)
def load_basis(basis_id: str) -> ExpressionBasis:
    """A shipped basis by id.

    Raises:
        KeyError: no such basis (the message lists the known ones).
    """
    if basis_id not in available_bases():
        raise KeyError(f"unknown expression basis {basis_id!r}; this install has {available_bases() or 'none'}")
    blob = resources.files(_DATA).joinpath(basis_id + ".npz").read_bytes()
    return _from_npz(basis_id, blob)


def save_basis(basis: ExpressionBasis, folder: Path) -> Path:
    path = folder / f"{basis.basis_id}.npz"
    path.write_bytes(basis.to_bytes())
    return path
