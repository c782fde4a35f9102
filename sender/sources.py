"""Where the sender's pictures and sound come from: a video file played at its real pace, or a
camera (and microphone) through FFmpeg's device inputs."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from codec.video import VideoReader

__all__ = ["CameraSource", "FrameSource", "TimedFrame", "VideoFileSource"]


@dataclass(frozen=True)
class TimedFrame:
    """A picture and its capture time in seconds since the source started."""

    image: np.ndarray
    time: float


class FrameSource:
    """An async stream of RGB frames, plus an optional audio track for WebRTC."""

    fps: float = 25.0

    def frames(self) -> AsyncIterator[TimedFrame]:
        raise NotImplementedError

    def audio_track(self) -> Any | None:
        """An aiortc audio track of the same source, or None."""
        return None

    def close(self) -> None:
        """Release the device or file."""


class FileAudioTrack(MediaStreamTrack):
    """A file's sound as an aiortc audio track, paced on the same clock as the video frames.

    Audio at file time t leaves at ``clock() + t`` where ``clock()`` is the video source's start
    (the track waits for it), so sound and picture leave the sender together.
    """

    kind = "audio"

    def __init__(self, path: Path, started_at: Any, loop: bool = False) -> None:
        super().__init__()
        self.path = path
        self.loop = loop
        self._started_at = started_at
        self._frames: Any | None = None
        self._offset = 0

    def _open(self) -> Any:
        import av

        container = av.open(str(self.path))
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)

        def frames() -> Any:
            try:
                for frame in container.decode(stream):
                    yield from resampler.resample(frame)
            finally:
                container.close()

        return frames()

    async def recv(self) -> Any:
        from aiortc.mediastreams import MediaStreamError

        while self._started_at() is None:
            await asyncio.sleep(0.005)
        if self._frames is None:
            self._frames = self._open()
        frame = await asyncio.to_thread(next, self._frames, None)
        if frame is None and self.loop:
            self._frames = self._open()
            frame = await asyncio.to_thread(next, self._frames, None)
        if frame is None:
            self.stop()
            raise MediaStreamError
        frame.pts = self._offset
        self._offset += frame.samples
        due = self._started_at() + frame.pts / frame.sample_rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return frame


class VideoFileSource(FrameSource):
    """A video file played at its real pace (its timestamps against the wall clock).

    Args:
        path: the file; loop: start again at the end; max_seconds: stop after this much.
        audio: also send the file's sound (when it has some).
    """

    def __init__(self, path: str | Path, loop: bool = False, max_seconds: float | None = None, audio: bool = True):
        self.path = Path(path)
        self.loop = loop
        self.max_seconds = max_seconds
        with VideoReader(self.path) as probe:  # raises VideoError with the file's name
            self.fps = probe.info.fps
            self.has_audio = probe.info.has_audio
        self._audio = audio and self.has_audio
        self.audio: FileAudioTrack | None = None
        self.started_at: float | None = None  #: monotonic time of the first frame

    def audio_track(self) -> Any | None:
        if not self._audio:
            return None
        self.audio = FileAudioTrack(self.path, lambda: self.started_at, self.loop)
        return self.audio

    async def frames(self) -> AsyncIterator[TimedFrame]:
        offset = 0.0
        start = time.monotonic()
        self.started_at = start
        while True:
            last = 0.0
            reader = VideoReader(self.path, max_seconds=self.max_seconds)
            with reader:
                iterator = iter(reader)
                while True:
                    frame = await asyncio.to_thread(next, iterator, None)
                    if frame is None:
                        break
                    due = start + offset + frame.time
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    last = frame.time
                    yield TimedFrame(frame.image, offset + frame.time)
            if not self.loop:
                return
            offset += last + 1 / self.fps

    def close(self) -> None:
        if self.audio is not None:
            self.audio.stop()


class CameraSource(FrameSource):
    """A camera (and the default microphone) through FFmpeg's capture devices.

    Args:
        index: camera number (``/dev/videoN`` on Linux).
        audio: also open the default microphone.
        size, fps: the capture mode asked of the camera.
        device: another FFmpeg input as ``(name, format)`` instead of the platform's camera,
            e.g. ``("testsrc=size=640x480:rate=30", "lavfi")``, a test pattern.
    """

    def __init__(
        self,
        index: int = 0,
        audio: bool = True,
        size: str = "640x480",
        fps: int = 30,
        device: tuple[str, str] | None = None,
    ) -> None:
        from aiortc.contrib.media import MediaPlayer

        system = platform.system()
        options = {"framerate": str(fps), "video_size": size}
        try:
            if device is not None:
                self._video = MediaPlayer(device[0], format=device[1])
            elif system == "Linux":
                self._video = MediaPlayer(f"/dev/video{index}", format="v4l2", options=options)
            elif system == "Darwin":
                self._video = MediaPlayer(f"{index}:none", format="avfoundation", options=options)
            else:
                self._video = MediaPlayer(f"video={index}", format="dshow", options=options)
        except Exception as exc:  # FFmpeg raises several types for a missing device
            raise RuntimeError(f"camera {index} cannot be opened ({exc}); check --camera or use --video FILE") from exc
        self._microphone: Any | None = None
        if audio:
            try:
                if system == "Linux":
                    self._microphone = MediaPlayer("default", format="pulse")
                elif system == "Darwin":
                    self._microphone = MediaPlayer("none:default", format="avfoundation")
            except Exception:  # no microphone: the call goes on without sound
                self._microphone = None
        self.fps = float(fps)

    def audio_track(self) -> Any | None:
        return self._microphone.audio if self._microphone is not None else None

    async def frames(self) -> AsyncIterator[TimedFrame]:
        track = self._video.video
        if track is None:
            raise RuntimeError("the camera gives no video")
        start = time.monotonic()
        while True:
            frame = await track.recv()
            yield TimedFrame(frame.to_ndarray(format="rgb24"), time.monotonic() - start)  # type: ignore[union-attr]

    def close(self) -> None:
        for player in (self._video, self._microphone):
            if player is not None:
                for track in (player.audio, player.video):
                    if track is not None:
                        track.stop()
