"""Reading video files (PyAV) into RGB frames with their timestamps.

Cameras are device I/O and live in ``sender/``; this module only reads files, which the
sender, the benchmark and training all need.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["VideoError", "VideoFrame", "VideoInfo", "VideoReader"]

log = logging.getLogger(__name__)


class VideoError(RuntimeError):
    """A file is missing, is not a video, or cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        time: presentation time in seconds from the start of the stream.
        index: position in decoding order (0-based).
    """

    image: np.ndarray
    time: float
    index: int


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    duration: float | None
    frame_count: int | None
    has_audio: bool
    #: Set once iteration stopped early on a decoding error (a truncated or damaged file).
    truncated: bool = False
    error: str | None = field(default=None)


class VideoReader:
    """Iterate over the frames of a video file.

    Args:
        path: the file.
        max_seconds: stop after this much video (None: all).
        max_pixels: refuse frames larger than this (a guard against absurd inputs).
        threads: decoder threads; 0 lets FFmpeg decide (frames decoded ahead in the
            background), 1 decodes synchronously (for timing other work on the same core).

    Raises:
        VideoError: on opening, when the file is missing, not a video or has no video stream.
    """

    def __init__(
        self, path: str | Path, max_seconds: float | None = None, max_pixels: int = 8192 * 8192, threads: int = 0
    ) -> None:
        import av

        self.path = Path(path)
        self.max_seconds = max_seconds
        self.threads = threads
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"{self.path}: not a readable video ({exc})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: has no video stream")
        stream = self._container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            self._container.close()
            raise VideoError(f"{self.path}: video stream has no frame size")
        if width * height > max_pixels:
            self._container.close()
            raise VideoError(f"{self.path}: frames of {width}x{height} exceed the limit of {max_pixels} pixels")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        self.info = VideoInfo(
            path=self.path,
            width=width,
            height=height,
            fps=float(rate),
            duration=duration,
            frame_count=stream.frames or None,
            has_audio=bool(self._container.streams.audio),
        )
        self._stream = stream

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def __iter__(self) -> Iterator[VideoFrame]:
        import av

        stream = self._stream
        if self.threads == 1:
            stream.codec_context.thread_count = 1
            stream.thread_type = "SLICE"
        else:
            stream.codec_context.thread_count = self.threads
            stream.thread_type = "AUTO"
        start: float | None = None
        index = 0
        fps = self.info.fps
        try:
            for frame in self._container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    time = float(frame.pts * frame.time_base)
                else:
                    time = index / fps
                if start is None:
                    start = time
                time -= start
                if self.max_seconds is not None and time >= self.max_seconds - 1e-6:
                    break
                yield VideoFrame(frame.to_ndarray(format="rgb24"), time, index)
                index += 1
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self.info.truncated = True
            self.info.error = f"{self.path}: decoding stopped after {index} frames ({exc})"
            log.warning(self.info.error)
        if index == 0 and not self.info.truncated:
            self.info.truncated = True
            self.info.error = f"{self.path}: no frame could be decoded"
        if index == 0:
            raise VideoError(self.info.error or f"{self.path}: no frame could be decoded")
