"""Where the sender's pictures and sound come from: a video file played at its real pace, or a
camera (and microphone) through FFmpeg's device inputs."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from codec.video import VideoReader

__all__ = [
    "CameraSource",
    "FileAudioTrack",
    "FrameSource",
    "PacedAudioTrack",
    "SilentAudioTrack",
    "TimedFrame",
    "VideoFileSource",
]


@dataclass(frozen=True)
class TimedFrame:
    """A picture and its capture time in seconds since the source started."""

    image: np.ndarray
    time: float


class FrameSource:
    """An async stream of RGB frames, plus an optional audio track for WebRTC."""

    fps: float = 25.0
    #: monotonic time of the first frame, None until then (the clock the sound is paced on)
    started_at: float | None = None

    def frames(self) -> AsyncIterator[TimedFrame]:
        raise NotImplementedError

    def audio_track(self) -> Any | None:
        """An aiortc audio track of the same source, or None."""
        return None

    def call_audio_track(self) -> Any:
        """The sound the call sends: :meth:`audio_track`, or silence paced on the same clock
        when the source has none (the call always sends audio: the motion rides on it)."""
        track = self.audio_track()
        return track if track is not None else SilentAudioTrack(lambda: self.started_at)

    def close(self) -> None:
        """Release the device or file."""


#: the sources' sound: 20 ms frames of s16 at 48 kHz (the speech encoder packs three in a packet)
AUDIO_RATE = 48000
AUDIO_FRAME_SAMPLES = 960


class PacedAudioTrack(MediaStreamTrack):
    """An aiortc audio track whose frames leave in real time on a clock shared with the video:
    the frame of sound times [t, t + d) leaves at ``started_at() + t + d``, once its sound has
    been heard, as a microphone's would (the track waits for the clock).

    Args:
        started_at: the video source's start (monotonic seconds), None until it starts; without
            one, the track's own first frame starts the clock.
    """

    kind = "audio"

    def __init__(self, started_at: Callable[[], float | None] | None = None) -> None:
        super().__init__()
        self._started_at = started_at
        self._own_start: float | None = None
        self._offset = 0  # samples sent

    async def _start(self) -> float:
        if self._started_at is None:
            if self._own_start is None:
                self._own_start = time.monotonic()
            return self._own_start
        while (start := self._started_at()) is None:
            await asyncio.sleep(0.005)
        return start

    @staticmethod
    def silence(samples: int = AUDIO_FRAME_SAMPLES) -> Any:
        """A frame of silence (s16 stereo, 48 kHz)."""
        import av

        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2 * samples), np.int16), format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        return frame

    async def _paced(self, frame: Any) -> Any:
        """``frame`` with its pts (in samples), once its time has come."""
        start = await self._start()
        frame.pts = self._offset
        frame.time_base = Fraction(1, frame.sample_rate)
        self._offset += frame.samples
        delay = start + self._offset / frame.sample_rate - time.monotonic()  # once heard, as a microphone
        if delay > 0:
            await asyncio.sleep(delay)
        return frame


class SilentAudioTrack(PacedAudioTrack):
    """Silence, in real time: the sound of a call whose source has none. The call always sends
    an audio track, because the motion rides on its packets; DTX makes the silence cost little."""

    async def recv(self) -> Any:
        from aiortc.mediastreams import MediaStreamError

        if self.readyState != "live":
            raise MediaStreamError
        return await self._paced(self.silence())


class FileAudioTrack(PacedAudioTrack):
    """A file's sound as an aiortc audio track, paced on the same clock as the video frames
    (20 ms frames, s16 stereo at 48 kHz). After the end of the sound (unless ``loop``), silence
    goes on until the track is stopped: the call keeps its audio packets.
    """

    def __init__(self, path: Path, started_at: Callable[[], float | None], loop: bool = False) -> None:
        super().__init__(started_at)
        self.path = path
        self.loop = loop
        self._frames: Any | None = None
        self._ended = False

    def _open(self) -> Any:
        import av

        container = av.open(str(self.path))
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=AUDIO_FRAME_SAMPLES)

        def frames() -> Any:
            try:
                for frame in container.decode(stream):
                    yield from resampler.resample(frame)
                yield from resampler.resample(None)
            finally:
                container.close()

        return frames()

    async def recv(self) -> Any:
        from aiortc.mediastreams import MediaStreamError

        if self.readyState != "live":
            raise MediaStreamError
        await self._start()
        frame = None
        if not self._ended:
            if self._frames is None:
                self._frames = self._open()
            frame = await asyncio.to_thread(next, self._frames, None)
            if frame is None and self.loop:
                self._frames = self._open()
                frame = await asyncio.to_thread(next, self._frames, None)
            self._ended = frame is None
        return await self._paced(frame if frame is not None else self.silence())


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
        self.started_at = start
        while True:
            frame = await track.recv()
            yield TimedFrame(frame.to_ndarray(format="rgb24"), time.monotonic() - start)  # type: ignore[union-attr]

    def close(self) -> None:
        for player in (self._video, self._microphone):
            if player is not None:
                for track in (player.audio, player.video):
                    if track is not None:
                        track.stop()
