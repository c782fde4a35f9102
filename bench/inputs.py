"""The common input of every contender: a clip's stable face crops, cached on disk.

A clip becomes the same thing for H.264, the frozen keyframe and this codec: the tracker's
stable square crop (256x256, or 512x512), at the clip's own frame rate, first N seconds.
The crops and the tracker's landmarks on them (the reference for AKD) are cached under
``~/.cache/facevc/bench`` so that repeated runs skip decoding and tracking.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.facecrops import FaceCropError, extract_face_crops, landmarks_of_frames

__all__ = ["CACHE_DIR", "ClipError", "ClipInput", "landmarks_of_frames", "prepare_clip"]

CACHE_DIR = Path(os.environ.get("FVC_BENCH_CACHE", "~/.cache/facevc/bench")).expanduser()
_CACHE_VERSION = 1


#: A clip cannot be measured (missing, not a video, no face); the message names the file.
ClipError = FaceCropError


@dataclass(frozen=True)
class ClipInput:
    """One clip, ready for the contenders.

    Attributes:
        name: file name of the clip.
        fps: its frame rate.
        frames: (N, S, S, 3) uint8 RGB crops.
        times: (N,) float64 seconds.
        landmarks: (N, 478, 3) float32 tracker landmarks on the crops, in crop pixels;
            NaN where the tracker found no face.
        crop_changes: how many times the stable crop jumped (each would cost this codec a keyframe).
    """

    name: str
    fps: float
    frames: np.ndarray
    times: np.ndarray
    landmarks: np.ndarray
    crop_changes: int

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (the last one lasts one frame period)."""
        return float(len(self.frames) / self.fps)


def _cache_key(path: Path, size: int, seconds: float | None) -> str:
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as file:
        digest.update(file.read(1 << 20))
    digest.update(f"{stat.st_size}|{size}|{seconds}|{_CACHE_VERSION}".encode())
    return f"{path.stem}-{size}-{seconds or 'all'}s-{digest.hexdigest()[:12]}"


def prepare_clip(path: str | Path, size: int = 256, seconds: float | None = 10.0, use_cache: bool = True) -> ClipInput:
    """The clip's crops and reference landmarks, from the cache when possible.

    Raises:
        ClipError: missing file, not a video, or no face; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ClipError(f"{path}: no such file")
    cache = CACHE_DIR / f"{_cache_key(path, size, seconds)}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                return ClipInput(path.name, float(data["fps"]), data["frames"], data["times"], data["landmarks"],
                                 int(data["crop_changes"]))  # fmt: skip
        except (OSError, KeyError, ValueError):
            cache.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    frames, times, fps, changes = extract_face_crops(path, size, seconds)
    landmarks = landmarks_of_frames(frames, fps)
    clip = ClipInput(path.name, fps, frames, times, landmarks, changes)
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, fps=fps, frames=frames, times=times, landmarks=landmarks, crop_changes=changes)
        partial.replace(cache)
    return clip
