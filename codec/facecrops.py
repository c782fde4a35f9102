"""A video's stable face crops and the tracker's landmarks on them.

The common input of the benchmark (every contender sees the same crops) and of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["FaceCropError", "extract_face_crops", "landmarks_of_frames"]

_NUM_LANDMARKS = 478


class FaceCropError(RuntimeError):
    """A video cannot give face crops (missing, not a video, no face); the message names the file."""


def landmarks_of_frames(frames: np.ndarray, fps: float) -> np.ndarray:
    """Tracker landmarks on a sequence of crops, without temporal smoothing (a metric must
    not blend frames): (N, 478, 3) float32 in pixels, NaN where no face was found."""
    from codec.tracking.mediapipe import MediaPipeTracker

    tracker = MediaPipeTracker(smoothing=None)
    out = np.full((len(frames), _NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    for index, frame in enumerate(frames):
        result = tracker.process(np.ascontiguousarray(frame), index / fps)
        if result.raw_landmarks is not None:
            out[index] = result.raw_landmarks
    return out


def extract_face_crops(path: Path, size: int, seconds: float | None) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The tracker's stable square crop of every frame, resampled to ``size`` pixels.

    Frames before the face is first found use its first crop.

    Returns:
        (N, size, size, 3) uint8 RGB crops, (N,) times in seconds, the frame rate, and how
        many times the crop jumped.

    Raises:
        FaceCropError: missing or unreadable video, or no face within ``seconds``.
    """
    from .tracking.mediapipe import MediaPipeTracker
    from .video import VideoError, VideoReader

    try:
        reader = VideoReader(path, max_seconds=seconds)
    except VideoError as exc:
        raise FaceCropError(str(exc)) from exc
    tracker = MediaPipeTracker()
    crops: list[np.ndarray] = []
    times: list[float] = []
    pending: list[tuple[np.ndarray, float]] = []  # frames before the first face
    crop = None
    changes = 0
    try:
        with reader:
            for frame in reader:
                result = tracker.process(frame.image, frame.time)
                if result.crop is not None:
                    if crop is not None and result.crop_changed:
                        changes += 1
                    crop = result.crop
                if crop is None:
                    pending.append((frame.image, frame.time))
                    continue
                for image, time in pending:  # frames before the face was found use its first crop
                    crops.append(crop.extract(image, size))
                    times.append(time)
                pending.clear()
                crops.append(crop.extract(frame.image, size))
                times.append(frame.time)
    except VideoError as exc:
        raise FaceCropError(str(exc)) from exc
    if crop is None:
        limit = f"the first {seconds:g} s" if seconds else "the clip"
        raise FaceCropError(f"{path}: no face found in {limit}")
    return np.stack(crops), np.asarray(times), reader.info.fps, changes
