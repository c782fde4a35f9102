"""Training data: face crops of the training clips with their keypoints and head poses,
computed once (tracker + motion extraction) and cached on disk, so that a training step
never runs the tracker.

Layout, one folder per clip under the cache: ``frames.npy`` (N, S, S, 3) uint8, read
memory-mapped, and ``motion.npz``: ``keypoints`` (N, K, 3) float32 crop units, ``rotation``
(N, 3, 3), ``scale`` (N,), ``valid`` (N,) bool (a face was found), ``fps``, and ``landmarks``
(N, 478, 3) float16 crop units: the tracker's whole mesh, irises included (for geometry from
the mesh; zeros where no face was found).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TRAIN_CACHE", "ClipData", "clips_in_split", "load_clip_data", "prepare_clip_data"]

TRAIN_CACHE = Path("~/.cache/facevc/train").expanduser()
_VERSION = 2  # 2: the whole mesh per frame


@dataclass(frozen=True)
class ClipData:
    """One prepared clip (arrays as described in the module docstring)."""

    name: str
    frames: np.ndarray
    keypoints: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    valid: np.ndarray
    fps: float
    landmarks: np.ndarray  #: (N, 478, 3) float16 crop units

    @property
    def valid_indices(self) -> np.ndarray:
        return np.flatnonzero(self.valid)


def clips_in_split(folder: Path, split: str) -> list[Path]:
    """Clips of ``split`` according to ``folder/../manifest.csv``."""
    manifest = folder.parent / "manifest.csv"
    with manifest.open() as file:
        names = [row["file"] for row in csv.DictReader(file) if row["split"] == split]
    return [folder / name for name in names]


def _folder(path: Path, size: int, seconds: float | None, cache: Path) -> Path:
    digest = hashlib.sha256(f"{path.name}|{path.stat().st_size}|{size}|{seconds}|{_VERSION}".encode()).hexdigest()
    return cache / f"{path.stem}-{size}-{digest[:10]}"


def prepare_clip_data(path: Path, size: int = 256, seconds: float | None = 30.0, cache: Path = TRAIN_CACHE) -> Path:
    """Crops, keypoints and poses of one clip, written to (and reused from) the cache.

    Raises:
        codec.facecrops.FaceCropError: the clip cannot be read or has no face.
    """
    from ..facecrops import extract_face_crops, landmarks_of_frames
    from ..motion.extract import MotionExtractor
    from ..motion.rotation import rotation_matrix

    folder = _folder(path, size, seconds, cache)
    if (folder / "motion.npz").is_file():
        return folder
    frames, _, fps, _ = extract_face_crops(path, size, seconds)
    landmarks = landmarks_of_frames(frames, fps)
    valid = np.isfinite(landmarks).all(axis=(1, 2))
    extractor = MotionExtractor()
    n, k = len(frames), extractor.scheme.num_keypoints
    keypoints = np.zeros((n, k, 3), np.float32)
    rotation = np.tile(np.eye(3, dtype=np.float32), (n, 1, 1))
    scale = np.ones(n, np.float32)
    mesh = np.zeros((n, landmarks.shape[1], 3), np.float16)
    canonical = None
    for index in np.flatnonzero(valid):
        crop_units = np.empty_like(landmarks[index])
        crop_units[:, :2] = landmarks[index, :, :2] / size * 2 - 1
        crop_units[:, 2] = landmarks[index, :, 2] / size * 2
        mesh[index] = crop_units
        if canonical is None:
            canonical = extractor.canonicalize(crop_units)
        pose = extractor.head_pose(crop_units, canonical)
        keypoints[index] = crop_units[extractor.scheme.keypoint_ids]
        rotation[index] = rotation_matrix(pose.yaw, pose.pitch, pose.roll)
        scale[index] = pose.scale
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "frames.npy", frames)
    np.savez(folder / "motion.partial.npz", keypoints=keypoints, rotation=rotation, scale=scale, valid=valid, fps=fps,
             landmarks=mesh)  # fmt: skip
    (folder / "motion.partial.npz").replace(folder / "motion.npz")  # written last: marks the folder complete
    return folder


def load_clip_data(folder: Path) -> ClipData:
    with np.load(folder / "motion.npz") as motion:
        return ClipData(
            name=folder.name,
            frames=np.load(folder / "frames.npy", mmap_mode="r"),
            keypoints=motion["keypoints"],
            rotation=motion["rotation"],
            scale=motion["scale"],
            valid=motion["valid"],
            fps=float(motion["fps"]),
            landmarks=motion["landmarks"],
        )


def prepare_split(folder: Path, split: str, size: int, seconds: float | None, cache: Path = TRAIN_CACHE) -> list[Path]:
    """Prepare every clip of a split, with a progress bar; clips that fail are reported and skipped."""
    from tqdm import tqdm

    from ..facecrops import FaceCropError

    prepared = []
    for path in tqdm(clips_in_split(folder, split), unit="clip", file=sys.stderr, desc=f"preparing {split}"):
        try:
            prepared.append(prepare_clip_data(path, size, seconds, cache))
        except FaceCropError as exc:
            print(f"warning: skipped {exc}", file=sys.stderr)
    return prepared
